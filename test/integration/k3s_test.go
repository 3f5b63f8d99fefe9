package integration

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/ironlb/ironlb/test/framework"
)

// uninitialized is the taint kubelet --cloud-provider=external registers
// nodes with.
const uninitialized = "node.cloudprovider.kubernetes.io/uninitialized"

// k3sAgent is a Node as a K3s agent registers it under each of the K3s
// setups docs/install-k3s.md describes. Its --node-name (agent-1) differs
// from the machine's hostname, which K3s keeps in k3s.io/hostname.
func k3sAgent(setup string) *v1.Node {
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "agent-1",
		Labels: map[string]string{v1.LabelHostname: "agent-1", v1.LabelOSStable: "linux"},
		Annotations: map[string]string{
			"k3s.io/node-args": `["agent","--node-name","agent-1"]`,
		}}}
	switch setup {
	case "k3s-ccm":
		// --disable=servicelb only: the kubelet runs with
		// --cloud-provider=external and K3s's own CCM has initialized the
		// node from its k3s.io annotations.
		n.Annotations["alpha.kubernetes.io/provided-node-ip"] = "198.51.100.21"
		n.Annotations["k3s.io/internal-ip"] = "198.51.100.21"
		n.Annotations["k3s.io/hostname"] = "ip-198-51-100-21"
		n.Labels[v1.LabelInstanceTypeStable] = "k3s"
		n.Spec.ProviderID = "k3s://agent-1"
		n.Status.Addresses = []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "198.51.100.21"}, {Type: v1.NodeHostName, Address: "ip-198-51-100-21"}}
	case "no-ccm":
		// --disable-cloud-controller: the kubelet sets its own addresses
		// and the node is never tainted.
		n.Status.Addresses = []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "198.51.100.21"}, {Type: v1.NodeHostName, Address: "agent-1"}}
	case "kubelet-external":
		// --disable-cloud-controller plus --kubelet-arg=cloud-provider=external:
		// tainted until a cloud-node controller initializes it; the agent
		// removes the k3s.io address annotations.
		n.Annotations["alpha.kubernetes.io/provided-node-ip"] = "198.51.100.21"
		n.Spec.Taints = []v1.Taint{{Key: uninitialized, Value: "true", Effect: v1.TaintEffectNoSchedule}}
	}
	return n
}

// overlayCCMArgs are ironlb-ccm's arguments in the rendered overlay.
func overlayCCMArgs(t *testing.T, overlay string) []string {
	t.Helper()
	root, err := framework.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("kubectl", "kustomize", filepath.Join(root, "manifests", overlay)).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize manifests/%s: %v", overlay, err)
	}
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		var d appsv1.Deployment
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("manifests/%s renders no ironlb-ccm Deployment: %v", overlay, err)
		}
		if d.Kind == "Deployment" && d.Name == "ironlb-ccm" {
			return d.Spec.Template.Spec.Containers[0].Args
		}
	}
}

// TestK3sSetups runs ironlb-ccm as each overlay docs/install-k3s.md
// recommends configures it, against Nodes registered as a K3s agent
// registers them in that setup: a Service gets its address every time, and
// a node is written only where ironlb is the one to initialize it.
func TestK3sSetups(t *testing.T) {
	for _, tc := range []struct {
		setup, overlay string
		// initializes: ironlb must initialize the node; otherwise it must
		// never write it.
		initializes bool
	}{
		{"k3s-ccm", "k3s", false},
		// Were the cloud-node controller left on, it must still leave a
		// node K3s initialized alone.
		{"k3s-ccm", "kubeadm", false},
		{"no-ccm", "k3s", false},
		{"kubelet-external", "k3s-cloud-node", true},
	} {
		t.Run(tc.setup+" with manifests/"+tc.overlay, func(t *testing.T) {
			e := newEnv(t, framework.Options{}, poolsConfig)
			node, err := e.client.CoreV1().Nodes().Create(e.ctx, k3sAgent(tc.setup), metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if node.Status.Addresses != nil {
				// Status is its own subresource, as the kubelet or K3s's
				// CCM writes it.
				node.Status = k3sAgent(tc.setup).Status
				if node, err = e.client.CoreV1().Nodes().UpdateStatus(e.ctx, node, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			// The cloud-node controller re-reads every node's metadata
			// each --node-status-update-frequency (5 m by default): every
			// second here, so a rewrite would show within the test.
			args := append(overlayCCMArgs(t, tc.overlay), "--node-status-update-frequency=1s")
			e.startCCM(framework.CCMOptions{Args: args})
			e.createService(lbService("default", "web"))
			e.expectIPs("default", "web", "203.0.113.10")

			if tc.initializes {
				waitInitialized(t, e, "agent-1", "198.51.100.21")
				return
			}
			// Several of the controller's rounds: the node stays as the
			// kubelet or K3s left it.
			time.Sleep(5 * time.Second)
			after, err := e.client.CoreV1().Nodes().Get(e.ctx, "agent-1", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if after.ResourceVersion != node.ResourceVersion {
				t.Errorf("ironlb-ccm (%v) rewrote a node it does not own:\nbefore: %+v %+v\nafter:  %+v %+v", args,
					node.Spec, node.Status.Addresses, after.Spec, after.Status.Addresses)
			}
		})
	}
}

// waitInitialized waits until ironlb's cloud-node controller initialized
// the node: taint gone, providerID ironlb://, the kubelet's --node-ip an
// InternalIP.
func waitInitialized(t *testing.T, e *env, name, ip string) {
	t.Helper()
	var got *v1.Node
	err := framework.WaitFor(e.ctx, allocateTimeout, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
		n, err := e.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		got = n
		return n.Spec.ProviderID == "ironlb://"+name && !hasTaint(n, uninitialized) &&
			slices.Contains(n.Status.Addresses, v1.NodeAddress{Type: v1.NodeInternalIP, Address: ip}), nil
	})
	if err != nil {
		t.Fatalf("node %s not initialized by ironlb: %v (node: %+v %+v)", name, err, got.Spec, got.Status.Addresses)
	}
}
