// Package announcer decides which addresses this node announces, and how:
// it watches Services, EndpointSlices, Nodes and ironlb-config, asks
// membership who is alive, elects an owner per address and hands the result
// to the protocol of the address's pool (layer2 today; vip and bgp next).
package announcer

import (
	"hash/fnv"
	"net/netip"
)

// Owner elects the node that announces addr among candidates, by rendezvous
// (highest random weight) hashing: every speaker computes the same answer from
// the same inputs with no coordination, addresses spread evenly over nodes,
// and when a node leaves only the addresses it owned move.
func Owner(addr netip.Addr, candidates []string) (string, bool) {
	var best string
	var bestScore uint64
	found := false
	for _, c := range candidates {
		score := weight(c, addr)
		if !found || score > bestScore || (score == bestScore && c < best) {
			best, bestScore, found = c, score, true
		}
	}
	return best, found
}

func weight(node string, addr netip.Addr) uint64 {
	h := fnv.New64a()
	h.Write([]byte(node))
	h.Write([]byte{0})
	a := addr.As16()
	h.Write(a[:])
	return mix(h.Sum64())
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
