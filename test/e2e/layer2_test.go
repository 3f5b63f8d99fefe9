// Package e2e proves ironlb with real packets: a network lab of namespaces,
// a real control plane, the real ironlb-ccm and one real ironlb-speaker per
// node, and a client that resolves and reaches the VIPs.
package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/labenv"
	"github.com/ironlb/ironlb/test/netlab"
)

// The lab's VIPs lie outside its LAN subnet, so the pool names the
// interface to announce on.
const layer2Config = `
pools:
- name: l2
  addresses: [203.0.113.10-203.0.113.99, "2001:db8:200::10-2001:db8:200::99"]
  interfaces: [eth0]
- name: l2-edge
  addresses: [203.0.113.200-203.0.113.210]
  interfaces: [eth0]
  autoAssign: false
  nodeSelector: {matchLabels: {edge: "true"}}
`

const (
	ipTimeout       = 60 * time.Second
	takeoverTimeout = 30 * time.Second
)

// startEnv starts ironlb on a lab for t. When t fails, the speakers', the
// CCM's and any router's log tails are printed before everything goes; and
// once the lab is gone, none of its namespaces may remain.
func startEnv(t *testing.T, opts labenv.Options) *labenv.Env {
	t.Helper()
	opts.Dir, opts.Logf = logDir(t), t.Logf
	env, err := labenv.Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("start lab: %v", err)
	}
	// Registered first, so it runs last.
	t.Cleanup(func() { checkNamespacesGone(t, env.Lab.Namespaces()) })
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range env.Lab.Nodes() {
				if p := env.Speaker(n.Name); p != nil {
					t.Logf("speaker %s log tail:\n%s", n.Name, p.LogTail(40))
				}
			}
			t.Logf("ccm log tail:\n%s", env.CCM.LogTail(25))
			if env.Router != nil {
				t.Logf("FRR on r1:\n%s", env.Router.LogTails(40))
			}
		}
		env.Close()
	})
	// Tests begin once every speaker has met the others, as Services
	// created after an install find them. Speakers started at once pair
	// up before the last one answers: a Service created meanwhile can
	// be announced for some milliseconds by a node the others do not
	// elect, and its Announcing Event names that node.
	if err := env.WaitConverged(t.Context(), time.Minute); err != nil {
		t.Fatalf("the speakers did not all meet: %v", err)
	}
	return env
}

func startLayer2Env(t *testing.T) *labenv.Env {
	t.Helper()
	return startEnv(t, labenv.Options{Nodes: 3, DualStack: true, Config: layer2Config})
}

func lbService(name string, opts ...func(*v1.Service)) *v1.Service {
	s := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Annotations: map[string]string{}},
		Spec: v1.ServiceSpec{
			Type:  v1.ServiceTypeLoadBalancer,
			Ports: []v1.ServicePort{{Name: "http", Protocol: v1.ProtocolTCP, Port: labenv.HTTPPort}},
		},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func create(t *testing.T, env *labenv.Env, svc *v1.Service) netip.Addr {
	t.Helper()
	if _, err := env.Client.CoreV1().Services(svc.Namespace).Create(t.Context(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ip, err := env.WaitForIP(t.Context(), svc.Namespace, svc.Name, ipTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return ip
}

// waitAnswering waits until the VIP answers HTTP from the client with a
// node that satisfies ok, and returns it.
func waitAnswering(t *testing.T, env *labenv.Env, vip netip.Addr, ok func(node string) bool) string {
	t.Helper()
	var last string
	var lastErr error
	err := framework.WaitFor(t.Context(), takeoverTimeout, 50*time.Millisecond, func(ctx context.Context) (bool, error) {
		last, lastErr = env.Answering(ctx, vip, 500*time.Millisecond)
		return lastErr == nil && ok(last), nil
	})
	if err != nil {
		t.Fatalf("%s: last answer %q (%v): %v", vip, last, lastErr, err)
	}
	return last
}

func anyNode(string) bool { return true }

// announcer waits for the Announcing event that names who announces vip.
func announcer(t *testing.T, env *labenv.Env, svc string, vip netip.Addr) string {
	t.Helper()
	msg, err := framework.WaitForEvent(t.Context(), env.Client, "default", svc, "Announcing", " announces "+vip.String()+" ", ipTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(msg)[0]
}

// waitStatusAnnouncer waits until `kubectl ironlb status` names exactly node
// as the announcer of svc's vip: the same node the client's neighbour cache
// resolves the address to.
func waitStatusAnnouncer(t *testing.T, env *labenv.Env, svc string, vip netip.Addr, node string) {
	t.Helper()
	var last []string
	err := framework.WaitFor(t.Context(), takeoverTimeout, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
		got, err := env.AnnouncedBy(ctx, "default", svc, vip)
		if err != nil {
			return false, nil
		}
		last = got
		return len(got) == 1 && got[0] == node, nil
	})
	if err != nil {
		t.Errorf("kubectl ironlb status: %s announced by %v, want only %s (the client's neighbour entry): %v", vip, last, node, err)
	}
}

// blockMemberlist drops, in node's namespace, every memberlist packet (port
// 7946, TCP and UDP) to and from node, leaving the API, ARP and HTTP alone.
func blockMemberlist(t *testing.T, env *labenv.Env, node string, block bool) {
	t.Helper()
	host := env.Lab.Node(nodeIndex(env, node))
	if !block {
		_, _ = host.Exec(context.Background(), "nft", "delete", "table", "inet", "ironlb-test")
		return
	}
	ruleset := `table inet ironlb-test {
	chain in { type filter hook input priority 0; tcp dport 7946 drop; udp dport 7946 drop; }
	chain out { type filter hook output priority 0; tcp dport 7946 drop; udp dport 7946 drop; }
}`
	if out, err := host.Exec(t.Context(), "nft", ruleset); err != nil {
		t.Fatalf("nft on %s: %v\n%s", node, err, out)
	}
}

// waitMetric waits until node's speaker exposes line (a whole metrics line).
func waitMetric(t *testing.T, env *labenv.Env, node, line string) {
	t.Helper()
	var body string
	err := framework.WaitFor(t.Context(), takeoverTimeout, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
		var err error
		body, err = env.SpeakerMetrics(ctx, node)
		return err == nil && strings.Contains(body, line+"\n"), nil
	})
	if err != nil {
		t.Fatalf("%s's speaker never exposed %q: %v", node, line, err)
	}
}

// serviceVersion is a service's resourceVersion in the default namespace.
func serviceVersion(t *testing.T, env *labenv.Env, name string) string {
	t.Helper()
	svc, err := env.Client.CoreV1().Services("default").Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return svc.ResourceVersion
}

// arpingMACs returns the MACs that answer ARP for vip from the client.
func arpingMACs(t *testing.T, env *labenv.Env, vip netip.Addr) []string {
	t.Helper()
	// Habets arping: -c count, -w deadline (s), -i interface; a non-zero
	// exit just means no answer.
	out, _ := env.Lab.Client().Exec(t.Context(), "arping", "-c", "2", "-w", "2", "-i", netlab.Iface, vip.String())
	seen := map[string]bool{}
	var macs []string
	for _, f := range strings.Fields(out) {
		if strings.Count(f, ":") == 5 && !seen[f] {
			seen[f] = true
			macs = append(macs, strings.ToLower(f))
		}
	}
	return macs
}

func TestLayer2(t *testing.T) {
	env := startLayer2Env(t)

	t.Run("IPv4: ARP, neighbour cache and HTTP reach the announcing node", func(t *testing.T) {
		vip := create(t, env, lbService("web"))
		owner := announcer(t, env, "web", vip)
		if got := waitAnswering(t, env, vip, anyNode); got != owner {
			t.Errorf("HTTP answered by %s, the Event names %s", got, owner)
		}
		macs := arpingMACs(t, env, vip)
		if len(macs) != 1 || env.NodeByMAC(macs[0]) != owner {
			t.Errorf("ARP answers %v, want only %s's MAC", macs, owner)
		}
		mac, _ := env.ClientNeighbor(t.Context(), vip)
		if env.NodeByMAC(mac) != owner {
			t.Errorf("client neighbour entry %q, want %s's MAC", mac, owner)
		}
		waitStatusAnnouncer(t, env, "web", vip, env.NodeByMAC(mac))
	})

	t.Run("loadBalancerClass: ironlb's class is announced, another implementation's address is not", func(t *testing.T) {
		ours := create(t, env, lbService("classed", func(s *v1.Service) { s.Spec.LoadBalancerClass = ptr.To(config.DefaultLoadBalancerClass) }))
		owner := announcer(t, env, "classed", ours)
		if got := waitAnswering(t, env, ours, anyNode); got != owner {
			t.Errorf("HTTP answered by %s, the Event names %s", got, owner)
		}

		// Another load balancer's Service holding an address inside an
		// ironlb pool, as its controller would write it.
		theirs := lbService("metallb-svc", func(s *v1.Service) { s.Spec.LoadBalancerClass = ptr.To("metallb.io/metallb") })
		created, err := env.Client.CoreV1().Services("default").Create(t.Context(), theirs, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		foreign := netip.MustParseAddr("203.0.113.99")
		created.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: foreign.String(), IPMode: ptr.To(v1.LoadBalancerIPModeVIP)}}
		if _, err := env.Client.CoreV1().Services("default").UpdateStatus(t.Context(), created, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		// A speaker syncs within milliseconds of a Service change: three
		// seconds of silence, checked twice, is no announcement.
		for range 2 {
			time.Sleep(1500 * time.Millisecond)
			if macs := arpingMACs(t, env, foreign); len(macs) > 0 {
				t.Fatalf("ARP answers for another implementation's %s from %v", foreign, macs)
			}
		}
		got, err := env.Client.CoreV1().Services("default").Get(t.Context(), "metallb-svc", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Finalizers) > 0 || len(got.Annotations) > 0 {
			t.Errorf("ironlb wrote on another implementation's Service: finalizers %v, annotations %v", got.Finalizers, got.Annotations)
		}
	})

	t.Run("speakers run with CAP_NET_RAW only", func(t *testing.T) {
		const netRaw = 1 << 13 // CAP_NET_RAW
		for _, n := range env.Lab.Nodes() {
			data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", env.Speaker(n.Name).Pid()))
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(string(data), "\n") {
				if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
					var eff uint64
					fmt.Sscanf(strings.TrimSpace(v), "%x", &eff)
					if eff != netRaw {
						t.Errorf("speaker on %s has effective capabilities %#x, want only CAP_NET_RAW (%#x)", n.Name, eff, netRaw)
					}
				}
			}
		}
	})

	t.Run("IPv6: NDP, neighbour cache and HTTP", func(t *testing.T) {
		vip := create(t, env, lbService("web6", func(s *v1.Service) {
			s.Spec.IPFamilies, s.Spec.IPFamilyPolicy = []v1.IPFamily{v1.IPv6Protocol}, ptr.To(v1.IPFamilyPolicySingleStack)
		}))
		if !vip.Is6() {
			t.Fatalf("got %s, want an IPv6 VIP", vip)
		}
		owner := announcer(t, env, "web6", vip)
		if got := waitAnswering(t, env, vip, anyNode); got != owner {
			t.Errorf("HTTP over IPv6 answered by %s, the Event names %s", got, owner)
		}
		out, _ := env.Lab.Client().Exec(t.Context(), "ip", "-6", "neigh", "show", vip.String())
		if !strings.Contains(strings.ToLower(out), env.Lab.Node(nodeIndex(env, owner)).MAC.String()) {
			t.Errorf("client's IPv6 neighbour cache %q lacks %s's MAC", out, owner)
		}
		waitStatusAnnouncer(t, env, "web6", vip, owner)
	})

	t.Run("spread: 30 services over 3 nodes", func(t *testing.T) {
		perNode := map[string]int{}
		for i := range 30 {
			name := fmt.Sprintf("spread-%d", i)
			vip := create(t, env, lbService(name))
			perNode[waitAnswering(t, env, vip, anyNode)]++
		}
		t.Logf("distribution of 30 services: %v", perNode)
		for _, n := range env.Lab.Nodes() {
			if perNode[n.Name] == 0 {
				t.Errorf("node %s announces none of 30 services: %v", n.Name, perNode)
			}
		}
	})

	t.Run("externalTrafficPolicy Local follows ready endpoints", func(t *testing.T) {
		vip := create(t, env, lbService("local", func(s *v1.Service) { s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal }))
		// No endpoint anywhere: nobody answers.
		time.Sleep(time.Second)
		if macs := arpingMACs(t, env, vip); len(macs) != 0 {
			t.Errorf("with no endpoints, ARP answered by %v", macs)
		}
		for _, node := range []string{"n2", "n3"} {
			setEndpoints(t, env, "local", node)
			if got := waitAnswering(t, env, vip, func(n string) bool { return n == node }); got != node {
				t.Fatalf("answered by %s, want %s (the endpoint's node)", got, node)
			}
		}
		setEndpoints(t, env, "local", "")
		err := framework.WaitFor(t.Context(), takeoverTimeout, 200*time.Millisecond, func(context.Context) (bool, error) {
			return len(arpingMACs(t, env, vip)) == 0, nil
		})
		if err != nil {
			t.Errorf("ARP still answered after every endpoint went: %v", err)
		}
	})

	t.Run("sharing with externalTrafficPolicy Local, endpoints on disjoint nodes: announced from one of them", func(t *testing.T) {
		shared := func(name string, port int32) *v1.Service {
			return lbService(name, func(s *v1.Service) {
				s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
				s.Spec.Ports[0].Port = port
				s.Annotations[config.AnnotationAllowSharedIP] = "local-pair"
				s.Annotations[config.AnnotationLoadBalancerIPs] = "203.0.113.98"
			})
		}
		// One service's endpoint on n1, the other's on n3: no node serves
		// both. Before, no node announced the address at all.
		setEndpoints(t, env, "pair-a", "n1")
		setEndpoints(t, env, "pair-b", "n3")
		vip := create(t, env, shared("pair-a", labenv.HTTPPort))
		if got := create(t, env, shared("pair-b", labenv.HTTPPort+1)); got != vip {
			t.Fatalf("pair-b got %s, want the shared %s", got, vip)
		}
		// Until every speaker has seen pair-b, pair-a alone is served from
		// n1: the owner is the one node answering ARP once both are seen,
		// not whichever answered first.
		var owner string
		var macs []string
		if err := framework.WaitFor(t.Context(), takeoverTimeout, 200*time.Millisecond, func(context.Context) (bool, error) {
			macs = arpingMACs(t, env, vip)
			owner = ""
			if len(macs) == 1 {
				owner = env.NodeByMAC(macs[0])
			}
			return owner == "n1" || owner == "n3", nil
		}); err != nil {
			t.Fatalf("ARP answers %v, want one MAC, n1's or n3's: %v", macs, err)
		}
		waitAnswering(t, env, vip, func(n string) bool { return n == owner })
		// The service whose endpoint is elsewhere is told.
		unserved := map[string]string{"n1": "pair-b", "n3": "pair-a"}[owner]
		if _, err := framework.WaitForEvent(t.Context(), env.Client, "default", unserved, "NoLocalEndpoint", owner+" announces it for the others", ipTimeout); err != nil {
			t.Error(err)
		}
		// An endpoint of both on n2: n2 alone.
		setEndpoints(t, env, "pair-a", "n2")
		setEndpoints(t, env, "pair-b", "n2")
		waitAnswering(t, env, vip, func(n string) bool { return n == "n2" })
		for _, name := range []string{"pair-a", "pair-b"} {
			setEndpoints(t, env, name, "")
			if err := env.Client.CoreV1().Services("default").Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("config change moves ownership with no restart", func(t *testing.T) {
		vip := create(t, env, lbService("edge", func(s *v1.Service) { s.Annotations["ironlb.io/pool"] = "l2-edge" }))
		labelNode(t, env, "n1", "true")
		if got := waitAnswering(t, env, vip, func(n string) bool { return n == "n1" }); got != "n1" {
			t.Fatalf("answered by %s, want n1 (the only edge node)", got)
		}
		labelNode(t, env, "n1", "")
		labelNode(t, env, "n3", "true")
		waitAnswering(t, env, vip, func(n string) bool { return n == "n3" })
		// And the pool's own selector: drop it, every node is eligible.
		if err := framework.ApplyConfig(t.Context(), env.Client, strings.Replace(layer2Config, `nodeSelector: {matchLabels: {edge: "true"}}`, `nodeSelector: {matchLabels: {edge: "false"}}`, 1)); err != nil {
			t.Fatal(err)
		}
		labelNode(t, env, "n2", "false")
		waitAnswering(t, env, vip, func(n string) bool { return n == "n2" })
	})

	t.Run("config deleted, speakers restarted, pool shrunk: a held address stays answered until released", func(t *testing.T) {
		// One IPv4 address probed over HTTP, one IPv6 address with NDP.
		const heldIP, heldIP6 = "203.0.113.99", "2001:db8:200::99"
		vip := create(t, env, lbService("held", func(s *v1.Service) { s.Annotations[config.AnnotationLoadBalancerIPs] = heldIP }))
		vip6 := create(t, env, lbService("held6", func(s *v1.Service) {
			s.Spec.IPFamilies, s.Spec.IPFamilyPolicy = []v1.IPFamily{v1.IPv6Protocol}, ptr.To(v1.IPFamilyPolicySingleStack)
			s.Annotations[config.AnnotationLoadBalancerIPs] = heldIP6
		}))
		waitAnswering(t, env, vip, anyNode)
		waitAnswering(t, env, vip6, anyNode)
		t.Cleanup(func() {
			if err := framework.ApplyConfig(context.Background(), env.Client, layer2Config); err != nil {
				t.Errorf("restoring the config: %v", err)
			}
		})
		watchBoth := func() (*gapWatch, *gapWatch) {
			return watchGaps(t, vip, httpAnswered(env, vip)), watchGaps(t, vip6, ndpAnswered(env, vip6))
		}
		gaps, gaps6 := watchBoth()

		// Deleted: every speaker sees it go and keeps announcing.
		deleteConfig(t, env)
		owner := waitAnswering(t, env, vip, anyNode)
		gaps.check(t, "ironlb-config deleted", time.Second)
		gaps6.check(t, "ironlb-config deleted: NDP for "+heldIP6, time.Second)
		// A speaker started meanwhile announces from the kept configs in
		// the API: restart the owner (kill -9, so failover applies), then
		// every other one.
		restartSpeaker(t, env, owner)
		waitAnswering(t, env, vip, anyNode)
		waitAnswering(t, env, vip6, anyNode)

		// Back, with the pools shrunk below the held addresses: they stay,
		// announced as the pool last said, and the Services are told.
		gaps, gaps6 = watchBoth()
		shrunk := strings.NewReplacer("203.0.113.10-203.0.113.99", "203.0.113.10-203.0.113.98",
			"2001:db8:200::10-2001:db8:200::99", "2001:db8:200::10-2001:db8:200::98").Replace(layer2Config)
		if err := framework.ApplyConfig(t.Context(), env.Client, shrunk); err != nil {
			t.Fatal(err)
		}
		for name, ip := range map[string]string{"held": heldIP, "held6": heldIP6} {
			if _, err := framework.WaitForEvent(t.Context(), env.Client, "default", name, "AnnouncedFromKeptConfig", ip+" is in no pool", ipTimeout); err != nil {
				t.Error(err)
			}
		}
		for _, n := range env.Lab.Nodes() {
			waitMetric(t, env, n.Name, "ironlb_speaker_config_stale 0")
		}
		waitAnswering(t, env, vip, anyNode)
		gaps.check(t, "pool shrunk below the address", time.Second)
		gaps6.check(t, "pool shrunk below the address: NDP for "+heldIP6, time.Second)
		for _, n := range env.Lab.Nodes() {
			restartSpeaker(t, env, n.Name)
			waitAnswering(t, env, vip, anyNode)
			waitAnswering(t, env, vip6, anyNode)
		}

		// The services release them: withdrawn, and the kept configs
		// shrink to the one in force.
		for _, name := range []string{"held", "held6"} {
			if err := env.Client.CoreV1().Services("default").Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		err := framework.WaitFor(t.Context(), takeoverTimeout, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
			return len(arpingMACs(t, env, vip)) == 0 && !ndpAnswered(env, vip6)(ctx), nil
		})
		if err != nil {
			t.Errorf("ARP or NDP still answered after the services were deleted: %v", err)
		}
		if err := framework.ApplyConfig(t.Context(), env.Client, layer2Config); err != nil {
			t.Fatal(err)
		}
		waitKeptPruned(t, env)
	})

	t.Run("rolling restart with a dead node in the Node list: every address stays answered", func(t *testing.T) {
		// A Node whose InternalIP is on the LAN but drops the memberlist
		// port silently (a hung machine, a firewall): a join to it waits
		// out the connect timeout. The client's namespace plays it.
		const downIP = "198.51.100.120" // no lab host has it
		client := env.Lab.Client()
		ruleset := `table inet ironlb-down { chain in { type filter hook input priority 0; ip daddr ` + downIP + ` tcp dport 7946 drop; ip daddr ` + downIP + ` udp dport 7946 drop; }
}`
		if out, err := client.Exec(t.Context(), "ip", "addr", "add", downIP+"/25", "dev", netlab.Iface); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if out, err := client.Exec(t.Context(), "nft", ruleset); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		down := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "down"}, Status: v1.NodeStatus{Addresses: []v1.NodeAddress{
			{Type: v1.NodeInternalIP, Address: downIP}}}}
		if _, err := env.Client.CoreV1().Nodes().Create(t.Context(), down, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx := context.Background()
			_ = env.Client.CoreV1().Nodes().Delete(ctx, "down", metav1.DeleteOptions{})
			_, _ = client.Exec(ctx, "nft", "delete", "table", "inet", "ironlb-down")
			_, _ = client.Exec(ctx, "ip", "addr", "del", downIP+"/25", "dev", netlab.Iface)
		})
		var vips []netip.Addr
		for i := range 3 {
			vips = append(vips, create(t, env, lbService(fmt.Sprintf("rolling-%d", i))))
		}
		for _, vip := range vips {
			waitAnswering(t, env, vip, anyNode)
		}
		// As a DaemonSet rolls: SIGTERM, the new one started, the next
		// node only once it is ready.
		for _, n := range env.Lab.Nodes() {
			var watches []*gapWatch
			for _, vip := range vips {
				watches = append(watches, watchGaps(t, vip, arpAnswered(env, vip)))
			}
			_ = env.Speaker(n.Name).Signal(syscall.SIGTERM)
			waitExit(t, env.Speaker(n.Name))
			if err := env.StartSpeaker(t.Context(), n.Name); err != nil {
				t.Fatal(err)
			}
			if err := env.WaitConverged(t.Context(), takeoverTimeout); err != nil {
				t.Fatalf("speakers did not converge after restarting %s: %v", n.Name, err)
			}
			// The bound is twice the failover goal: what this catches is a
			// restarted speaker elected seconds before it announces.
			for i, w := range watches {
				w.check(t, fmt.Sprintf("%s restarted: %s", n.Name, vips[i]), 2*time.Second)
			}
		}
	})

	t.Run("memberlist port blocked on one node: one owner per address, no restart", func(t *testing.T) {
		var vips []netip.Addr
		for i := range 6 {
			vip := create(t, env, lbService(fmt.Sprintf("split-%d", i)))
			waitAnswering(t, env, vip, anyNode)
			vips = append(vips, vip)
		}
		cut := announcer(t, env, "split-0", vips[0])
		// An address only cut may serve: its pool selects cut alone.
		for _, n := range env.Lab.Nodes() {
			labelNode(t, env, n.Name, map[bool]string{true: "true"}[n.Name == cut])
		}
		onlyCut := create(t, env, lbService("split-edge", func(s *v1.Service) { s.Annotations["ironlb.io/pool"] = "l2-edge" }))
		waitAnswering(t, env, onlyCut, func(n string) bool { return n == cut })
		start := time.Now()
		blockMemberlist(t, env, cut, true)
		t.Cleanup(func() { blockMemberlist(t, env, cut, false) })
		// The others lose cut and mark it Unreachable through the API; cut,
		// finding itself marked and alone, stands down.
		waitMetric(t, env, cut, "ironlb_speaker_partitioned 1")
		t.Logf("%s stood down %v after its memberlist port was blocked", cut, time.Since(start).Round(10*time.Millisecond))
		if _, err := framework.WaitForEvent(t.Context(), env.Client, "default", cut, "MembershipPartitioned", "port 7946", ipTimeout); err != nil {
			t.Error(err)
		}
		// Settled: cut reads Partitioned, the others Running, and from now
		// on cut marks no one however long the partition lasts.
		waitSpeakerStates(t, env, func(node string) string { return map[bool]string{true: "Partitioned", false: "Running"}[node == cut] })
		settled, marks := time.Now(), departedMarks(t, env, cut)
		for _, vip := range vips {
			err := framework.WaitFor(t.Context(), takeoverTimeout, 200*time.Millisecond, func(context.Context) (bool, error) {
				macs := arpingMACs(t, env, vip)
				return len(macs) == 1 && env.NodeByMAC(macs[0]) != cut, nil
			})
			if err != nil {
				t.Errorf("%s: ARP answered by %v during the partition, want one node other than %s: %v", vip, arpingMACs(t, env, vip), cut, err)
			}
		}
		// Past one sweep interval (10 s), nothing was marked again.
		time.Sleep(11*time.Second - time.Since(settled))
		if now := departedMarks(t, env, cut); now != marks {
			t.Errorf("%s marked %d more speakers Unreachable while partitioned", cut, now-marks)
		}
		waitSpeakerStates(t, env, func(node string) string { return map[bool]string{true: "Partitioned", false: "Running"}[node == cut] })
		// What the other side cannot serve, cut keeps.
		if macs := arpingMACs(t, env, onlyCut); len(macs) != 1 || env.NodeByMAC(macs[0]) != cut {
			t.Errorf("%s (only %s is eligible): ARP answered by %v during the partition, want %s alone", onlyCut, cut, macs, cut)
		}
		// The other side dies while cut stands down: once its sweeper stops
		// renewing the side Lease (15 s), cut announces everything again.
		var others []string
		for _, n := range env.Lab.Nodes() {
			if n.Name != cut {
				others = append(others, n.Name)
				_ = env.Speaker(n.Name).Kill()
			}
		}
		start = time.Now()
		for _, vip := range vips {
			waitAnswering(t, env, vip, func(n string) bool { return n == cut })
		}
		t.Logf("the other side died: %s answered all %d addresses again after %v (the side Lease lasts 15 s)", cut, len(vips), time.Since(start).Round(10*time.Millisecond))
		waitMetric(t, env, cut, "ironlb_speaker_partitioned 0")
		if _, err := framework.WaitForEvent(t.Context(), env.Client, "default", cut, "PartitionOtherSideGone", "stopped renewing", ipTimeout); err != nil {
			t.Error(err)
		}
		// They come back, still cut off from cut: the larger side takes the
		// Lease over, and cut stands down again.
		for _, n := range others {
			if err := env.StartSpeaker(t.Context(), n); err != nil {
				t.Fatal(err)
			}
		}
		waitMetric(t, env, cut, "ironlb_speaker_partitioned 1")
		// The port opens again: the speakers meet, cut announces as usual.
		blockMemberlist(t, env, cut, false)
		start = time.Now()
		if err := env.WaitConverged(t.Context(), 2*takeoverTimeout); err != nil {
			t.Fatalf("speakers did not meet again after the partition: %v", err)
		}
		waitMetric(t, env, cut, "ironlb_speaker_partitioned 0")
		t.Logf("the speakers met again %v after the port opened (join retries back off to 30 s)", time.Since(start).Round(10*time.Millisecond))
		waitAnswering(t, env, vips[0], func(n string) bool { return n == cut })
		labelNode(t, env, cut, "")
	})

	for _, fault := range []struct {
		id, name string
		inject   func(t *testing.T, node string)
		repair   func(t *testing.T, node string)
	}{
		{"kill", "kill -9 the owner's speaker",
			func(t *testing.T, node string) { _ = env.Speaker(node).Kill() },
			func(t *testing.T, node string) { restartSpeaker(t, env, node) }},
		{"linkdown", "owner's link down",
			func(t *testing.T, node string) { setLink(t, env, node, false) },
			func(t *testing.T, node string) { setLink(t, env, node, true); restartSpeaker(t, env, node) }},
		{"sigterm", "SIGTERM the owner's speaker",
			func(t *testing.T, node string) { _ = env.Speaker(node).Signal(syscall.SIGTERM) },
			func(t *testing.T, node string) { restartSpeaker(t, env, node) }},
	} {
		t.Run("failover: "+fault.name, func(t *testing.T) {
			vip := create(t, env, lbService("failover-"+fault.id))
			owner := waitAnswering(t, env, vip, anyNode)
			waitStatusAnnouncer(t, env, "failover-"+fault.id, vip, owner)
			before := serviceVersion(t, env, "failover-"+fault.id)
			start := time.Now()
			fault.inject(t, owner)
			next := waitAnswering(t, env, vip, func(n string) bool { return n != owner })
			t.Logf("%s: %s took over from %s; first answer after %v", fault.name, next, owner, time.Since(start))
			// The client's neighbour entry moved (gratuitous ARP, or a fresh
			// resolution), and the old owner is silent once its speaker is
			// gone (a stopping speaker leaves first, then withdraws).
			if p := env.Speaker(owner); fault.id == "sigterm" {
				waitExit(t, p)
			}
			// A stopping owner answers for a moment after the new one took
			// over; the new owner's later gratuitous rounds (up to 4.4 s)
			// settle the client's entry.
			var mac string
			if err := framework.WaitFor(t.Context(), 10*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
				mac, _ = env.ClientNeighbor(ctx, vip)
				return env.NodeByMAC(mac) == next, nil
			}); err != nil {
				t.Errorf("client's neighbour entry %q, want %s's MAC: %v", mac, next, err)
			}
			// kubectl ironlb status follows: the new owner reports itself,
			// and the old one's claim is gone (withdrawn on SIGTERM, cleared
			// by the surviving speakers otherwise).
			waitStatusAnnouncer(t, env, "failover-"+fault.id, vip, next)
			// Reporting the new announcer wrote no Service: the service
			// controller had nothing to re-ensure, no Service watcher woke.
			if after := serviceVersion(t, env, "failover-"+fault.id); after != before {
				t.Errorf("the Service was written during the failover (resourceVersion %s → %s)", before, after)
			}
			for _, mac := range arpingMACs(t, env, vip) {
				if env.NodeByMAC(mac) != next {
					t.Errorf("ARP answered by %s after the takeover", env.NodeByMAC(mac))
				}
			}
			fault.repair(t, owner)
		})
	}
}

// nodeIndex is the lab's 1-based number of a node.
func nodeIndex(env *labenv.Env, name string) int {
	for i, n := range env.Lab.Nodes() {
		if n.Name == name {
			return i + 1
		}
	}
	return -1
}

// setEndpoints replaces the service's EndpointSlice with one ready endpoint
// on node ("" for none), as the EndpointSlice controller would.
// waitSpeakerStates waits until every node's SpeakerStatus reads want(node).
func waitSpeakerStates(t *testing.T, env *labenv.Env, want func(node string) string) {
	t.Helper()
	var last []string
	err := framework.WaitFor(t.Context(), takeoverTimeout, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
		st, err := env.PluginStatus(ctx)
		if err != nil {
			return false, nil
		}
		last = last[:0]
		ok := len(st.Speakers) == len(env.Lab.Nodes())
		for _, sp := range st.Speakers {
			last = append(last, sp.Node+"="+sp.State)
			ok = ok && sp.State == want(sp.Node)
		}
		return ok, nil
	})
	if err != nil {
		t.Fatalf("SpeakerStatus states %v: %v", last, err)
	}
}

// departedMarks is how many speakers node's speaker has marked Unreachable.
func departedMarks(t *testing.T, env *labenv.Env, node string) int {
	t.Helper()
	body, err := env.SpeakerMetrics(t.Context(), node)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, "ironlb_speaker_status_departed_marked_total "); ok {
			var n int
			if _, err := fmt.Sscan(v, &n); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			return n
		}
	}
	return 0
}

func setEndpoints(t *testing.T, env *labenv.Env, svc, node string) {
	t.Helper()
	slices := env.Client.DiscoveryV1().EndpointSlices("default")
	_ = slices.Delete(t.Context(), svc+"-lab", metav1.DeleteOptions{})
	if node == "" {
		return
	}
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: svc + "-lab", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{env.Lab.Node(nodeIndex(env, node)).IPv4.String()},
			NodeName: ptr.To(node), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(labenv.HTTPPort)), Protocol: ptr.To(v1.ProtocolTCP)}},
	}
	if _, err := slices.Create(t.Context(), es, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func labelNode(t *testing.T, env *labenv.Env, node, edge string) {
	t.Helper()
	value := `null`
	if edge != "" {
		value = `"` + edge + `"`
	}
	patch := []byte(`{"metadata":{"labels":{"edge":` + value + `}}}`)
	if _, err := env.Client.CoreV1().Nodes().Patch(t.Context(), node, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

func setLink(t *testing.T, env *labenv.Env, node string, up bool) {
	t.Helper()
	if err := env.Lab.Node(nodeIndex(env, node)).SetLink(t.Context(), up); err != nil {
		t.Fatal(err)
	}
}

// restartSpeaker starts node's speaker afresh and waits until every speaker
// sees all the others again, so the next check starts from one agreed view.
func restartSpeaker(t *testing.T, env *labenv.Env, node string) {
	t.Helper()
	_ = env.Speaker(node).Kill()
	if err := env.StartSpeaker(t.Context(), node); err != nil {
		t.Fatal(err)
	}
	if err := env.WaitConverged(t.Context(), takeoverTimeout); err != nil {
		t.Fatalf("speakers did not converge after restarting %s: %v", node, err)
	}
}

func waitExit(t *testing.T, p *framework.Process) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not exit within 10 s of SIGTERM", p.Name)
	}
}

// logDir keeps the lab's logs when the test fails, and says where.
func logDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ironlb-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	return dir
}
