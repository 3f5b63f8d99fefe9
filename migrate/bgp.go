package migrate

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/ironlb/ironlb/config"
)

// bgpSection builds the bgp section around asn (already checked) for the
// pools kept: each peer and advertisement checked on its own, like pools.
// It also returns the draft of each advertisement in the section.
func (b *builder) bgpSection(asn int64, pools []*draftPool) (config.BGPFile, []*draftAdv) {
	d := b.d.bgp
	f := config.BGPFile{LocalASN: asn}
	if d.routerID != "" && b.globalOK(config.BGPFile{LocalASN: asn, RouterID: d.routerID}, d.idFrom, "ironlb uses each node's IPv4 address") {
		f.RouterID = d.routerID
	}
	if d.listenPort != nil && b.globalOK(config.BGPFile{LocalASN: asn, ListenPort: d.listenPort}, d.portFrom, "ironlb dials out only") {
		f.ListenPort = d.listenPort
	}

	names := newNames()
	addrs := map[netip.Addr]*draftPeer{}
	for _, p := range d.peers {
		if !b.checkPeer(asn, p) {
			continue
		}
		// One session per router address in ironlb: a second resource for
		// the same router (for other nodes, say) cannot be expressed.
		a, _ := netip.ParseAddr(p.peer.Address)
		if first := addrs[a]; first != nil {
			b.r.drop(p.ref, p.fields["address"], "%s is also the router of %s; ironlb has one peer per router address, so this one is not carried over", a, first.ref)
			continue
		}
		addrs[a] = p
		if name := names.claim(p.peer.Name, "peer"); name != p.peer.Name {
			why := fmt.Sprintf("%q is not a valid ironlb peer name (a DNS label)", p.peer.Name)
			if toLabel(p.peer.Name) == p.peer.Name {
				why = "another peer is already named " + p.peer.Name
			}
			b.r.note(p.ref, "metadata.name", "%s; the peer is named %s", why, name)
			p.peer.Name = name
		}
		f.Peers = append(f.Peers, p.peer)
	}

	// One advertisement per source advertisement, naming the kept pools it
	// announces, in the order the pools come.
	var advs []*draftAdv
	for _, p := range pools {
		if p.pool.Mode != config.ModeBGP || p.adv == nil {
			continue
		}
		if len(p.adv.adv.Pools) == 0 {
			advs = append(advs, p.adv)
		}
		p.adv.adv.Pools = append(p.adv.adv.Pools, p.pool.Name)
	}
	var kept []*draftAdv
	for _, a := range advs {
		if b.checkAdv(asn, a) && hasAttributes(a.adv) {
			f.Advertisements = append(f.Advertisements, a.adv)
			kept = append(kept, a)
		}
	}
	return f, kept
}

// conflictPools reads the two pools of config's message about aggregates
// that would share a route.
var conflictPools = regexp.MustCompile(`^pools (\S+) \(.*\) and (\S+) \(.*would share the route`)

// unaggregate mends the one conflict seen only across the whole config:
// pools whose aggregated routes would carry different attributes. The
// advertisements of those pools then announce each address alone, which
// shares no route and keeps their attributes. It reports whether it
// changed bgp.
func (b *builder) unaggregate(bgp *config.BGPFile, advs []*draftAdv, errs field.ErrorList) bool {
	changed := false
	for _, e := range errs {
		m := conflictPools.FindStringSubmatch(e.Detail)
		if m == nil {
			continue
		}
		why, _, _ := strings.Cut(e.Detail, "; use ") // config's advice is for its own users
		for _, a := range advs {
			involved := slices.Contains(a.adv.Pools, m[1]) || slices.Contains(a.adv.Pools, m[2])
			if involved && (a.adv.AggregationLength != nil || a.adv.AggregationLengthV6 != nil) {
				b.r.drop(a.ref, a.fields["aggregationLength"], "%s; not carried over, the addresses are announced alone", why)
				a.adv.AggregationLength, a.adv.AggregationLengthV6 = nil, nil
				changed = true
			}
		}
	}
	if !changed {
		return false
	}
	bgp.Advertisements = nil
	for _, a := range advs {
		if hasAttributes(a.adv) {
			bgp.Advertisements = append(bgp.Advertisements, a.adv)
		}
	}
	return true
}

// globalOK checks one setting of the section on its own.
func (b *builder) globalOK(probe config.BGPFile, from origin, instead string) bool {
	raw, _ := json.Marshal(probe)
	if _, errs := config.ParseBGP(raw); len(errs) > 0 {
		b.r.drop(from.ref, from.field, "%s; not carried over (%s)", firstError(errs), instead)
		return false
	}
	return true
}

// checkPeer validates p on its own and mends it: an optional setting config
// refuses is left out (ironlb's default applies); a refused address, AS
// number or node selector leaves the peer out.
func (b *builder) checkPeer(asn int64, p *draftPeer) bool {
	for {
		probe := p.peer
		probe.Name = "probe" // named once kept, so a peer left out takes no name
		raw, _ := json.Marshal(config.BGPFile{LocalASN: asn, Peers: []config.BGPPeerFile{probe}})
		_, errs := config.ParseBGP(raw)
		if len(errs) == 0 {
			return true
		}
		mended := false
		for _, e := range errs {
			name := strings.TrimPrefix(e.Field, "bgp.peers[0].")
			top, _, _ := strings.Cut(name, ".")
			var cleared bool
			switch top {
			case "holdTime":
				cleared, p.peer.HoldTime = p.peer.HoldTime != "", ""
			case "keepaliveTime":
				cleared, p.peer.KeepaliveTime = p.peer.KeepaliveTime != "", ""
			case "port":
				cleared, p.peer.Port = p.peer.Port != nil, nil
			case "ebgpMultihop":
				cleared, p.peer.EBGPMultihop = p.peer.EBGPMultihop != 0, 0
			case "sourceAddress":
				cleared, p.peer.SourceAddress = p.peer.SourceAddress != "", ""
			case "bfd":
				cleared, p.peer.BFD = p.peer.BFD != nil, nil
			}
			if !cleared {
				b.r.drop(p.ref, p.fields[top], "%s: %s; the peer is not carried over", name, e.ErrorBody())
				return false
			}
			result := "not carried over (ironlb's default applies)"
			if top == "bfd" {
				result = "BFD is not carried over"
			}
			b.r.drop(p.ref, p.fields[top], "%s: %s; %s", name, e.ErrorBody(), result)
			mended = true
		}
		if !mended {
			return false
		}
	}
}

// checkAdv validates a on its own and mends it: a community, localPref or
// aggregation length config refuses is left out.
func (b *builder) checkAdv(asn int64, a *draftAdv) bool {
	for {
		probe := a.adv
		probe.Pools = nil // their existence is checked with the whole config
		raw, _ := json.Marshal(config.BGPFile{LocalASN: asn, Advertisements: []config.BGPAdvertisementFile{probe}})
		_, errs := config.ParseBGP(raw)
		if len(errs) == 0 {
			return true
		}
		bad := map[int]bool{}
		for _, e := range errs {
			name := strings.TrimPrefix(e.Field, "bgp.advertisements[0].")
			if i, ok := index(name, "communities"); ok && i < len(a.adv.Communities) {
				b.r.drop(a.ref, a.fields["communities"], "%s; not carried over", e.ErrorBody())
				bad[i] = true
				continue
			}
			switch name {
			case "localPref":
				a.adv.LocalPref = nil
			case "aggregationLength":
				a.adv.AggregationLength = nil
			case "aggregationLengthV6":
				a.adv.AggregationLengthV6 = nil
			default:
				b.r.drop(a.ref, "", "%s: %s; the advertisement is not carried over (its pools are announced with ironlb's defaults)", name, e.ErrorBody())
				return false
			}
			b.r.drop(a.ref, a.fields[name], "%s; not carried over", e.ErrorBody())
		}
		a.adv.Communities = without(a.adv.Communities, bad)
	}
}

// hasAttributes is false for an advertisement that says nothing ironlb's
// default does not: it is left out of the config.
func hasAttributes(a config.BGPAdvertisementFile) bool {
	return a.LocalPref != nil || len(a.Communities) > 0 ||
		(a.AggregationLength != nil && *a.AggregationLength != 32) ||
		(a.AggregationLengthV6 != nil && *a.AggregationLengthV6 != 128)
}
