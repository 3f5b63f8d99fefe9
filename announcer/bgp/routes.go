package bgp

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/ironlb/ironlb/config"
)

// routeSet maps each route this node announces to the advertisement whose
// attributes it carries.
type routeSet map[netip.Prefix]*config.BGPAdvertisement

// conflict is an aggregate wanted with two different attribute sets.
type conflict struct {
	prefix netip.Prefix
	kept   netip.Addr // the address whose advertisement the route carries
	other  netip.Addr
}

// desiredRoutes computes the routes that announce want. An address's
// advertisement is advertisementOf's (which may be nil, or return nil:
// cfg's catch-all then). When aggregation puts addresses whose
// advertisements differ in one route, the lowest address's wins and the
// clash is returned (config.Config.ParseBGP refuses pools set up that way,
// so only a config validated without its pools gets here).
func desiredRoutes(want []netip.Addr, cfg *config.BGP, advertisementOf func(netip.Addr, *config.BGP) *config.BGPAdvertisement) (routeSet, []conflict) {
	routes := make(routeSet, len(want))
	from := make(map[netip.Prefix]netip.Addr, len(want))
	var conflicts []conflict
	addrs := make([]netip.Addr, 0, len(want))
	for _, ip := range want {
		addrs = append(addrs, ip.Unmap().WithZone(""))
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	for _, ip := range addrs {
		var adv *config.BGPAdvertisement
		if advertisementOf != nil {
			adv = advertisementOf(ip, cfg)
		}
		if adv == nil {
			adv = cfg.AdvertisementFor("")
		}
		prefix := adv.Prefix(ip)
		if cur, ok := routes[prefix]; ok {
			if !cur.Equal(adv) {
				conflicts = append(conflicts, conflict{prefix: prefix, kept: from[prefix], other: ip})
			}
			continue
		}
		routes[prefix] = adv
		from[prefix] = ip
	}
	return routes, conflicts
}

// family returns gobgp's address family of prefix.
func family(prefix netip.Prefix) bgp.Family {
	if prefix.Addr().Is4() {
		return bgp.RF_IPv4_UC
	}
	return bgp.RF_IPv6_UC
}

// newPath builds the gobgp path announcing (or withdrawing) prefix with
// adv's attributes. The next hop is left unspecified: gobgp then sends each
// peer the local address of that peer's session, for eBGP and iBGP alike,
// which is the node's address on the router's network.
func newPath(prefix netip.Prefix, adv *config.BGPAdvertisement, withdraw bool) (*apiutil.Path, error) {
	nlri, err := bgp.NewIPAddrPrefix(prefix)
	if err != nil {
		return nil, fmt.Errorf("route %s: %w", prefix, err)
	}
	fam := family(prefix)
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if prefix.Addr().Is4() {
		nh, err := bgp.NewPathAttributeNextHop(netip.IPv4Unspecified())
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", prefix, err)
		}
		attrs = append(attrs, nh)
	} else {
		mp, err := bgp.NewPathAttributeMpReachNLRI(fam, []bgp.PathNLRI{{NLRI: nlri}}, netip.IPv6Unspecified())
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", prefix, err)
		}
		attrs = append(attrs, mp)
	}
	// gobgp strips LOCAL_PREF towards eBGP peers itself.
	if adv.LocalPref != nil {
		attrs = append(attrs, bgp.NewPathAttributeLocalPref(*adv.LocalPref))
	}
	if len(adv.Communities) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeCommunities(slices.Clone(adv.Communities)))
	}
	if len(adv.LargeCommunities) > 0 {
		large := make([]*bgp.LargeCommunity, 0, len(adv.LargeCommunities))
		for _, c := range adv.LargeCommunities {
			large = append(large, bgp.NewLargeCommunity(c.ASN, c.Data1, c.Data2))
		}
		attrs = append(attrs, bgp.NewPathAttributeLargeCommunities(large))
	}
	return &apiutil.Path{Family: fam, Nlri: nlri, Attrs: attrs, Withdrawal: withdraw}, nil
}
