package install

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/netlab"
	"github.com/ironlb/ironlb/test/nodelab"
)

const (
	// serviceCIDR makes the cluster dual-stack, as the demo's is.
	serviceCIDR = "198.18.0.0/16,2001:db8:ffff::/112"
	// installTimeout bounds each step of an install: pods pulled from
	// local archives, started, probed Ready.
	installTimeout = 2 * time.Minute
	// failoverTimeout bounds how long a takeover may take before the test
	// gives up (the figure itself is logged).
	failoverTimeout = 30 * time.Second
)

// The lab's VIPs lie outside its LAN subnet, so the pool names the
// interface to announce on.
const layer2Config = `apiVersion: v1
kind: ConfigMap
metadata:
  name: ironlb-config
  namespace: ironlb-system
data:
  config.yaml: |
    pools:
    - name: lan
      mode: layer2
      addresses: [203.0.113.10-203.0.113.49, "2001:db8:200::10-2001:db8:200::49"]
      interfaces: [eth0]
`

// cluster is a real-node lab with ironlb's images loaded.
type cluster struct {
	*nodelab.Cluster
}

// startCluster starts real nodes on a lab with labOpts (plus the client and
// a dual-stack Service CIDR), ironlb's images loaded, ironlb not installed.
func startCluster(t *testing.T, labOpts netlab.Options) *cluster {
	t.Helper()
	archives, err := nodelab.IronLBArchives(filepath.Join(t.TempDir(), "images"))
	if err != nil {
		t.Fatal(err)
	}
	labOpts.Client = true
	labOpts.ControlPlane.ServiceCIDR = serviceCIDR
	c := nodelab.StartForTest(t, labOpts, nodelab.Options{Archives: archives})
	// The client reaches layer2 addresses on-link, as a LAN neighbour of
	// the load balancer does.
	for _, cmd := range [][]string{
		{"ip", "route", "replace", netlab.VIPv4.String(), "dev", netlab.Iface},
		{"ip", "-6", "route", "replace", netlab.VIPv6.String(), "dev", netlab.Iface},
	} {
		if _, err := c.Lab.Client().Exec(t.Context(), cmd[0], cmd[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	return &cluster{Cluster: c}
}

// kubectl runs kubectl on the control plane host, as an operator would.
func (c *cluster) kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := c.Kubectl(ctx, stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitInstalled waits for a complete install (nodelab.WaitIronLBInstalled).
func (c *cluster) waitInstalled(t *testing.T) {
	t.Helper()
	leader, err := c.WaitIronLBInstalled(t.Context(), installTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("installed: ironlb-ccm leader %s", leader)
}

// podLogs returns every pod's state and ironlb's log tails, for a failure.
func (c *cluster) podLogs() string { return c.IronLBLogs(context.Background()) }

// createEcho runs the demo app (replicas pods) behind a LoadBalancer Service
// and returns the Service's address.
func (c *cluster) createEcho(t *testing.T, ns, name string, replicas int32, policy v1.ServiceExternalTrafficPolicy, adjust ...func(*v1.Service)) netip.Addr {
	t.Helper()
	ctx := t.Context()
	client := c.ControlPlane.Client
	if _, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		if _, err := client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	dep := nodelab.EchoDeployment(ns, name, replicas)
	if _, err := client.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1.ServiceSpec{
			Type:                  v1.ServiceTypeLoadBalancer,
			ExternalTrafficPolicy: policy,
			Selector:              dep.Spec.Selector.MatchLabels,
			Ports:                 []v1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(nodelab.EchoPort)}},
		},
	}
	for _, a := range adjust {
		a(svc)
	}
	if _, err := client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitDeploymentReady(ctx, ns, name, installTimeout); err != nil {
		t.Fatal(err)
	}
	ips, err := framework.WaitForIngress(ctx, client, ns, name, 1, installTimeout)
	if err != nil {
		t.Fatalf("service %s/%s: %v\n%s", ns, name, err, c.podLogs())
	}
	return netip.MustParseAddr(ips[0])
}

// echo is one answer of the demo app, as the client saw it.
type echo = nodelab.Answer

// get asks vip once from the client (a fresh connection) and says who
// answered ARP or NDP and which pod served.
func (c *cluster) get(ctx context.Context, vip netip.Addr) (echo, error) {
	e, err := c.Ask(ctx, c.Lab.Client(), vip, 2*time.Second)
	if err == nil && e.Via == "" {
		err = fmt.Errorf("the client reached %s through no node", vip)
	}
	return e, err
}

// waitServed waits until the client is served through vip with an answer
// that satisfies ok, and returns it.
func (c *cluster) waitServed(t *testing.T, vip netip.Addr, timeout time.Duration, ok func(echo) bool) echo {
	t.Helper()
	var last echo
	var lastErr error
	err := framework.WaitFor(t.Context(), timeout, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		last, lastErr = c.get(ctx, vip)
		return lastErr == nil && ok(last), nil
	})
	if err != nil {
		t.Fatalf("%s: last answer %+v (%v): %v\n%s", vip, last, lastErr, err, c.podLogs())
	}
	return last
}

func anyAnswer(echo) bool { return true }

// TestKubeadmInstall: `kubectl apply -k manifests/kubeadm`, unchanged, onto
// three real nodes; ironlb initializes them and a client on the LAN reaches
// a real Deployment through a layer2 address and kube-proxy.
func TestKubeadmInstall(t *testing.T) {
	c := startCluster(t, netlab.Options{Nodes: 3})
	root, err := framework.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	c.kubectl(t, "", "apply", "--server-side", "-k", filepath.Join(root, "manifests", "kubeadm"))
	c.waitInstalled(t)
	t.Logf("ironlb installed and Ready %s after kubectl apply", time.Since(begin).Round(time.Millisecond))
	// The kubelet hands each speaker its container's memory limit (128Mi);
	// the Go runtime's soft limit is 75 % of it.
	for _, n := range c.Nodes() {
		logs, err := n.ContainerLogs(nodelab.IronLBNamespace, "ironlb-speaker-", "ironlb-speaker")
		if want := `"Go runtime soft memory limit set from the container's" bytes=100663296`; err != nil || !strings.Contains(logs, want) {
			t.Errorf("%s: the speaker did not log %s (%v); its log:\n%s", n.Name, want, err, logs)
		}
	}
	c.kubectl(t, layer2Config, "apply", "-f", "-")

	vip := c.createEcho(t, "demo", "echo", 2, v1.ServiceExternalTrafficPolicyCluster)
	seen := map[string]bool{}
	first := c.waitServed(t, vip, failoverTimeout, func(e echo) bool {
		seen[e.Node] = true
		return len(seen) == 2
	})
	t.Logf("%s: announced by %s, served by pods on %v", vip, first.Via, slices.Sorted(maps.Keys(seen)))
	c.checkStatus(t, "demo", "echo", vip, first.Via)

	t.Run("IPv6", func(t *testing.T) {
		vip6 := c.createEcho(t, "demo", "echo-v6", 2, v1.ServiceExternalTrafficPolicyCluster, func(s *v1.Service) {
			s.Spec.IPFamilies, s.Spec.IPFamilyPolicy = []v1.IPFamily{v1.IPv6Protocol}, ptr.To(v1.IPFamilyPolicySingleStack)
		})
		if !vip6.Is6() {
			t.Fatalf("an IPv6 Service got %s", vip6)
		}
		e := c.waitServed(t, vip6, failoverTimeout, anyAnswer)
		t.Logf("%s: answered NDP from %s, served by %s", vip6, e.Via, e.Pod)
		c.checkStatus(t, "demo", "echo-v6", vip6, e.Via)
	})
	t.Run("externalTrafficPolicy Local", func(t *testing.T) { testLocal(t, c) })
	// Last: it takes a node away.
	t.Run("node death", func(t *testing.T) { testNodeDeath(t, c, vip) })
}

// testLocal: with one pod, only its node announces, the pod sees the
// client's own address, and when the pod moves the announcement follows.
func testLocal(t *testing.T, c *cluster) {
	vip := c.createEcho(t, "demo", "local", 1, v1.ServiceExternalTrafficPolicyLocal)
	client := c.Lab.Client().IPv4.String()
	first := c.waitServed(t, vip, failoverTimeout, func(e echo) bool { return e.Via == e.Node })
	if host, _, _ := strings.Cut(first.Client, ":"); host != client {
		t.Errorf("the pod saw the client as %s, want %s (externalTrafficPolicy Local keeps the source address)", first.Client, client)
	}
	c.checkStatus(t, "demo", "local", vip, first.Node)

	// Move the pod: cordon its node and delete it.
	c.kubectl(t, "", "cordon", first.Node)
	defer c.kubectl(t, "", "uncordon", first.Node)
	c.kubectl(t, "", "-n", "demo", "delete", "pod", first.Pod, "--wait=false")
	begin := time.Now()
	moved := c.waitServed(t, vip, installTimeout, func(e echo) bool { return e.Node != first.Node && e.Via == e.Node })
	t.Logf("pod moved from %s to %s; %s announced from its new node %s after the delete", first.Node, moved.Node, vip, time.Since(begin).Round(time.Millisecond))
	c.checkStatus(t, "demo", "local", vip, moved.Node)
}

// testNodeDeath: the node announcing vip loses power (its link down;
// kubelet, containerd, kube-proxy, its speaker pod and every other pod of
// it killed at once);
// another node answers ARP for vip within the failover bound, the client is
// served again, the Service keeps its address, the Node goes NotReady and
// kubectl ironlb status names the new announcer.
func testNodeDeath(t *testing.T, c *cluster, vip netip.Addr) {
	ctx := t.Context()
	owner, err := c.arpAnswer(ctx, vip)
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	if err := c.Node(owner).PowerCut(ctx); err != nil {
		t.Fatal(err)
	}
	var taker string
	err = framework.WaitFor(ctx, failoverTimeout, 20*time.Millisecond, func(ctx context.Context) (bool, error) {
		taker, _ = c.arpAnswer(ctx, vip)
		return taker != "" && taker != owner, nil
	})
	took := time.Since(begin)
	if err != nil {
		t.Fatalf("no other node answered ARP for %s after %s died: %v", vip, owner, err)
	}
	t.Logf("%s died: %s answered ARP for %s after %s", owner, taker, vip, took.Round(time.Millisecond))
	served := c.waitServed(t, vip, installTimeout, func(e echo) bool { return e.Via == taker && e.Node != owner })
	t.Logf("client served by %s through %s %s after the power cut", served.Pod, taker, time.Since(begin).Round(time.Millisecond))

	svc, err := c.ControlPlane.Client.CoreV1().Services("demo").Get(ctx, "echo", metav1.GetOptions{})
	if err != nil || len(svc.Status.LoadBalancer.Ingress) != 1 || svc.Status.LoadBalancer.Ingress[0].IP != vip.String() {
		t.Errorf("the Service's address changed after a node died: %v (%v)", svc.Status.LoadBalancer.Ingress, err)
	}
	c.checkStatus(t, "demo", "echo", vip, taker)
	err = framework.WaitFor(ctx, time.Minute, time.Second, func(ctx context.Context) (bool, error) {
		node, err := c.ControlPlane.Client.CoreV1().Nodes().Get(ctx, owner, metav1.GetOptions{})
		return err == nil && !nodelab.NodeReady(node), nil
	})
	if err != nil {
		t.Errorf("node %s never went NotReady: %v", owner, err)
	}
}

// arpAnswer asks for vip with one ARP request from the client and returns
// the node whose MAC answered ("" and an error without answer).
func (c *cluster) arpAnswer(ctx context.Context, vip netip.Addr) (string, error) {
	out, err := c.Lab.Client().Exec(ctx, "arping", "-c", "1", "-w", "0.3", "-i", netlab.Iface, vip.String())
	if err != nil {
		return "", err
	}
	fields := strings.Fields(out)
	for i, f := range fields {
		if f == "from" && i+1 < len(fields) {
			if n := c.Lab.NodeByMAC(fields[i+1]); n != nil {
				return n.Name, nil
			}
		}
	}
	return "", fmt.Errorf("arping %s: no node answered: %q", vip, out)
}

// checkStatus waits until `kubectl ironlb status`, run on the client as an
// operator on the LAN would, names node as the one announcing vip.
func (c *cluster) checkStatus(t *testing.T, ns, name string, vip netip.Addr, node string) {
	t.Helper()
	bin, err := framework.IronLBBinaries()
	if err != nil {
		t.Fatal(err)
	}
	var last string
	err = framework.WaitFor(t.Context(), failoverTimeout, 250*time.Millisecond, func(ctx context.Context) (bool, error) {
		out, err := c.Lab.Client().Exec(ctx, filepath.Join(bin, "kubectl-ironlb"), "status", "-o", "json", "--kubeconfig", c.ControlPlane.Kubeconfig)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		var st struct {
			Services []struct {
				Namespace, Name, IP string
				AnnouncedBy         []string
			}
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return false, err
		}
		for _, s := range st.Services {
			if s.Namespace == ns && s.Name == name && s.IP == vip.String() {
				last = fmt.Sprintf("announced by %v", s.AnnouncedBy)
				return slices.Equal(s.AnnouncedBy, []string{node}), nil
			}
		}
		last = "service not listed"
		return false, nil
	})
	if err != nil {
		t.Errorf("kubectl ironlb status for %s/%s %s: %s, want [%s]: %v", ns, name, vip, last, node, err)
	}
}
