package integration

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ironlb/ironlb/test/framework"
)

const poolsConfig = `
pools:
- name: lan
  addresses: [203.0.113.10-203.0.113.12]
  priority: 10
- name: overflow
  addresses: [203.0.113.100/30]
- name: manual
  addresses: [198.51.100.10-198.51.100.19]
  autoAssign: false
- name: prod-only
  addresses: [198.51.100.20-198.51.100.29]
  autoAssign: false
  namespaceSelector: {matchLabels: {env: prod}}
- name: edge
  addresses: [198.51.100.40-198.51.100.49]
  autoAssign: false
  serviceSelector: {matchLabels: {tier: edge}}
`

// Test 1: services get addresses from the right pool, with events; kubectl
// shows them.
func TestPoolSelection(t *testing.T) {
	e := newEnv(t, framework.Options{}, poolsConfig)
	e.startCCM(framework.CCMOptions{})

	e.createService(lbService("default", "first"))
	e.expectIPs("default", "first", "203.0.113.10")
	e.expectEvent("default", "first", "IPAllocated", "allocated 203.0.113.10 from pool lan")

	// Priority: lan (10) fills up first, then overflow.
	for _, name := range []string{"second", "third", "fourth"} {
		e.createService(lbService("default", name))
		e.expectIPs("default", name, map[string]string{"second": "203.0.113.11", "third": "203.0.113.12", "fourth": "203.0.113.100"}[name])
	}
	// autoAssign: false pools serve only services that ask.
	e.createService(lbService("default", "manual", withAnnotation("ironlb.io/pool", "manual")))
	e.expectIPs("default", "manual", "198.51.100.10")
	// Namespace selector.
	e.createService(lbService("prod", "p", withAnnotation("ironlb.io/pool", "prod-only")))
	e.expectIPs("prod", "p", "198.51.100.20")
	e.createService(lbService("dev", "d", withAnnotation("ironlb.io/pool", "prod-only")))
	e.expectEvent("dev", "d", "AllocationFailed", "pool prod-only's namespaceSelector (env=prod) does not match namespace dev")
	e.expectNoIP("dev", "d")
	// Service selector.
	e.createService(lbService("default", "edge", withAnnotation("ironlb.io/pool", "edge"), withLabel("tier", "edge")))
	e.expectIPs("default", "edge", "198.51.100.40")

	// The pool is recorded on the service.
	svc, err := e.client.CoreV1().Services("default").Get(e.ctx, "manual", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := svc.Annotations["ironlb.io/allocated-from"]; got != "manual" {
		t.Errorf("ironlb.io/allocated-from = %q, want manual", got)
	}
	if mode := svc.Status.LoadBalancer.Ingress[0].IPMode; mode == nil || *mode != v1.LoadBalancerIPModeVIP {
		t.Errorf("ipMode = %v, want VIP", mode)
	}
	// A person sees the same with kubectl.
	out, err := exec.CommandContext(e.ctx, "kubectl", "--kubeconfig", e.cp.Kubeconfig, "get", "svc", "-n", "default", "first").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "203.0.113.10") {
		t.Errorf("kubectl get svc: %v\n%s", err, out)
	}
}

// Test 2: requested IPs, honoured when valid, refused precisely otherwise.
func TestRequestedIPs(t *testing.T) {
	e := newEnv(t, framework.Options{}, poolsConfig)
	e.startCCM(framework.CCMOptions{})

	e.createService(lbService("default", "by-annotation", withAnnotation("ironlb.io/load-balancer-ips", "203.0.113.12")))
	e.expectIPs("default", "by-annotation", "203.0.113.12")
	legacy := lbService("default", "by-spec")
	legacy.Spec.LoadBalancerIP = "198.51.100.15"
	e.createService(legacy)
	e.expectIPs("default", "by-spec", "198.51.100.15")

	refusals := []struct{ name, ip, ns, want string }{
		{"taken", "203.0.113.12", "default", "203.0.113.12 is held by default/by-annotation"},
		{"outside", "203.0.113.200", "default", "requested IP 203.0.113.200 is not in any pool"},
		{"wrong-namespace", "198.51.100.21", "dev", "requested IP 198.51.100.21: pool prod-only's namespaceSelector (env=prod) does not match namespace dev"},
	}
	for _, r := range refusals {
		e.createService(lbService(r.ns, r.name, withAnnotation("ironlb.io/load-balancer-ips", r.ip)))
	}
	for _, r := range refusals {
		e.expectEvent(r.ns, r.name, "AllocationFailed", r.want)
		e.expectNoIP(r.ns, r.name)
	}
}

// Test 3a: sharing by key.
func TestSharing(t *testing.T) {
	e := newEnv(t, framework.Options{}, poolsConfig)
	e.startCCM(framework.CCMOptions{})

	e.createService(lbService("default", "dns-tcp", withAnnotation("ironlb.io/allow-shared-ip", "dns"), withPorts("TCP/53")))
	e.expectIPs("default", "dns-tcp", "203.0.113.10")
	e.createService(lbService("default", "dns-udp", withAnnotation("ironlb.io/allow-shared-ip", "dns"), withPorts("UDP/53")))
	e.expectIPs("default", "dns-udp", "203.0.113.10")
	e.createService(lbService("default", "clash", withAnnotation("ironlb.io/allow-shared-ip", "dns"), withPorts("TCP/53"),
		withAnnotation("ironlb.io/load-balancer-ips", "203.0.113.10")))
	e.expectEvent("default", "clash", "AllocationFailed", "port TCP/53 collides with default/dns-tcp on 203.0.113.10")
	e.createService(lbService("default", "stranger", withAnnotation("ironlb.io/load-balancer-ips", "203.0.113.10"), withPorts("TCP/8080")))
	e.expectEvent("default", "stranger", "AllocationFailed", "203.0.113.10 is held by default/dns-tcp")
}

// Test 3b: dual-stack services get one address per family.
func TestDualStack(t *testing.T) {
	e := newEnv(t, framework.Options{ServiceCIDR: "198.18.0.0/16,2001:db8:ffff::/112"}, `
pools:
- name: v4
  addresses: [203.0.113.10-203.0.113.20]
- name: v6
  addresses: ["2001:db8:1::/64"]
- name: v4-only
  addresses: [198.51.100.10]
  autoAssign: false
`)
	e.startCCM(framework.CCMOptions{})

	e.createService(lbService("default", "ds", withDualStack(v1.IPFamilyPolicyRequireDualStack, v1.IPv4Protocol, v1.IPv6Protocol)))
	e.expectIPs("default", "ds", "203.0.113.10", "2001:db8:1::")
	e.createService(lbService("default", "ds6", withDualStack(v1.IPFamilyPolicyRequireDualStack, v1.IPv6Protocol, v1.IPv4Protocol)))
	e.expectIPs("default", "ds6", "2001:db8:1::1", "203.0.113.11")
	e.createService(lbService("default", "v6", withDualStack(v1.IPFamilyPolicySingleStack, v1.IPv6Protocol)))
	e.expectIPs("default", "v6", "2001:db8:1::2")
	e.createService(lbService("default", "prefer", withDualStack(v1.IPFamilyPolicyPreferDualStack, v1.IPv4Protocol, v1.IPv6Protocol),
		withAnnotation("ironlb.io/pool", "v4-only")))
	e.expectIPs("default", "prefer", "198.51.100.10")
	e.createService(lbService("default", "require", withDualStack(v1.IPFamilyPolicyRequireDualStack, v1.IPv4Protocol, v1.IPv6Protocol),
		withAnnotation("ironlb.io/pool", "v4")))
	e.expectEvent("default", "require", "AllocationFailed", "no pool with IPv6 addresses among [v4]")
	svc, err := e.client.CoreV1().Services("default").Get(e.ctx, "ds", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := svc.Annotations["ironlb.io/allocated-from"]; got != "v4,v6" {
		t.Errorf("ironlb.io/allocated-from = %q, want v4,v6", got)
	}
}

// Test 4: deleting a service, or turning it into another type, releases its
// address for reuse.
func TestRelease(t *testing.T) {
	e := newEnv(t, framework.Options{}, "pools:\n- name: one\n  addresses: [203.0.113.50]\n")
	e.startCCM(framework.CCMOptions{})

	e.createService(lbService("default", "a"))
	e.expectIPs("default", "a", "203.0.113.50")
	if err := e.client.CoreV1().Services("default").Delete(e.ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The finalizer is removed, so the service really goes away.
	err := framework.WaitFor(e.ctx, allocateTimeout, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
		_, err := e.client.CoreV1().Services("default").Get(ctx, "a", metav1.GetOptions{})
		return err != nil, nil
	})
	if err != nil {
		t.Fatalf("service a never went away: %v", err)
	}
	e.createService(lbService("default", "b"))
	e.expectIPs("default", "b", "203.0.113.50")

	// Type change away from LoadBalancer releases too.
	patch := []byte(`{"spec":{"type":"ClusterIP","ports":[{"name":"http","protocol":"TCP","port":80,"nodePort":null}]}}`)
	if _, err := e.client.CoreV1().Services("default").Patch(e.ctx, "b", types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	e.expectEvent("default", "b", "IPReleased", "203.0.113.50")
	e.createService(lbService("default", "c"))
	e.expectIPs("default", "c", "203.0.113.50")
}

// Test 5: config changes take effect with no restart; an invalid one is
// rejected with an Event and the last good config keeps serving.
func TestLiveConfig(t *testing.T) {
	e := newEnv(t, framework.Options{}, "pools:\n- name: small\n  addresses: [203.0.113.10]\n")
	e.startCCM(framework.CCMOptions{Args: []string{"--allocation-retry-interval=2s"}})

	e.createService(lbService("default", "a"))
	e.expectIPs("default", "a", "203.0.113.10")
	e.createService(lbService("default", "pending"))
	e.expectEvent("default", "pending", "AllocationFailed", "no free IPv4 address")

	// A new pool: the pending service gets an address, no restart.
	e.applyConfig("pools:\n- name: small\n  addresses: [203.0.113.10]\n- name: more\n  addresses: [203.0.113.20-203.0.113.21]\n")
	e.expectIPs("default", "pending", "203.0.113.20")

	// Invalid: rejected with a precise event; allocations untouched; new
	// services still use the last good config.
	e.applyConfig("pools:\n- name: small\n  addresses: [203.0.113.300]\n")
	e.expectEvent(framework.IronLBNamespace, framework.ConfigMapName, "InvalidConfig", `pools[0].addresses[0]: Invalid value: "203.0.113.300": is not an IP, range or CIDR`)
	e.createService(lbService("default", "during-invalid"))
	e.expectIPs("default", "during-invalid", "203.0.113.21")
	e.expectIPs("default", "a", "203.0.113.10")
	ccmMetric(t, e, "ironlb_config_stale 1")

	// Fixed: back to normal.
	e.applyConfig("pools:\n- name: small\n  addresses: [203.0.113.10]\n- name: more\n  addresses: [203.0.113.20-203.0.113.29]\n")
	e.createService(lbService("default", "after-fix"))
	e.expectIPs("default", "after-fix", "203.0.113.22")
	ccmMetric(t, e, "ironlb_config_stale 0")
}

// ccmMetric waits until the first CCM's /metrics has a line.
func ccmMetric(t *testing.T, e *env, line string) {
	t.Helper()
	ccm := e.ccms()[0]
	var body string
	err := framework.WaitFor(e.ctx, eventTimeout, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
		_, b, err := ccm.Get(ctx, "/metrics")
		body = b
		return err == nil && strings.Contains(b, line), nil
	})
	if err != nil {
		t.Fatalf("/metrics lacks %q: %v\n%s", line, err, grepLines(body, "ironlb_"))
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Test 6: after kill -9 and a fresh start, every service keeps its address.
func TestRestartKeepsAddresses(t *testing.T) {
	const n = 300
	e := newEnv(t, framework.Options{}, "pools:\n- name: a\n  addresses: [198.51.100.0/24]\n- name: b\n  addresses: [203.0.113.0/24]\n")
	ccm := e.startCCM(framework.CCMOptions{Name: "ccm-1", FastLeaderElection: true, Args: []string{"--concurrent-service-syncs=10"}})
	e.createServicesConcurrently("svc", n, 8)
	before := e.waitAllAllocated(n)
	checkUniqueInPools(t, before, "198.51.100.0/24", "203.0.113.0/24")

	_ = ccm.Kill() // reports "signal: killed", which is the point

	// The new process leads once the dead one's (short) lease expires.
	e.startCCM(framework.CCMOptions{Name: "ccm-2", FastLeaderElection: true, Args: []string{"--concurrent-service-syncs=10"}})
	e.createServicesConcurrently("new", 20, 4)
	after := e.waitAllAllocated(n + 20)
	for svc, ips := range before {
		if strings.Join(after[svc], ",") != strings.Join(ips, ",") {
			t.Errorf("%s had %v before the restart and %v after", svc, ips, after[svc])
		}
	}
	checkUniqueInPools(t, after, "198.51.100.0/24", "203.0.113.0/24")
}

// Test 7: two replicas; the leader is killed while 500 services are created
// concurrently. Every service ends with a unique address from the pools.
func TestLeaderFailoverUnderLoad(t *testing.T) {
	const n = 500
	e := newEnv(t, framework.Options{}, "pools:\n- name: a\n  addresses: [198.51.100.0/24]\n- name: b\n  addresses: [203.0.113.0/24]\n")
	args := []string{"--concurrent-service-syncs=10"}
	first := e.startCCM(framework.CCMOptions{Name: "ccm-a", FastLeaderElection: true, Args: args})
	second := e.startCCM(framework.CCMOptions{Name: "ccm-b", FastLeaderElection: true, Args: args})

	done := make(chan struct{})
	go func() {
		defer close(done)
		e.createServicesConcurrently("svc", n, 8)
	}()
	// Kill whichever leads once a good part of the services has addresses.
	err := framework.WaitFor(e.ctx, allocateTimeout, 50*time.Millisecond, func(ctx context.Context) (bool, error) {
		allocated := 0
		for _, ips := range e.allIngress() {
			if len(ips) > 0 {
				allocated++
			}
		}
		return allocated >= n/4, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	leader, standby := first, second
	if !first.IsLeader() {
		leader, standby = second, first
	}
	t.Logf("killing leader %s", leader.Name)
	_ = leader.Kill()

	<-done
	all := e.waitAllAllocated(n)
	checkUniqueInPools(t, all, "198.51.100.0/24", "203.0.113.0/24")
	if !standby.IsLeader() {
		t.Errorf("%s never took over", standby.Name)
	}
}

// createServicesConcurrently creates n services named prefix-i from clients
// goroutines.
func (e *env) createServicesConcurrently(prefix string, n, clients int) {
	e.t.Helper()
	var wg sync.WaitGroup
	next := make(chan int)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				svc := lbService("default", fmt.Sprintf("%s-%d", prefix, i))
				if _, err := e.client.CoreV1().Services("default").Create(e.ctx, svc, metav1.CreateOptions{}); err != nil {
					e.t.Errorf("create %s: %v", svc.Name, err)
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// waitAllAllocated waits until n LoadBalancer services have an address.
func (e *env) waitAllAllocated(n int) map[string][]string {
	e.t.Helper()
	var all map[string][]string
	var allocated int
	err := framework.WaitFor(e.ctx, 3*time.Minute, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
		all, allocated = e.allIngress(), 0
		for _, ips := range all {
			if len(ips) > 0 {
				allocated++
			}
		}
		return allocated >= n, nil
	})
	if err != nil {
		e.t.Fatalf("%d of %d services have an address: %v", allocated, n, err)
	}
	return all
}

// Test 8: a node held back by the uninitialized taint gets its providerID
// and addresses, and the taint goes.
func TestNodeInitialization(t *testing.T) {
	e := newEnv(t, framework.Options{}, "pools: []\n")
	e.startCCM(framework.CCMOptions{})
	node := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1", Annotations: map[string]string{"alpha.kubernetes.io/provided-node-ip": "198.51.100.7"}},
		Spec:       v1.NodeSpec{Taints: []v1.Taint{{Key: "node.cloudprovider.kubernetes.io/uninitialized", Value: "true", Effect: v1.TaintEffectNoSchedule}}},
	}
	if _, err := e.client.CoreV1().Nodes().Create(e.ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got *v1.Node
	err := framework.WaitFor(e.ctx, allocateTimeout, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
		n, err := e.client.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		got = n
		// The cloud-node controller removes the taint in one write and
		// sets the addresses in the next (a status update): wait for both.
		hasInternal := slices.ContainsFunc(n.Status.Addresses, func(a v1.NodeAddress) bool { return a.Type == v1.NodeInternalIP })
		return n.Spec.ProviderID != "" && !hasTaint(n, "node.cloudprovider.kubernetes.io/uninitialized") && hasInternal, nil
	})
	if err != nil {
		t.Fatalf("node not initialized: %v (node: %+v)", err, got)
	}
	if got.Spec.ProviderID != "ironlb://node-1" {
		t.Errorf("providerID = %q", got.Spec.ProviderID)
	}
	var internal []string
	for _, a := range got.Status.Addresses {
		if a.Type == v1.NodeInternalIP {
			internal = append(internal, a.Address)
		}
	}
	if strings.Join(internal, ",") != "198.51.100.7" {
		t.Errorf("internal addresses = %v, want [198.51.100.7]", internal)
	}
}

// Test 9: bad input gets a precise event and hurts nobody else.
func TestBadInput(t *testing.T) {
	e := newEnv(t, framework.Options{}, poolsConfig)
	ccm := e.startCCM(framework.CCMOptions{})
	bad := []struct {
		name, key, value, want string
	}{
		{"not-an-ip", "ironlb.io/load-balancer-ips", "not-an-ip", `annotation ironlb.io/load-balancer-ips: "not-an-ip" is not an IP address`},
		{"two-v4", "ironlb.io/load-balancer-ips", "203.0.113.10,203.0.113.11", "asks for two IPv4 addresses (203.0.113.10 and 203.0.113.11)"},
		{"no-such-pool", "ironlb.io/pool", "nope", `annotation ironlb.io/pool: pool "nope" does not exist`},
	}
	for _, b := range bad {
		e.createService(lbService("default", b.name, withAnnotation(b.key, b.value)))
	}
	e.createService(lbService("default", "good"))
	for _, b := range bad {
		e.expectEvent("default", b.name, "AllocationFailed", b.want)
		e.expectNoIP("default", b.name)
	}
	e.expectIPs("default", "good", "203.0.113.10")
	if ccm.Exited() {
		t.Fatal("ironlb-ccm exited on bad input")
	}
	// Fixing the annotation is enough.
	patch := []byte(`{"metadata":{"annotations":{"ironlb.io/pool":"manual"}}}`)
	if _, err := e.client.CoreV1().Services("default").Patch(e.ctx, "no-such-pool", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	e.expectIPs("default", "no-such-pool", "198.51.100.10")
}

func hasTaint(n *v1.Node, key string) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == key {
			return true
		}
	}
	return false
}
