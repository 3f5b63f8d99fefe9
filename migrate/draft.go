package migrate

import (
	"github.com/ironlb/ironlb/config"
)

// A source turns its resources into drafts: ironlb pools, peers and
// advertisements as the source describes them, each remembering the
// resource and fields it came from. The builder then makes them a config
// that config.Parse accepts, reporting whatever it has to leave out.

// draftPool is one ironlb pool, from one source resource.
type draftPool struct {
	ref  Ref
	pool config.PoolFile
	// addrFields names the source field of each of pool.Addresses.
	addrFields []string
	// adv says how a pool of mode bgp is announced; nil: with ironlb's
	// defaults (each address alone, no attributes).
	adv *draftAdv
}

// addAddress adds one address written in field, in the form ironlb takes.
func (p *draftPool) addAddress(r *report, field, addr string) {
	if m, changed := masked(addr); changed {
		r.note(p.ref, field, "%s has host bits set: it stood for its whole network, written %s for ironlb", addr, m)
		addr = m
	}
	p.pool.Addresses = append(p.pool.Addresses, addr)
	p.addrFields = append(p.addrFields, field)
}

// draftAdv is one bgp.advertisements entry; the builder fills its pools.
type draftAdv struct {
	ref Ref
	adv config.BGPAdvertisementFile
	// fields names the source field of each ironlb field set, by its
	// JSON name (communities, localPref...), for messages.
	fields map[string]string
}

// draftPeer is one bgp.peers entry.
type draftPeer struct {
	ref  Ref
	peer config.BGPPeerFile
	// fields names the source field of each ironlb field set, by its
	// JSON name (holdTime, bfd...), for messages.
	fields map[string]string
}

// origin is where a value of the bgp section came from, for messages.
type origin struct {
	ref   Ref
	field string
}

// draftBGP is the bgp section. localASN 0 means the source gave none.
type draftBGP struct {
	localASN int64
	asnFrom  origin
	routerID string
	idFrom   origin
	// listenPort is nil for ironlb's default (dial out only).
	listenPort *int64
	portFrom   origin
	peers      []*draftPeer
}

// drafts is what a source produces.
type drafts struct {
	pools []*draftPool
	// bgp is nil when the source configured no BGP at all.
	bgp *draftBGP
	// bgpHint tells what to pass to get the bgp section, for pools
	// announced over BGP when the source's BGP resources were not given.
	bgpHint string
}
