package bgp_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ironlb/ironlb/test/netlab"
	"github.com/ironlb/ironlb/test/routers"
)

// TestBIRD: iBGP with BIRD 2. LOCAL_PREF and both kinds of communities
// arrive; peers follow their nodeSelector and the config, live: added,
// changed and removed without restarting anything else.
func TestBIRD(t *testing.T) {
	lab := netlab.NewForTest(t, netlab.Options{Nodes: 2, Routers: []string{"r1"}})
	r1, n1, n2 := lab.Routers()[0], lab.Node(1), lab.Node(2)
	conf := fmt.Sprintf("log stderr all;\nrouter id %s;\nprotocol device { }\n", r1.IPv4)
	for _, n := range lab.Nodes() {
		conf += fmt.Sprintf(`protocol bgp %s {
  local %s as %d;
  neighbor %s as %d;
  direct;
  connect retry time 1;
  ipv4 { import all; export none; gateway direct; };
}
`, n.Name, r1.IPv4, nodeASN, n.IPv4, nodeASN)
	}
	router := routers.StartBIRDForTest(t, r1, conf)
	s1, s2 := startSpeaker(t, lab, n1), startSpeaker(t, lab, n2)
	rackA := map[string]string{"rack": "a"}
	rackB := map[string]string{"rack": "b"}
	section := func(peers, localPref string) string {
		return fmt.Sprintf(`
localASN: %d
%s
advertisements:
- pools: [bgp-pool]
  localPref: %s
  communities: ["64512:100", "64512:1:2"]
`, nodeASN, peers, localPref)
	}
	peer := fmt.Sprintf("peers:\n- {name: r1, address: %s, asn: %d, nodeSelector: {matchLabels: {rack: a}}}", r1.IPv4, nodeASN)
	p4 := netip.PrefixFrom(vip4, 32)

	// No peers yet: the addresses are only remembered.
	s1.configure(t, section("", "250"), nodeConfig{labels: rackA, pools: bgpPool})
	s2.configure(t, section("", "250"), nodeConfig{labels: rackB, pools: bgpPool})
	s1.announce(t, vip4.String())
	s2.announce(t, vip4.String())

	t.Run("peer added live", func(t *testing.T) {
		s1.configure(t, section(peer, "250"), nodeConfig{labels: rackA, pools: bgpPool})
		s2.configure(t, section(peer, "250"), nodeConfig{labels: rackB, pools: bgpPool})
		s1.waitSession(t, "r1", true, "", 20*time.Second)
		r, _ := waitRoute(t, router, p4, 10*time.Second, n1.IPv4)
		p := r.Paths[0]
		if p.LocalPref != 250 || p.Communities != "(64512,100)" || !strings.Contains(p.LargeCommunities, "(64512, 1, 2)") {
			t.Errorf("path: local pref %d, communities %q, large communities %q", p.LocalPref, p.Communities, p.LargeCommunities)
		}
		// n2 is in rack b: the peer does not select it.
		if _, ok, _ := s2.lastState(t.Context(), "r1"); ok {
			t.Error("n2 peers with r1 though its nodeSelector does not match")
		}
	})

	t.Run("nodeSelector matches later", func(t *testing.T) {
		s2.configure(t, section(peer, "250"), nodeConfig{labels: rackA, pools: bgpPool})
		s2.waitSession(t, "r1", true, "", 20*time.Second)
		waitRoute(t, router, p4, 10*time.Second, n1.IPv4, n2.IPv4)
	})

	t.Run("attributes changed live", func(t *testing.T) {
		s1.configure(t, section(peer, "50"), nodeConfig{labels: rackA, pools: bgpPool})
		waitRouteWith(t, router, p4, func(r routers.Route) bool {
			for _, p := range r.Paths {
				if p.NextHop == n1.IPv4 {
					return p.LocalPref == 50
				}
			}
			return false
		})
		if ev, _, _ := s1.lastState(t.Context(), "r1"); !ev.Up {
			t.Errorf("changing the advertisement reset the session: %q", ev.Reason)
		}
	})

	t.Run("peer removed live", func(t *testing.T) {
		s2.configure(t, section("", "250"), nodeConfig{labels: rackA, pools: bgpPool})
		s2.waitSession(t, "r1", false, "not configured", 5*time.Second)
		waitRoute(t, router, p4, 5*time.Second, n1.IPv4)
		out, err := router.Birdc(t.Context(), "show", "protocols", n2.Name)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, "Established") {
			t.Errorf("BIRD still has n2's session up:\n%s", out)
		}
	})

	t.Run("stop", func(t *testing.T) {
		s1.stop(t)
		waitRoute(t, router, p4, 5*time.Second)
	})
}

// TestListenPort: with bgp.listenPort set, a router that only dials in gets
// a session (the node's own attempts go to a port where nothing listens).
func TestListenPort(t *testing.T) {
	lab := netlab.NewForTest(t, netlab.Options{Nodes: 1, Routers: []string{"r1"}})
	r1, n1 := lab.Routers()[0], lab.Node(1)
	router := routers.StartBIRDForTest(t, r1, fmt.Sprintf(`log stderr all;
router id %s;
protocol device { }
protocol bgp n1 {
  local %s as %d;
  neighbor %s port 1179 as %d;
  direct;
  connect retry time 1;
  ipv4 { import all; export none; gateway direct; };
}
`, r1.IPv4, r1.IPv4, routerASN, n1.IPv4, nodeASN))
	s := startSpeaker(t, lab, n1)
	s.configure(t, fmt.Sprintf("localASN: %d\nlistenPort: 1179\npeers: [{name: r1, address: %s, asn: %d, port: 1790}]\n",
		nodeASN, r1.IPv4, routerASN), nodeConfig{})
	s.waitSession(t, "r1", true, "", 20*time.Second)
	s.announce(t, vip4.String())
	waitRoute(t, router, netip.PrefixFrom(vip4, 32), 5*time.Second, n1.IPv4)
}
