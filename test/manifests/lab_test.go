package manifests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/announcer/report"
	"github.com/ironlb/ironlb/test/labenv"
	"github.com/ironlb/ironlb/test/netlab"
)

// labPool is a layer2 pool on the lab's VIP range, announced on its LAN.
var labPool = fmt.Sprintf(`
pools:
- name: l2
  addresses: [203.0.113.10-203.0.113.20]
  interfaces: [%s]
`, netlab.Iface)

// TestSpeakersUnderRBAC runs real speakers on the network lab (root) the way
// the DaemonSet does: as the ironlb-speaker ServiceAccount with only the
// installed RBAC, as uid 0 holding only the capabilities the manifest adds.
// A layer2 VIP must answer from the client, the speakers must record their
// Events (on the Service, and on the Node from the kube-system/kube-proxy
// check), and no API call may be refused.
func TestSpeakersUnderRBAC(t *testing.T) {
	ctx := t.Context()
	root := repoRoot(t)
	lab := netlab.NewForTest(t, netlab.Options{Nodes: 2, Client: true})
	if err := lab.ServeVIPs(ctx, netlab.VIPv4, netlab.VIPv6, labenv.HTTPPort); err != nil {
		t.Fatal(err)
	}
	cp, err := lab.StartControlPlane(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The apiserver listens inside the control plane's namespace.
	if out, err := lab.ControlPlane().Exec(ctx, kubectlPath(t), "--kubeconfig="+cp.Kubeconfig, "apply", "-k", filepath.Join(root, "manifests", "kubeadm")); err != nil {
		t.Fatalf("installing the kubeadm overlay: %v\n%s", err, out)
	}
	// kubeadm's kube-proxy configuration, in IPVS mode without strictARP:
	// the speakers must be able to read it and warn on their Nodes.
	kubeProxy := &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-proxy"},
		Data:       map[string]string{"config.conf": "mode: ipvs\nipvs:\n  strictARP: false\n"},
	}
	if _, err := cp.Client.CoreV1().ConfigMaps("kube-system").Create(ctx, kubeProxy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	ds := typed[appsv1.DaemonSet](t, find(t, decode(t, renderOverlay(t, "kubeadm")), "DaemonSet", namespace, "ironlb-speaker"))
	container := ds.Spec.Template.Spec.Containers[0]
	var caps []string
	for _, c := range container.SecurityContext.Capabilities.Add {
		caps = append(caps, strings.ToLower(string(c))) // setpriv's names
	}
	// Each speaker acts as the ServiceAccount with its node named, as the
	// kubelet's projected token makes it (the install's admission policy
	// checks that name).
	dir := t.TempDir()
	for _, n := range lab.Nodes() {
		extra := map[string][]string{nodeNameExtra: {n.Name}}
		if err := cp.WriteTokenLikeKubeconfig(filepath.Join(dir, n.Name+".kubeconfig"), speakerSA, saGroups, extra); err != nil {
			t.Fatal(err)
		}
	}
	// The manifest's arguments but the key file's path, which is the lab's.
	var args []string
	for _, a := range container.Args {
		if !strings.HasPrefix(a, "--memberlist-key-file=") {
			args = append(args, a)
		}
	}
	env, err := labenv.Run(ctx, lab, cp, labenv.Options{Config: labPool, SpeakerArgs: args, SpeakerCapabilities: caps, Logf: t.Logf,
		SpeakerKubeconfig: func(node string) string { return filepath.Join(dir, node+".kubeconfig") }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		env.Stop()
		for _, n := range lab.Nodes() {
			p := env.Speaker(n.Name)
			if p == nil {
				continue
			}
			log, _ := os.ReadFile(p.LogPath)
			if bytes.Contains(bytes.ToLower(log), []byte("forbidden")) {
				t.Errorf("speaker %s hit RBAC refusals:\n%s", n.Name, grepLines(log, "forbidden"))
			}
			if t.Failed() {
				t.Logf("speaker %s log tail:\n%s", n.Name, p.LogTail(25))
			}
		}
	})
	t.Logf("speakers run as %s with capabilities %v", speakerSA, caps)

	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer,
			Ports: []v1.ServicePort{{Name: "http", Port: labenv.HTTPPort, Protocol: v1.ProtocolTCP}}},
	}
	if _, err := cp.Client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	vip, err := env.WaitForIP(ctx, "default", "web", 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.WaitConverged(ctx, 30*time.Second); err != nil {
		t.Fatalf("speakers did not see each other: %v", err)
	}
	var node string
	waitFor(t, fmt.Sprintf("%s to answer from the client", vip), 30*time.Second, func(ctx context.Context) (bool, error) {
		node, err = env.Answering(ctx, vip, 2*time.Second)
		return err == nil, nil
	})
	t.Logf("%s answered by %s", vip, node)
	wantEvent(t, cp.Client, "default", "web", "Announcing")
	wantEvent(t, cp.Client, "default", node, "StrictARPDisabled")
	// The sweeper (the lowest name) holds the side Lease, as its own
	// token and the admission policy allow, with both speakers counted.
	waitFor(t, "the side Lease held by the sweeper", 30*time.Second, func(ctx context.Context) (bool, error) {
		l, err := cp.Client.CoordinationV1().Leases(namespace).Get(ctx, report.SideLeaseName, metav1.GetOptions{})
		return err == nil && ptr.Deref(l.Spec.HolderIdentity, "") == lab.Nodes()[0].Name && l.Annotations["ironlb.io/side-members"] == "2", nil
	})
}
