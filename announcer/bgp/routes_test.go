package bgp

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/ironlb/ironlb/config"
)

func mustParseBGP(t *testing.T, raw string) *config.BGP {
	t.Helper()
	cfg, errs := config.ParseBGP([]byte(raw))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return cfg
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func TestDesiredRoutes(t *testing.T) {
	cfg := mustParseBGP(t, `{"localASN": 64515, "advertisements": [
		{"pools": ["agg"], "aggregationLength": 24, "aggregationLengthV6": 64, "localPref": 200},
		{"pools": ["other"], "aggregationLength": 24, "communities": ["1:1"]},
		{"communities": ["64512:100"]}]}`)
	poolOf := func(ip netip.Addr) string {
		switch {
		case ip == netip.MustParseAddr("203.0.113.99"):
			return "other"
		case netip.MustParsePrefix("203.0.113.0/24").Contains(ip), netip.MustParsePrefix("2001:db8:200::/64").Contains(ip):
			return "agg"
		}
		return ""
	}
	routes, conflicts := desiredRoutes(addrs(
		"203.0.113.10", "203.0.113.11", "203.0.113.99", // one aggregate; .99's pool clashes
		"2001:db8:200::1", "2001:db8:200::2", // one IPv6 aggregate
		"198.51.100.7", "::ffff:198.51.100.99", // catch-all, /32 (the mapped one unmapped)
	), cfg, func(ip netip.Addr, inForce *config.BGP) *config.BGPAdvertisement {
		return inForce.AdvertisementFor(poolOf(ip))
	})
	want := []string{"198.51.100.7/32", "198.51.100.99/32", "203.0.113.0/24", "2001:db8:200::/64"}
	var got []string
	for p := range routes {
		got = append(got, p.String())
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("routes = %v, want %v", got, want)
	}
	if adv := routes[netip.MustParsePrefix("203.0.113.0/24")]; adv.LocalPref == nil || *adv.LocalPref != 200 {
		t.Errorf("the aggregate does not carry the lowest address's advertisement: %+v", adv)
	}
	if len(conflicts) != 1 || conflicts[0].kept != netip.MustParseAddr("203.0.113.10") || conflicts[0].other != netip.MustParseAddr("203.0.113.99") {
		t.Errorf("conflicts = %+v", conflicts)
	}
	if adv := routes[netip.MustParsePrefix("198.51.100.7/32")]; !slices.Equal(adv.Communities, []uint32{64512<<16 | 100}) {
		t.Errorf("catch-all advertisement not used: %+v", adv)
	}

	// Without AdvertisementOf every address gets the catch-all.
	routes, _ = desiredRoutes(addrs("203.0.113.10"), cfg, nil)
	if _, ok := routes[netip.MustParsePrefix("203.0.113.10/32")]; !ok || len(routes) != 1 {
		t.Errorf("routes without AdvertisementOf = %v", routes)
	}
}

func TestNewPath(t *testing.T) {
	lp := uint32(150)
	adv := &config.BGPAdvertisement{
		LocalPref:        &lp,
		Communities:      []uint32{64512<<16 | 100},
		LargeCommunities: []config.LargeCommunity{{ASN: 64512, Data1: 1, Data2: 2}},
	}
	p, err := newPath(netip.MustParsePrefix("203.0.113.10/32"), adv, false)
	if err != nil {
		t.Fatal(err)
	}
	if p.Family != bgp.RF_IPv4_UC || p.Nlri.String() != "203.0.113.10/32" || p.Withdrawal {
		t.Errorf("path = %+v", p)
	}
	types := map[bgp.BGPAttrType]bgp.PathAttributeInterface{}
	for _, a := range p.Attrs {
		types[a.GetType()] = a
	}
	if o, ok := types[bgp.BGP_ATTR_TYPE_ORIGIN].(*bgp.PathAttributeOrigin); !ok || o.Value != bgp.BGP_ORIGIN_ATTR_TYPE_IGP {
		t.Error("no ORIGIN IGP")
	}
	if nh, ok := types[bgp.BGP_ATTR_TYPE_NEXT_HOP].(*bgp.PathAttributeNextHop); !ok || !nh.Value.IsUnspecified() {
		t.Error("next hop not left to gobgp (0.0.0.0)")
	}
	if l, ok := types[bgp.BGP_ATTR_TYPE_LOCAL_PREF].(*bgp.PathAttributeLocalPref); !ok || l.Value != 150 {
		t.Error("LOCAL_PREF missing")
	}
	if c, ok := types[bgp.BGP_ATTR_TYPE_COMMUNITIES].(*bgp.PathAttributeCommunities); !ok || !slices.Equal(c.Value, adv.Communities) {
		t.Error("COMMUNITIES missing")
	}
	if c, ok := types[bgp.BGP_ATTR_TYPE_LARGE_COMMUNITY].(*bgp.PathAttributeLargeCommunities); !ok || len(c.Values) != 1 || c.Values[0].String() != "64512:1:2" {
		t.Error("LARGE_COMMUNITY missing")
	}

	p, err = newPath(netip.MustParsePrefix("2001:db8:200::10/128"), config.DefaultAdvertisement, true)
	if err != nil {
		t.Fatal(err)
	}
	if p.Family != bgp.RF_IPv6_UC || !p.Withdrawal || len(p.Attrs) != 2 {
		t.Fatalf("IPv6 path = %+v", p)
	}
	if mp, ok := p.Attrs[1].(*bgp.PathAttributeMpReachNLRI); !ok || !mp.Nexthop.IsUnspecified() || !mp.Nexthop.Is6() {
		t.Errorf("IPv6 next hop not left to gobgp (::): %v", p.Attrs[1])
	}
}
