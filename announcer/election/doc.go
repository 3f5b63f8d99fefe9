// Package election decides which addresses one node announces, apart from
// the controller that gathers its inputs: the alive nodes (their labels and
// interfaces) and the held addresses (pool, and the nodes with a ready
// endpoint of each externalTrafficPolicy Local holder). It imports nothing
// of client-go, so the decision is tested and benchmarked alone.
//
// A Table keeps, per address, what the decision needs to absorb a change
// without looking at every node again: a node joining is weighed once per
// address, a node leaving costs a full election only for the addresses it
// owned, and an address change costs one election over the nodes. So the
// work per change grows with the addresses or with the nodes, never with
// their product.
package election
