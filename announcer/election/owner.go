package election

import (
	"net/netip"
)

// Owner elects the node that announces addr among candidates, by rendezvous
// (highest random weight) hashing: every speaker computes the same answer from
// the same inputs with no coordination, addresses spread evenly over nodes,
// and when a node leaves only the addresses it owned move.
func Owner(addr netip.Addr, candidates []string) (string, bool) {
	var best ranked
	for _, c := range candidates {
		best = best.max(ranked{name: c, score: weight(c, addr)})
	}
	return best.name, best.name != ""
}

// ranked is a candidate with its weight for one address; the zero value
// ranks below every candidate.
type ranked struct {
	name  string
	score uint64
}

// max returns the higher ranked of r and o: the higher weight, or on a tie
// the lower name, so the order candidates are met in never matters.
func (r ranked) max(o ranked) ranked {
	if r.name == "" || o.score > r.score || (o.score == r.score && o.name < r.name) {
		return o
	}
	return r
}

// FNV-1a, 64 bit, written out so that a weight allocates nothing; it gives
// what hash/fnv's New64a gives, which earlier releases used: speakers of
// both during a rolling update must elect the same owner.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func weight(node string, addr netip.Addr) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(node); i++ {
		h = (h ^ uint64(node[i])) * fnvPrime
	}
	h *= fnvPrime // the separator byte 0: h ^ 0 == h
	a := addr.As16()
	for _, b := range a {
		h = (h ^ uint64(b)) * fnvPrime
	}
	return mix(h)
}

// mix is the SplitMix64 finalizer: FNV alone spreads short, similar inputs
// (node-1, node-2; consecutive addresses) poorly.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
