package announcer

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/ironlb/ironlb/config"
)

func TestIPVSAnswersARP(t *testing.T) {
	cases := []struct {
		conf string
		want bool
	}{
		{"mode: ipvs\nipvs:\n  strictARP: false\n", true},
		{"mode: ipvs\n", true},
		{"mode: ipvs\nipvs:\n  strictARP: true\n", false},
		{"mode: iptables\n", false},
		{"mode: \"\"\n", false},
		{"not: [yaml", false},
	}
	for _, c := range cases {
		if got := ipvsAnswersARP(c.conf); got != c.want {
			t.Errorf("%q: %v, want %v", c.conf, got, c.want)
		}
	}
}

func TestKubeProxyAnswersARPSaysEachChangeOnce(t *testing.T) {
	var k kubeProxyAnswersARP
	for i, step := range []struct {
		answers bool
		want    string
	}{
		{false, ""}, // a cluster that never answered: nothing to say
		{true, "StrictARPDisabled"},
		{true, ""},
		{false, "StrictARPEnabled"},
		{false, ""},
		{true, "StrictARPDisabled"},
	} {
		if _, got := k.observe(step.answers); got != step.want {
			t.Errorf("step %d (answers %v): %q, want %q", i, step.answers, got, step.want)
		}
	}
	var first kubeProxyAnswersARP
	if typ, got := first.observe(true); got != "StrictARPDisabled" || typ != v1.EventTypeWarning {
		t.Errorf("first read answering: %s %q, want a StrictARPDisabled Warning", typ, got)
	}
}

// TestKubeProxyWarningComesAndGoes: the speaker warns on its Node while
// kube-system/kube-proxy says IPVS without strictARP, and says so once
// when an operator sets strictARP, without a restart.
func TestKubeProxyWarningComesAndGoes(t *testing.T) {
	defer func(d time.Duration) { kubeProxyRecheck = d }(kubeProxyRecheck)
	kubeProxyRecheck = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: "kube-proxy"},
		Data: map[string]string{"config.conf": "mode: ipvs\nipvs:\n  strictARP: false\n"}}
	client := fake.NewClientset(cm, node("n1", nil))
	s := NewSpeaker(client, &fakeMembers{changes: make(chan struct{})}, SpeakerOptions{NodeName: "n1",
		ConfigNamespace: config.DefaultNamespace, ConfigName: config.DefaultConfigMapName})
	rec := record.NewFakeRecorder(10)
	s.recorder = rec
	go s.watchKubeProxy(ctx)
	next := func(want string) {
		t.Helper()
		select {
		case e := <-rec.Events:
			if !strings.HasPrefix(e, want) {
				t.Fatalf("event %q, want %s…", e, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s event", want)
		}
	}
	next("Warning StrictARPDisabled")
	cm = cm.DeepCopy()
	cm.Data["config.conf"] = "mode: ipvs\nipvs:\n  strictARP: true\n"
	if _, err := client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	next("Normal StrictARPEnabled")
	select {
	case e := <-rec.Events:
		t.Errorf("said again: %q", e)
	case <-time.After(10 * kubeProxyRecheck):
	}
}

// TestKubeProxyCheckStopsWithoutTheGrant: the K3s install grants no read
// of kube-system/kube-proxy; the speaker asks once and stops.
func TestKubeProxyCheckStopsWithoutTheGrant(t *testing.T) {
	defer func(d time.Duration) { kubeProxyRecheck = d }(kubeProxyRecheck)
	kubeProxyRecheck = 10 * time.Millisecond
	client := fake.NewClientset(node("n1", nil))
	gets := 0
	client.PrependReactor("get", "configmaps", func(action k8stesting.Action) (bool, runtime.Object, error) {
		gets++
		return true, nil, apierrors.NewForbidden(v1.Resource("configmaps"), "kube-proxy", errors.New("no grant"))
	})
	s := NewSpeaker(client, &fakeMembers{changes: make(chan struct{})}, SpeakerOptions{NodeName: "n1",
		ConfigNamespace: config.DefaultNamespace, ConfigName: config.DefaultConfigMapName})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.watchKubeProxy(ctx) // returns at once, not when ctx ends
	if ctx.Err() != nil || gets != 1 {
		t.Errorf("asked %d times (ctx: %v), want once and then stop", gets, ctx.Err())
	}
}
