// Package ipam allocates load-balancer IP addresses from named pools.
//
// The allocator is built for large pools (an IPv6 /64 is an ordinary pool) and
// many services, so its cost follows the number of allocations, never the
// number of addresses in a pool:
//
//   - each pool keeps, per family, the free addresses as maximal spans in a
//     B-tree ordered by first address; the lowest free address is the first
//     span's start, taking an address splits a span, and releasing one merges
//     it back with its neighbours;
//   - held addresses live in a map keyed by netip.Addr, with their holders and
//     the pool that contains them (none for an orphan, an address whose pool
//     was removed or shrunk but whose service still uses it);
//   - addresses held under a sharing key are indexed by that key, so that a
//     service joining a shared address does not walk every allocation.
//
// Allocate, Seed and Release are therefore O(log n) in the number of
// allocations, plus the number of pools and sharing peers involved, and
// allocation is deterministic: the same sequence of calls yields the same
// addresses.
//
// Addresses are sticky: a configuration change never takes an address away
// from a service that holds it; only the service's own request (an explicit
// choice of IP or pool) or its release does.
package ipam
