package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/labenv"
	"github.com/ironlb/ironlb/test/netlab"
	"github.com/ironlb/ironlb/test/routers"
)

// The BGP lab: r1 (AS 64512) peers over eBGP with the three nodes (AS
// 64515), over IPv4 and IPv6; client2 sits behind r1 and reaches the VIPs
// only through the routes r1 learned.
const (
	routerASN = 64512
	nodeASN   = 64515
	// holdTime is the peers' hold time: short, so that a node that vanishes
	// without closing its sessions is dropped within seconds.
	holdTime = 9 * time.Second
	// bgpSecret holds r1's TCP MD5 password in ironlb-system.
	bgpSecret   = "bgp-r1"
	md5Password = "s3cret-md5"
	// routeTimeout bounds a route's arrival or withdrawal at r1; sessions
	// that have to be re-established take up to gobgp's 5 s idle hold
	// plus a connect.
	routeTimeout = 20 * time.Second
)

// bgpConfig is ironlb-config for the BGP lab. With md5, peer r1 (IPv4)
// authenticates with the password in Secret bgp-r1. revision only changes
// a comment: the speakers read password Secrets when the config changes, so
// rotating a password means touching the config (docs/configuration.md).
func bgpConfig(md5 bool, revision int) string {
	password := ""
	if md5 {
		password = ", passwordSecretRef: {name: " + bgpSecret + ", key: password}"
	}
	return fmt.Sprintf(`# revision %d
pools:
- name: bgp
  addresses: [203.0.113.128/26, "2001:db8:200::100-2001:db8:200::1ff"]
  mode: bgp
bgp:
  localASN: %d
  peers:
  - {name: r1, address: 198.51.100.1, asn: %d, holdTime: %s, keepaliveTime: 3s%s}
  - {name: r1-v6, address: "2001:db8:100::1", asn: %d, holdTime: %s, keepaliveTime: 3s}
  advertisements:
  - pools: [bgp]
    communities: ["64512:100", "64512:1:2"]
    # LOCAL_PREF is for iBGP peers only (RFC 4271), so r1 never sees it;
    # announcer/bgp's TestBIRD checks it over iBGP.
    localPref: 300
`, revision, nodeASN, routerASN, holdTime, password, routerASN, holdTime)
}

func startBGPEnv(t *testing.T) *labenv.Env {
	t.Helper()
	return startEnv(t, labenv.Options{
		Nodes: 3, DualStack: true, Config: bgpConfig(false, 0),
		Routers: []string{"r1"}, Client2: true,
		FRR: func(lab *netlab.Lab) string {
			return routers.FRRNodesConfig(lab.Routers()[0], routerASN, nodeASN, lab.Nodes(), "")
		},
		// What the DaemonSet grants; BGP itself needs none (it only dials
		// out, from an unprivileged port).
		SpeakerCapabilities: []string{"net_raw", "net_admin"},
	})
}

// checkNamespacesGone fails t if `ip netns list` still shows one of
// namespaces.
func checkNamespacesGone(t *testing.T, namespaces []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Errorf("ip netns list: %v: %s", err, out)
		return
	}
	// One namespace per line, "name" or "name (id: N)".
	listed := map[string]bool{}
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) > 0 {
			listed[f[0]] = true
		}
	}
	for _, ns := range namespaces {
		if listed[ns] {
			t.Errorf("namespace %s is left behind", ns)
		}
	}
}

// nodeAddrs returns the LAN addresses (of the family of v6) of the named
// nodes, in order.
func nodeAddrs(env *labenv.Env, v6 bool, names ...string) []netip.Addr {
	var out []netip.Addr
	for _, name := range names {
		out = append(out, env.Lab.Node(nodeIndex(env, name)).Addr(v6))
	}
	return out
}

var allNodes = []string{"n1", "n2", "n3"}

// waitNextHops waits until r1's BGP paths for prefix lead exactly to the
// named nodes (none: withdrawn), and returns the route and how long that
// took.
func waitNextHops(t *testing.T, env *labenv.Env, prefix netip.Prefix, timeout time.Duration, nodes ...string) (routers.Route, time.Duration) {
	t.Helper()
	r, took, err := routers.WaitRoute(t.Context(), env.Router, prefix, timeout, nodeAddrs(env, prefix.Addr().Is6(), nodes...)...)
	if err != nil {
		t.Fatalf("at r1: %v", err)
	}
	return r, took
}

// waitKernelNextHops waits until r1's kernel forwards prefix to exactly the
// named nodes: zebra installed what bgpd chose.
func waitKernelNextHops(t *testing.T, env *labenv.Env, prefix netip.Prefix, nodes ...string) {
	t.Helper()
	if _, err := routers.WaitKernelNextHops(t.Context(), env.Lab.Router("r1"), prefix, 5*time.Second, nodeAddrs(env, prefix.Addr().Is6(), nodes...)...); err != nil {
		t.Fatal(err)
	}
}

// waitFRRSessions waits until r1's sessions with the named nodes (over
// IPv4, or IPv6 with v6) are in state.
func waitFRRSessions(t *testing.T, env *labenv.Env, v6 bool, state string, nodes ...string) time.Duration {
	t.Helper()
	took, err := env.Router.WaitNeighbors(t.Context(), routeTimeout, state, nodeAddrs(env, v6, nodes...)...)
	if err != nil {
		t.Fatal(err)
	}
	return took
}

// sessionUp reads ironlb_bgp_session_up{node, peer} from node's speaker;
// ok is false while the series does not exist.
func sessionUp(ctx context.Context, env *labenv.Env, node, peer string) (up, ok bool, err error) {
	body, err := env.SpeakerMetrics(ctx, node)
	if err != nil {
		return false, false, err
	}
	// Prometheus' text format sorts labels by name.
	series := fmt.Sprintf("ironlb_bgp_session_up{node=%q,peer=%q} ", node, peer)
	for line := range strings.Lines(body) {
		if v, found := strings.CutPrefix(strings.TrimSpace(line), series); found {
			f, err := strconv.ParseFloat(v, 64)
			return f == 1, true, err
		}
	}
	return false, false, nil
}

// waitSessionMetric waits until every named node's speaker reports its
// session with peer up (or down).
func waitSessionMetric(t *testing.T, env *labenv.Env, peer string, up bool, nodes ...string) {
	t.Helper()
	for _, node := range nodes {
		var got, ok bool
		var lastErr error
		err := framework.WaitFor(t.Context(), routeTimeout, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
			got, ok, lastErr = sessionUp(ctx, env, node, peer)
			return lastErr == nil && ok && got == up, nil
		})
		if err != nil {
			t.Fatalf("%s: ironlb_bgp_session_up{peer=%q}: want up=%v, have up=%v (series present %v, %v): %v", node, peer, up, got, ok, lastErr, err)
		}
	}
}

// nodeEvent waits for an Event with reason on Node node whose message
// contains substr, and returns the message. Events about cluster-scoped
// objects live in the default namespace.
func nodeEvent(t *testing.T, env *labenv.Env, node, reason, substr string) string {
	t.Helper()
	msg, err := framework.WaitForEvent(t.Context(), env.Client, metav1.NamespaceDefault, node, reason, substr, routeTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// sessionDownEvents returns node's BGPSessionDown Events: how many times
// each message was recorded (the recorder counts repeats on one Event).
func sessionDownEvents(ctx context.Context, env *labenv.Env, node string) (map[string]int32, error) {
	list, err := env.Client.CoreV1().Events(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.name=" + node + ",reason=BGPSessionDown"})
	if err != nil {
		return nil, err
	}
	counts := map[string]int32{}
	for _, e := range list.Items {
		// Past 10 similar Events, client-go's aggregator records them as
		// one, its message prefixed.
		msg := strings.TrimPrefix(e.Message, "(combined from similar events): ")
		counts[msg] += max(e.Count, 1)
	}
	return counts, nil
}

// checkSpread asks the VIP over 50 fresh connections from client2 (each
// from a new source port) and checks that r1's ECMP route spread them over
// every node.
func checkSpread(t *testing.T, env *labenv.Env, vip netip.Addr) {
	t.Helper()
	perNode := spread(t, env, vip, 50)
	t.Logf("50 fresh connections from client2 to %s, per node: %v", vip, perNode)
	// With the flows hashed on ports, a node missing from 50 connections
	// has a chance of 3 × (2/3)^50, about 5e-9.
	if len(perNode) != len(allNodes) {
		t.Errorf("connections landed on %v only: r1 does not spread them over its ECMP route", slices.Sorted(maps.Keys(perNode)))
	}
}

// spread asks the VIP n times from client2, each over a fresh connection,
// and counts the answers per node. Every request must be answered.
func spread(t *testing.T, env *labenv.Env, vip netip.Addr, n int) map[string]int {
	t.Helper()
	perNode := map[string]int{}
	for i := range n {
		node, err := labenv.AnsweringFrom(t.Context(), env.Lab.Client2(), vip, 2*time.Second)
		if err != nil {
			t.Fatalf("request %d of %d from client2 to %s: %v", i+1, n, vip, err)
		}
		perNode[node]++
	}
	return perNode
}

// waitAnsweringFromClient2 waits until the VIP answers HTTP from client2.
func waitAnsweringFromClient2(t *testing.T, env *labenv.Env, vip netip.Addr) string {
	t.Helper()
	var last string
	var lastErr error
	err := framework.WaitFor(t.Context(), routeTimeout, 50*time.Millisecond, func(ctx context.Context) (bool, error) {
		last, lastErr = labenv.AnsweringFrom(ctx, env.Lab.Client2(), vip, time.Second)
		return lastErr == nil, nil
	})
	if err != nil {
		t.Fatalf("%s from client2: last answer %q (%v): %v", vip, last, lastErr, err)
	}
	return last
}

// setReadyEndpoints replaces the service's EndpointSlice with one ready
// endpoint on each named node (none: no endpoints), as the EndpointSlice
// controller would.
func setReadyEndpoints(t *testing.T, env *labenv.Env, svc string, nodes ...string) {
	t.Helper()
	client := env.Client.DiscoveryV1().EndpointSlices("default")
	name := svc + "-lab"
	if err := client.Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	if len(nodes) == 0 {
		return
	}
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(labenv.HTTPPort)), Protocol: ptr.To(v1.ProtocolTCP)}},
	}
	for _, node := range nodes {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{nodeAddrs(env, false, node)[0].String()},
			NodeName:  ptr.To(node), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
		})
	}
	if _, err := client.Create(t.Context(), es, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// checkStatusBGP waits until `kubectl ironlb status` shows what r1 shows:
// every node announcing vip (each naming its pool, bgp) and its sessions
// with r1 established.
func checkStatusBGP(t *testing.T, env *labenv.Env, vip netip.Addr, nodes []string) {
	t.Helper()
	var last *labenv.PluginStatus
	err := framework.WaitFor(t.Context(), routeTimeout, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
		st, err := env.PluginStatus(ctx)
		if err != nil {
			return false, nil
		}
		last = st
		announced := false
		for _, s := range st.Services {
			if s.Name == "web" && s.IP == vip.String() {
				announced = slices.Equal(slices.Sorted(slices.Values(s.AnnouncedBy)), nodes) && s.Mode == "bgp"
			}
		}
		established, namingThePool := 0, 0
		for _, sp := range st.Speakers {
			if slices.Contains(sp.BGPPools, "bgp") {
				namingThePool++
			}
			for _, b := range sp.BGPSessions {
				if strings.HasPrefix(b.Peer, "r1") && b.State == "Established" {
					established++
				}
			}
		}
		return announced && namingThePool == len(nodes) && established == 2*len(nodes), nil
	})
	if err != nil {
		t.Errorf("kubectl ironlb status never showed %s announced by %v, each naming pool bgp, with every r1 session established: %v; last %+v", vip, nodes, err, last)
	}
}

// hostRoute is the /32 or /128 a node announces for ip.
func hostRoute(ip netip.Addr) netip.Prefix { return netip.PrefixFrom(ip, ip.BitLen()) }

// TestBGP runs ironlb in bgp mode against FRR on r1: every eligible node
// announces each address, r1 spreads client2's connections over them with
// ECMP, and sessions, withdrawals and failures show at the router and in
// the speakers' Events and metrics.
func TestBGP(t *testing.T) {
	begin := time.Now()
	env := startBGPEnv(t)
	r1 := env.Lab.Router("r1")
	t.Logf("lab with ironlb and FRR up in %v", time.Since(begin).Round(time.Millisecond))
	// Linux hashes flows over ECMP paths by addresses only by default
	// (policy 0), which keeps one client's connections to one VIP on one
	// node; hashing on ports too (policy 1) spreads them as routers in front
	// of services usually do. The sysctls are per namespace: r1's only.
	if _, err := r1.Exec(t.Context(), "sysctl", "-q", "-w",
		"net.ipv4.fib_multipath_hash_policy=1", "net.ipv6.fib_multipath_hash_policy=1"); err != nil {
		t.Fatal(err)
	}

	var vip, vip6 netip.Addr
	t.Run("sessions, ECMP routes and traffic spread from client2", func(t *testing.T) {
		start := time.Now()
		waitFRRSessions(t, env, false, "Established", allNodes...)
		waitFRRSessions(t, env, true, "Established", allNodes...)
		t.Logf("r1 has its 6 sessions (3 nodes, IPv4 and IPv6) %v after the speakers started", time.Since(start).Round(time.Millisecond))
		// The speakers say so too: a metric and an Event per node.
		waitSessionMetric(t, env, "r1", true, allNodes...)
		waitSessionMetric(t, env, "r1-v6", true, allNodes...)
		for _, n := range allNodes {
			nodeEvent(t, env, n, "BGPSessionUp", "BGP session with r1 on "+n+": established")
		}

		vip = create(t, env, lbService("web"))
		if !netip.MustParsePrefix("203.0.113.128/26").Contains(vip) {
			t.Fatalf("got %s, want an address of pool bgp", vip)
		}
		r, took := waitNextHops(t, env, hostRoute(vip), routeTimeout, allNodes...)
		t.Logf("%s reached r1 with next hops %v %v after the address was assigned", hostRoute(vip), r.NextHops(), took.Round(time.Millisecond))
		for _, p := range r.Paths {
			if p.Communities != "64512:100" || p.LargeCommunities != "64512:1:2" {
				t.Errorf("path via %s: communities %q, large communities %q; want 64512:100 and 64512:1:2", p.NextHop, p.Communities, p.LargeCommunities)
			}
			// Each node announces itself as the next hop.
			if p.Peer != p.NextHop {
				t.Errorf("path via %s learned from %s", p.NextHop, p.Peer)
			}
		}
		// bgpd flags multipath after its best-path run, which it holds back a
		// little after an UPDATE.
		if _, err := routers.WaitRouteWith(t.Context(), env.Router, hostRoute(vip), 5*time.Second, func(r routers.Route) bool {
			return len(r.Paths) == 3 && !slices.ContainsFunc(r.Paths, func(p routers.Path) bool { return !p.Multipath && !p.Best })
		}); err != nil {
			t.Errorf("not one multipath route: %v", err)
		}
		waitKernelNextHops(t, env, hostRoute(vip), allNodes...)

		waitAnsweringFromClient2(t, env, vip)
		checkSpread(t, env, vip)
		// Every node says it announces the address (bgp mode has no
		// election), by naming the pool: the address is not listed one by
		// one, and no node records an Event for it.
		checkStatusBGP(t, env, vip, allNodes)
		if msgs, err := framework.EventMessages(t.Context(), env.Client, "default", "web", "Announcing"); err != nil || len(msgs) > 0 {
			t.Errorf("Announcing events on default/web, a Cluster Service of a bgp pool: %q (%v); want none", msgs, err)
		}
	})
	if vip == (netip.Addr{}) {
		t.Fatal("no BGP service to go on with")
	}

	t.Run("externalTrafficPolicy Local: only nodes with a ready endpoint", func(t *testing.T) {
		local := create(t, env, lbService("local", func(s *v1.Service) { s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal }))
		// No endpoint anywhere: no node may attract the traffic. Give the
		// speakers a moment to (wrongly) announce it.
		time.Sleep(time.Second)
		if r, err := env.Router.Route(t.Context(), hostRoute(local)); err != nil || len(r.Paths) > 0 {
			t.Errorf("with no endpoints, r1 has next hops %v (%v)", r.NextHops(), err)
		}
		setReadyEndpoints(t, env, "local", "n2", "n3")
		_, took := waitNextHops(t, env, hostRoute(local), routeTimeout, "n2", "n3")
		t.Logf("endpoints on n2 and n3: next hops n2, n3 after %v", took.Round(time.Millisecond))
		setReadyEndpoints(t, env, "local", "n1")
		_, took = waitNextHops(t, env, hostRoute(local), routeTimeout, "n1")
		t.Logf("endpoint moved to n1: next hop n1 only after %v", took.Round(time.Millisecond))
		waitKernelNextHops(t, env, hostRoute(local), "n1")
		if perNode := spread(t, env, local, 10); perNode["n1"] != 10 {
			t.Errorf("answers per node %v, want all from n1 (the only endpoint)", perNode)
		}
		// A Local Service's address depends on the node: it is listed, and
		// its Event names the node.
		if _, err := framework.WaitForEvent(t.Context(), env.Client, "default", "local", "Announcing", "n1 announces "+local.String()+" to its BGP peers", ipTimeout); err != nil {
			t.Error(err)
		}
		if err := framework.WaitFor(t.Context(), routeTimeout, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
			by, err := env.AnnouncedBy(ctx, "default", "local", local)
			return err == nil && slices.Equal(by, []string{"n1"}), nil
		}); err != nil {
			t.Errorf("kubectl ironlb status does not show n1 alone announcing %s: %v", local, err)
		}
		setReadyEndpoints(t, env, "local")
		waitNextHops(t, env, hostRoute(local), routeTimeout)
	})

	t.Run("withdrawals: service deleted, SIGTERM, kill -9, node cut off", func(t *testing.T) {
		gone := create(t, env, lbService("gone"))
		waitNextHops(t, env, hostRoute(gone), routeTimeout, allNodes...)
		start := time.Now()
		if err := env.Client.CoreV1().Services("default").Delete(t.Context(), "gone", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitNextHops(t, env, hostRoute(gone), routeTimeout)
		t.Logf("service deleted: %s withdrawn at r1 after %v", gone, time.Since(start).Round(time.Millisecond))

		// A graceful stop withdraws and ends the session with a Cease: the
		// router drops the node at once, not at the hold timer.
		start = time.Now()
		if err := env.Speaker("n3").Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		_, took := waitNextHops(t, env, hostRoute(vip), holdTime, "n1", "n2")
		t.Logf("SIGTERM on n3's speaker: its next hop gone at r1 after %v (hold time %v)", took.Round(time.Millisecond), holdTime)
		if took > 2*time.Second {
			t.Errorf("withdrawal after SIGTERM took %v; it should not wait for the hold timer", took)
		}
		waitExit(t, env.Speaker("n3"))
		restartSpeaker(t, env, "n3")
		waitNextHops(t, env, hostRoute(vip), routeTimeout, allNodes...)

		// kill -9: nothing is withdrawn, but the kernel closes the dead
		// process's TCP connection, so the router ends the session (and
		// drops the routes) as soon as the FIN arrives; the hold timer is
		// the bound.
		start = time.Now()
		_ = env.Speaker("n2").Kill() // its exit status is "killed"
		_, took = waitNextHops(t, env, hostRoute(vip), holdTime+3*time.Second, "n1", "n3")
		t.Logf("kill -9 on n2's speaker: its next hop gone at r1 after %v (hold time %v)", took.Round(time.Millisecond), holdTime)
		restartSpeaker(t, env, "n2")
		waitNextHops(t, env, hostRoute(vip), routeTimeout, allNodes...)

		// A node that vanishes (power, cable) sends nothing at all: only the
		// hold timer takes its routes away.
		n1 := env.Lab.Node(1)
		start = time.Now()
		if err := n1.SetSwitchPort(t.Context(), false); err != nil {
			t.Fatal(err)
		}
		// Whatever happens below, the next subtests get n1 back.
		t.Cleanup(func() { _ = n1.SetSwitchPort(context.Background(), true) })
		_, took = waitNextHops(t, env, hostRoute(vip), holdTime+3*time.Second, "n2", "n3")
		t.Logf("n1 cut off at the switch: its next hop gone at r1 after %v (hold time %v, keepalives every 3s)", took.Round(time.Millisecond), holdTime)
		// The router last heard n1 at most a keepalive interval before the
		// cut, so expiry comes between holdTime-3s and holdTime after it.
		if took < holdTime-3*time.Second-time.Second {
			t.Errorf("n1's route went after %v, before its hold timer could expire", took)
		}
		if err := n1.SetSwitchPort(t.Context(), true); err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		waitNextHops(t, env, hostRoute(vip), 30*time.Second, allNodes...)
		t.Logf("n1 reconnected: back at r1 after %v", time.Since(start).Round(time.Millisecond))
		if err := env.WaitConverged(t.Context(), takeoverTimeout); err != nil {
			t.Fatalf("speakers did not converge after n1 came back: %v", err)
		}
	})

	t.Run("TCP MD5: Secret created after the config, right password established, wrong one reported", func(t *testing.T) {
		secrets := env.Client.CoreV1().Secrets(framework.IronLBNamespace)
		secret := &v1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: bgpSecret, Namespace: framework.IronLBNamespace},
			Data:       map[string][]byte{"password": []byte(md5Password)},
		}
		// A failure midway must not leave the next subtests without
		// sessions: back to the plain lab.
		t.Cleanup(func() {
			if t.Failed() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, _ = env.Router.Vtysh(ctx, "configure terminal", fmt.Sprintf("router bgp %d", routerASN), "no neighbor nodes password")
				_ = framework.ApplyConfig(ctx, env.Client, bgpConfig(false, 99))
			}
		})
		setPassword := func(password string, revision int) {
			t.Helper()
			secret.Data["password"] = []byte(password)
			if _, err := secrets.Update(t.Context(), secret, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := framework.ApplyConfig(t.Context(), env.Client, bgpConfig(true, revision)); err != nil {
				t.Fatal(err)
			}
		}

		// r1 requires the password: it resets the sessions, and the nodes,
		// still without one, cannot get back in.
		if _, err := env.Router.Vtysh(t.Context(), "configure terminal", fmt.Sprintf("router bgp %d", routerASN), "neighbor nodes password "+md5Password); err != nil {
			t.Fatal(err)
		}
		waitNextHops(t, env, hostRoute(vip), routeTimeout)
		// The config names a Secret that does not exist yet: each speaker
		// leaves the peer out and says why.
		if err := framework.ApplyConfig(t.Context(), env.Client, bgpConfig(true, 1)); err != nil {
			t.Fatal(err)
		}
		for _, n := range allNodes {
			nodeEvent(t, env, n, "BGPSessionDown", "no TCP MD5 password")
		}
		// The Secret appears, with no config change: the speakers' retry
		// reads it and the sessions come up.
		if _, err := secrets.Create(t.Context(), secret, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		took := waitFRRSessions(t, env, false, "Established", allNodes...)
		t.Logf("Secret created after the config: r1's IPv4 sessions established %v later", took.Round(time.Millisecond))
		waitSessionMetric(t, env, "r1", true, allNodes...)
		waitNextHops(t, env, hostRoute(vip), routeTimeout, allNodes...)

		// A wrong password in the Secret: r1's kernel drops the nodes'
		// signed SYNs, and each speaker says why its session is down.
		start := time.Now()
		setPassword("not-"+md5Password, 2)
		waitNextHops(t, env, hostRoute(vip), routeTimeout)
		for _, n := range allNodes {
			msg := nodeEvent(t, env, n, "BGPSessionDown", "wrong password")
			if n == "n1" {
				t.Logf("Warning BGPSessionDown on Node n1, %v after the wrong password: %q", time.Since(start).Round(time.Millisecond), msg)
			}
		}
		waitSessionMetric(t, env, "r1", false, allNodes...)
		for _, a := range nodeAddrs(env, false, allNodes...) {
			if state, err := env.Router.NeighborState(t.Context(), a); err != nil || state == "Established" {
				t.Errorf("r1's session with %s: %s (%v), want not established", a, state, err)
			}
		}

		// Fixed: back, with no restart of anything.
		setPassword(md5Password, 3)
		waitFRRSessions(t, env, false, "Established", allNodes...)
		waitSessionMetric(t, env, "r1", true, allNodes...)
		waitNextHops(t, env, hostRoute(vip), routeTimeout, allNodes...)

		// And off again, so the next subtests (an FRR restart loses this
		// live change) start from the plain lab.
		if _, err := env.Router.Vtysh(t.Context(), "configure terminal", fmt.Sprintf("router bgp %d", routerASN), "no neighbor nodes password"); err != nil {
			t.Fatal(err)
		}
		if err := framework.ApplyConfig(t.Context(), env.Client, bgpConfig(false, 4)); err != nil {
			t.Fatal(err)
		}
		waitFRRSessions(t, env, false, "Established", allNodes...)
		waitNextHops(t, env, hostRoute(vip), routeTimeout, allNodes...)
	})

	t.Run("IPv6 route over the IPv6 sessions", func(t *testing.T) {
		vip6 = create(t, env, lbService("web6", func(s *v1.Service) {
			s.Spec.IPFamilies, s.Spec.IPFamilyPolicy = []v1.IPFamily{v1.IPv6Protocol}, ptr.To(v1.IPFamilyPolicySingleStack)
		}))
		if !vip6.Is6() {
			t.Fatalf("got %s, want an IPv6 address", vip6)
		}
		r, took := waitNextHops(t, env, hostRoute(vip6), routeTimeout, allNodes...)
		t.Logf("%s reached r1 with next hops %v %v after the address was assigned", hostRoute(vip6), r.NextHops(), took.Round(time.Millisecond))
		for _, p := range r.Paths {
			if !p.Peer.Is6() || p.Peer != p.NextHop {
				t.Errorf("path via %s learned from %s, want over the node's IPv6 session", p.NextHop, p.Peer)
			}
			if p.Communities != "64512:100" {
				t.Errorf("path via %s: communities %q", p.NextHop, p.Communities)
			}
		}
		waitKernelNextHops(t, env, hostRoute(vip6), allNodes...)
		waitAnsweringFromClient2(t, env, vip6)
		checkSpread(t, env, vip6)
	})

	t.Run("FRR restart: sessions come back, routes are announced again", func(t *testing.T) {
		before, err := sessionDownEvents(t.Context(), env, "n1")
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := env.Router.Restart(t.Context()); err != nil {
			t.Fatal(err)
		}
		waitNextHops(t, env, hostRoute(vip), 30*time.Second, allNodes...)
		t.Logf("FRR restarted: %s back at r1 with 3 next hops %v after the restart began", vip, time.Since(start).Round(time.Millisecond))
		if vip6.IsValid() {
			waitNextHops(t, env, hostRoute(vip6), routeTimeout, allNodes...)
			waitKernelNextHops(t, env, hostRoute(vip6), allNodes...)
		}
		waitFRRSessions(t, env, false, "Established", allNodes...)
		waitFRRSessions(t, env, true, "Established", allNodes...)
		waitSessionMetric(t, env, "r1", true, allNodes...)
		waitSessionMetric(t, env, "r1-v6", true, allNodes...)
		waitKernelNextHops(t, env, hostRoute(vip), allNodes...)
		// The speaker told why its session went down meanwhile.
		var news []string
		err = framework.WaitFor(t.Context(), routeTimeout, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
			news = nil
			counts, err := sessionDownEvents(ctx, env, "n1")
			if err != nil {
				return false, nil
			}
			for msg, count := range counts {
				if count > before[msg] && strings.HasPrefix(msg, "BGP session with r1 on n1: ") {
					news = append(news, msg)
				}
			}
			return len(news) > 0, nil
		})
		if err != nil {
			t.Errorf("no new BGPSessionDown Event about r1 on Node n1 for the restart: %v", err)
		}
		t.Logf("n1 reported during the restart: %q", news)
		waitAnsweringFromClient2(t, env, vip)
	})

	t.Run("config deleted, then the bgp pool and section removed: routes and sessions stay until released", func(t *testing.T) {
		t.Cleanup(func() {
			if err := framework.ApplyConfig(context.Background(), env.Client, bgpConfig(false, 0)); err != nil {
				t.Errorf("restoring the config: %v", err)
			}
		})
		allNextHops := func(ctx context.Context) bool {
			r, err := env.Router.Route(ctx, hostRoute(vip))
			return err == nil && len(r.Paths) == len(allNodes)
		}
		waitNextHops(t, env, hostRoute(vip), routeTimeout, allNodes...)
		gaps := watchGaps(t, vip, allNextHops)
		deleteConfig(t, env)
		gaps.check(t, "ironlb-config deleted: r1's route to "+vip.String(), time.Second)

		// A config with neither the bgp pool nor a bgp section: the
		// sessions and the route follow the kept config that covers the
		// address, attributes included.
		gaps = watchGaps(t, vip, allNextHops)
		if err := framework.ApplyConfig(t.Context(), env.Client, "pools:\n- {name: other, addresses: [198.51.100.200-198.51.100.210]}\n"); err != nil {
			t.Fatal(err)
		}
		if _, err := framework.WaitForEvent(t.Context(), env.Client, "default", "web", "AnnouncedFromKeptConfig", vip.String()+" is in no pool", ipTimeout); err != nil {
			t.Error(err)
		}
		for _, n := range allNodes {
			waitMetric(t, env, n, "ironlb_speaker_config_stale 0")
		}
		gaps.check(t, "bgp pool and section removed: r1's route to "+vip.String(), time.Second)
		waitFRRSessions(t, env, false, "Established", allNodes...)
		r, _ := waitNextHops(t, env, hostRoute(vip), routeTimeout, allNodes...)
		for _, p := range r.Paths {
			if p.Communities != "64512:100" {
				t.Errorf("path via %s: communities %q, want the kept advertisement's 64512:100", p.NextHop, p.Communities)
			}
		}
		// A speaker started now has only the API to go by.
		restartSpeaker(t, env, "n2")
		waitNextHops(t, env, hostRoute(vip), routeTimeout, allNodes...)
		waitAnsweringFromClient2(t, env, vip)
	})
}

// TestBGPKeptConfigWithBIRD: with BIRD as the router, the kept-config rule
// holds for both families: routes to a held IPv4 and IPv6 address stay at
// the router, from every node, while ironlb-config is deleted, then
// replaced by one with neither the bgp pool nor a bgp section, and across a
// speaker restart, until the Services release them.
func TestBGPKeptConfigWithBIRD(t *testing.T) {
	env := startEnv(t, labenv.Options{Nodes: 2, DualStack: true, Config: bgpConfig(false, 0), Routers: []string{"r1"}})
	r1 := env.Lab.Router("r1")
	conf := fmt.Sprintf("log stderr all;\nrouter id %s;\nprotocol device { }\n", r1.IPv4)
	for _, n := range env.Lab.Nodes() {
		for _, family := range []struct {
			suffix, local, neighbor, channel string
		}{{"", r1.IPv4.String(), n.IPv4.String(), "ipv4"}, {"_v6", r1.IPv6.String(), n.IPv6.String(), "ipv6"}} {
			conf += fmt.Sprintf(`protocol bgp %s%s {
  local %s as %d;
  neighbor %s as %d;
  connect retry time 1;
  %s { import all; export none; };
}
`, n.Name, family.suffix, family.local, routerASN, family.neighbor, nodeASN, family.channel)
		}
	}
	bird := routers.StartBIRDForTest(t, r1, conf)
	nodes := []string{"n1", "n2"}
	var vips []netip.Addr
	for _, s := range []*v1.Service{lbService("kept-bird"), lbService("kept-bird6", func(s *v1.Service) {
		s.Spec.IPFamilies, s.Spec.IPFamilyPolicy = []v1.IPFamily{v1.IPv6Protocol}, ptr.To(v1.IPFamilyPolicySingleStack)
	})} {
		vips = append(vips, create(t, env, s))
	}
	everyNode := func(vip netip.Addr) func(ctx context.Context) bool {
		return func(ctx context.Context) bool {
			want := nodeAddrs(env, vip.Is6(), nodes...)
			slices.SortFunc(want, netip.Addr.Compare)
			r, err := bird.Route(ctx, hostRoute(vip))
			return err == nil && slices.Equal(r.NextHops(), want)
		}
	}
	waitAtBIRD := func(vip netip.Addr, nodes ...string) {
		t.Helper()
		if _, _, err := routers.WaitRoute(t.Context(), bird, hostRoute(vip), routeTimeout, nodeAddrs(env, vip.Is6(), nodes...)...); err != nil {
			t.Fatalf("at BIRD: %v", err)
		}
	}
	for _, vip := range vips {
		waitAtBIRD(vip, nodes...)
	}
	t.Cleanup(func() {
		if err := framework.ApplyConfig(context.Background(), env.Client, bgpConfig(false, 0)); err != nil {
			t.Errorf("restoring the config: %v", err)
		}
	})
	watchAll := func() []*gapWatch {
		return []*gapWatch{watchGaps(t, vips[0], everyNode(vips[0])), watchGaps(t, vips[1], everyNode(vips[1]))}
	}
	checkAll := func(what string, gaps []*gapWatch) {
		for i, g := range gaps {
			g.check(t, what+": BIRD's route to "+vips[i].String(), time.Second)
		}
	}

	gaps := watchAll()
	deleteConfig(t, env)
	checkAll("ironlb-config deleted", gaps)

	gaps = watchAll()
	if err := framework.ApplyConfig(t.Context(), env.Client, "pools:\n- {name: other, addresses: [198.51.100.200-198.51.100.210]}\n"); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"kept-bird", "kept-bird6"} {
		if _, err := framework.WaitForEvent(t.Context(), env.Client, "default", name, "AnnouncedFromKeptConfig", vips[i].String()+" is in no pool", ipTimeout); err != nil {
			t.Error(err)
		}
	}
	for _, n := range nodes {
		waitMetric(t, env, n, "ironlb_speaker_config_stale 0")
	}
	checkAll("bgp pool and section removed", gaps)
	for _, vip := range vips {
		r, err := bird.Route(t.Context(), hostRoute(vip))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range r.Paths {
			if p.Communities != "(64512,100)" {
				t.Errorf("%s via %s: communities %q, want the kept advertisement's (64512,100)", vip, p.NextHop, p.Communities)
			}
		}
	}

	// A speaker started now has only the API to go by.
	restartSpeaker(t, env, "n2")
	for _, vip := range vips {
		waitAtBIRD(vip, nodes...)
	}

	// Released: withdrawn at the router.
	for _, name := range []string{"kept-bird", "kept-bird6"} {
		if err := env.Client.CoreV1().Services("default").Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, vip := range vips {
		waitAtBIRD(vip)
	}
}
