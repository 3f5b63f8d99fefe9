package main

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/announcer/report"
	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/test/framework"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

var statusT0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

const statusConfig = `pools:
- name: lan
  addresses: [203.0.113.0/28, "2001:db8:200::/64"]
- name: routed
  mode: bgp
  addresses: [198.51.100.64/27]
bgp:
  localASN: 64515
  peers:
  - {name: tor1, address: 198.51.100.1, asn: 64512}
  - {name: tor2, address: 198.51.100.3, asn: 64512}
`

// TestStatusGolden runs `kubectl ironlb status` against a real apiserver
// holding the ironlb CRD, Services with addresses, and SpeakerStatus objects
// written by the speakers' own reporter, and compares the output in every
// format with testdata/status.*.
func TestStatusGolden(t *testing.T) {
	cp := framework.NewForTest(t, framework.Options{})
	ctx := t.Context()
	if err := framework.ApplyConfig(ctx, cp.Client, statusConfig); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"dev", "prod"} {
		if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	createLoadBalancer(t, cp.Client, "dev", "web", nil, "203.0.113.1", "2001:db8:200::1")
	createLoadBalancer(t, cp.Client, "dev", "api", nil, "203.0.113.2")
	createLoadBalancer(t, cp.Client, "prod", "db", nil, "198.51.100.64")
	// A Local Service is advertised only from the nodes listing its
	// address, although n1 advertises the rest of its pool.
	cache := createLoadBalancer(t, cp.Client, "prod", "cache", nil, "198.51.100.65")
	cache.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	if _, err := cp.Client.CoreV1().Services("prod").Update(ctx, cache, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	createLoadBalancer(t, cp.Client, "prod", "pending", nil)
	createLoadBalancer(t, cp.Client, "prod", "other-lb", ptr.To("example.com/other"), "203.0.113.99")

	dyn, err := dynamic.NewForConfig(cp.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	at := func(d time.Duration) func() time.Time { return func() time.Time { return statusT0.Add(d) } }
	meta, err := metadata.NewForConfig(cp.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	n1 := startStatusReporter(t, dyn, meta, "n1", at(0))
	n2 := startStatusReporter(t, dyn, meta, "n2", at(30*time.Second))
	n3, stopN3 := runStatusReporter(dyn, meta, "n3", at(0))
	defer stopN3()

	n1.SetAnnouncements([]v1alpha1.Announcement{
		{IP: "203.0.113.1", Mode: "layer2", Interface: "eth0", Services: []string{"dev/web"}},
	}, []string{"routed"})
	n1.SetBGPPeers(map[string]string{"tor1": "198.51.100.1", "tor2": "198.51.100.3"})
	n1.SetBGPSession(v1alpha1.BGPSession{Peer: "tor1", Address: "198.51.100.1", State: v1alpha1.BGPEstablished, Reason: "established"})
	n1.SetBGPSession(v1alpha1.BGPSession{Peer: "tor2", Address: "198.51.100.3", State: v1alpha1.BGPDown, Reason: "connection refused: nothing listens on the peer's BGP port"})
	n2.SetAnnouncements([]v1alpha1.Announcement{
		{IP: "203.0.113.2", Mode: "layer2", Interface: "eth0", Services: []string{"dev/api"}},
		{IP: "2001:db8:200::1", Mode: "layer2", Interface: "eth0", Services: []string{"dev/web"}},
		{IP: "198.51.100.65", Mode: "bgp", Services: []string{"prod/cache"}},
	}, []string{"routed"})
	// n3 announced too, then stopped: a stopped speaker announces nothing.
	n3.SetAnnouncements([]v1alpha1.Announcement{{IP: "198.51.100.65", Mode: "bgp", Services: []string{"prod/cache"}}}, []string{"routed"})
	waitSpeaker(t, dyn, "n3", func(s *v1alpha1.SpeakerStatus) bool {
		return len(s.Status.Announcements) == 1 && len(s.Status.BGPPools) == 1
	})
	stopN3()
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n3.Stop(stopCtx)

	waitSpeaker(t, dyn, "n1", func(s *v1alpha1.SpeakerStatus) bool {
		return len(s.Status.Announcements) == 1 && len(s.Status.BGPPools) == 1 && len(s.Status.BGPSessions) == 2 && s.Status.BGPSessions[1].State == v1alpha1.BGPDown
	})
	waitSpeaker(t, dyn, "n2", func(s *v1alpha1.SpeakerStatus) bool { return len(s.Status.Announcements) == 3 })
	waitSpeaker(t, dyn, "n3", func(s *v1alpha1.SpeakerStatus) bool { return s.Status.State == v1alpha1.SpeakerStopped })

	clock = func() time.Time { return statusT0.Add(90 * time.Second) }
	defer func() { clock = time.Now }()
	for _, tc := range []struct{ golden, output string }{
		{"status.txt", ""},
		{"status.json", "json"},
		{"status.yaml", "yaml"},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			args := []string{"status", "--kubeconfig", cp.Kubeconfig}
			if tc.output != "" {
				args = append(args, "-o", tc.output)
			}
			code, out, errOut := runCmd(args, "")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			compareGolden(t, filepath.Join("testdata", tc.golden), out)
		})
	}

	// -n shows one namespace's services; pools still count every service.
	code, out, errOut := runCmd([]string{"status", "--kubeconfig", cp.Kubeconfig, "-n", "prod"}, "")
	if code != 0 || strings.Contains(out, "dev/web") || !strings.Contains(out, "prod/db") {
		t.Errorf("-n prod: exit %d, output:\n%s%s", code, out, errOut)
	}

	// With ironlb-config invalid, the speakers announce from the last good
	// config: the addresses resolve to its pools, and a bgp pool's
	// advertisers still show.
	if _, err := cp.Client.CoreV1().ConfigMaps(config.DefaultNamespace).Create(ctx, &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: config.LastGoodName(config.DefaultConfigMapName)},
		Data:       map[string]string{config.ConfigMapKey: statusConfig},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := framework.ApplyConfig(ctx, cp.Client, "pools: [{name: BAD}]\n"); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCmd([]string{"status", "--kubeconfig", cp.Kubeconfig, "-o", "json"}, "")
	var st Status
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil {
		t.Fatalf("with an invalid config: exit %d (%v): %s%s", code, err, out, errOut)
	}
	for _, s := range st.Services {
		if s.Name == "db" && (s.Pool != "routed" || s.Mode != "bgp" || !slices.Equal(s.AnnouncedBy, []string{"n1", "n2"})) {
			t.Errorf("with an invalid config, prod/db reads %+v; want pool routed (bgp) announced by n1 and n2", s)
		}
	}
	if len(st.Config.Errors) == 0 {
		t.Errorf("the invalid config is not reported: %+v", st.Config)
	}
}

func createLoadBalancer(t *testing.T, client kubernetes.Interface, ns, name string, class *string, ips ...string) *v1.Service {
	t.Helper()
	ctx := t.Context()
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, LoadBalancerClass: class,
			Ports: []v1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: v1.ProtocolTCP}}},
	}
	created, err := client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ips) == 0 {
		return created
	}
	for _, ip := range ips {
		created.Status.LoadBalancer.Ingress = append(created.Status.LoadBalancer.Ingress, v1.LoadBalancerIngress{IP: ip, IPMode: ptr.To(v1.LoadBalancerIPModeVIP)})
	}
	updated, err := client.CoreV1().Services(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return updated
}

func startStatusReporter(t *testing.T, dyn dynamic.Interface, meta metadata.Interface, node string, now func() time.Time) *report.Reporter {
	r, stop := runStatusReporter(dyn, meta, node, now)
	t.Cleanup(stop)
	return r
}

func runStatusReporter(dyn dynamic.Interface, meta metadata.Interface, node string, now func() time.Time) (*report.Reporter, func()) {
	r := report.New(dyn, meta, report.Options{NodeName: node, NodeUID: func() types.UID { return "" }, Now: now})
	return r, r.Start(context.Background())
}

func waitSpeaker(t *testing.T, dyn dynamic.Interface, node string, ok func(*v1alpha1.SpeakerStatus) bool) {
	t.Helper()
	var last *v1alpha1.SpeakerStatus
	err := framework.WaitFor(t.Context(), 30*time.Second, 50*time.Millisecond, func(ctx context.Context) (bool, error) {
		u, err := dyn.Resource(v1alpha1.SpeakerStatusResource).Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		if last, err = v1alpha1.FromUnstructured(u); err != nil {
			return false, err
		}
		return ok(last), nil
	})
	if err != nil {
		t.Fatalf("SpeakerStatus %s: %v; last %+v", node, err, last)
	}
}

func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run with -update after checking):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
