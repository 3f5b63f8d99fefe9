package nodelab

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/netlab"
)

func TestPodSubnets(t *testing.T) {
	for _, tc := range []struct {
		k    int
		want string
	}{{1, "198.18.64.0/24"}, {2, "198.18.65.0/24"}, {64, "198.18.127.0/24"}} {
		got, err := podSubnet(tc.k)
		if err != nil || got.String() != tc.want {
			t.Errorf("podSubnet(%d) = %v, %v; want %s", tc.k, got, err, tc.want)
		}
	}
	for _, k := range []int{0, 65} {
		if _, err := podSubnet(k); err == nil {
			t.Errorf("podSubnet(%d): no error", k)
		}
	}
}

// TestClusterRunsPods: a Deployment's pods run on real kubelets, get
// addresses from each node's pod subnet, and kube-proxy carries a
// ClusterIP Service to pods on both nodes.
func TestClusterRunsPods(t *testing.T) {
	c := StartForTest(t, netlab.Options{Nodes: 2}, Options{})
	ctx := t.Context()
	client := c.ControlPlane.Client
	for _, n := range c.NodeNames() {
		node, err := client.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !hasTaint(node, "node.cloudprovider.kubernetes.io/uninitialized") {
			t.Errorf("node %s: not tainted uninitialized, as a kubelet with --cloud-provider=external registers: %v", n, node.Spec.Taints)
		}
	}
	// No cloud provider runs here: tolerate its taint.
	dep := EchoDeployment("default", "echo", 2)
	dep.Spec.Template.Spec.Tolerations = []v1.Toleration{{Key: "node.cloudprovider.kubernetes.io/uninitialized", Operator: v1.TolerationOpExists}}
	dep.Spec.Template.Spec.TopologySpreadConstraints = []v1.TopologySpreadConstraint{{
		MaxSkew: 1, TopologyKey: v1.LabelHostname, WhenUnsatisfiable: v1.DoNotSchedule,
		LabelSelector: dep.Spec.Selector,
	}}
	if _, err := client.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc, err := client.CoreV1().Services("default").Create(ctx, &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo"},
		Spec: v1.ServiceSpec{Selector: dep.Spec.Selector.MatchLabels,
			Ports: []v1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(EchoPort)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitDeploymentReady(ctx, "default", "echo", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	pods, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=echo"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		n := c.Node(p.Spec.NodeName)
		ip, err := netip.ParseAddr(p.Status.PodIP)
		if n == nil || err != nil || !n.PodSubnets[0].Contains(ip) {
			t.Errorf("pod %s on %s has IP %q, outside its node's pod subnet", p.Name, p.Spec.NodeName, p.Status.PodIP)
		}
	}
	// From the first node, the ClusterIP reaches pods on both nodes.
	seen := map[string]bool{}
	var last error
	url := fmt.Sprintf("http://%s/", svc.Spec.ClusterIP)
	err = framework.WaitFor(ctx, time.Minute, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		reqCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		body, err := c.Nodes()[0].Host.HTTPGet(reqCtx, url)
		last = err
		if e, ok := ParseEcho(body); err == nil && ok {
			seen[e.Node] = true
		}
		return len(seen) == 2, nil
	})
	if err != nil {
		t.Fatalf("ClusterIP %s reached pods on %v, want both nodes: %v (last: %v)", svc.Spec.ClusterIP, seen, err, last)
	}
}

func hasTaint(node *v1.Node, key string) bool {
	for _, t := range node.Spec.Taints {
		if t.Key == key {
			return true
		}
	}
	return false
}
