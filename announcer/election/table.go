package election

import (
	"maps"
	"net/netip"
	"reflect"
	"slices"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/config"
)

// Node is an alive speaker's node.
type Node struct {
	Name   string
	Labels map[string]string
	// Interfaces are the node's interfaces with their subnets, sorted by
	// name, as its speaker publishes them.
	Interfaces []Interface
}

// Interface is one network interface of a node.
type Interface struct {
	Name     string
	Prefixes []netip.Prefix
}

// InterfaceFor picks the interface addr is announced on from n: the first
// of the pool's interfaces the node has, or else the first interface (by
// name) whose subnet holds addr. "" means the node cannot announce it on
// an interface of its own.
func (n *Node) InterfaceFor(addr netip.Addr, poolInterfaces []string) string {
	if len(poolInterfaces) > 0 {
		for _, name := range poolInterfaces {
			for _, i := range n.Interfaces {
				if i.Name == name {
					return name
				}
			}
		}
		return ""
	}
	for _, i := range n.Interfaces {
		for _, p := range i.Prefixes {
			if p.Contains(addr) {
				return i.Name
			}
		}
	}
	return ""
}

// equal compares by content. Callers keep handing the same labels map and
// interfaces slice for a node that did not change (its cached Node object
// and parsed meta), so those are recognized first: every membership change
// compares every node, on every node.
func (n *Node) equal(o *Node) bool {
	if n.Name != o.Name {
		return false
	}
	sameLabels := reflect.ValueOf(n.Labels).UnsafePointer() == reflect.ValueOf(o.Labels).UnsafePointer() || maps.Equal(n.Labels, o.Labels)
	sameInterfaces := len(n.Interfaces) == len(o.Interfaces) && (len(n.Interfaces) == 0 || &n.Interfaces[0] == &o.Interfaces[0])
	return sameLabels && (sameInterfaces || slices.EqualFunc(n.Interfaces, o.Interfaces, func(a, b Interface) bool {
		return a.Name == b.Name && slices.Equal(a.Prefixes, b.Prefixes)
	}))
}

// Address is an address some Services hold.
type Address struct {
	IP   netip.Addr
	Pool *config.Pool
	// Local are the holders with externalTrafficPolicy Local, sorted by
	// key.
	Local []LocalHolder
}

// LocalHolder is a Service with externalTrafficPolicy Local holding an
// address: traffic reaching a node without one of its ready endpoints is
// dropped there.
type LocalHolder struct {
	Key string // namespace/name
	// Ready are the nodes with a ready endpoint of it, sorted.
	Ready []string
}

// equal reports whether a and o elect alike. Pools are compared by what the
// election reads, so a config edit that leaves a pool's mode, interfaces and
// nodeSelector alone (new ranges, another pool) costs no election.
func (a *Address) equal(o *Address) bool {
	return a.IP == o.IP && sameElection(a.Pool, o.Pool) && slices.EqualFunc(a.Local, o.Local, func(x, y LocalHolder) bool {
		return x.Key == y.Key && slices.Equal(x.Ready, y.Ready)
	})
}

func sameElection(p, o *config.Pool) bool {
	if p == o {
		return true
	}
	return p.Mode == o.Mode && slices.Equal(p.Interfaces, o.Interfaces) && sameSelector(p.NodeSelector, o.NodeSelector)
}

// sameSelector compares selectors by their text; Nothing and Everything
// both print "", so emptiness is compared as well.
func sameSelector(a, b labels.Selector) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Empty() == b.Empty() && a.String() == b.String()
}

// Decision is how this node announces one address.
type Decision struct {
	// Interface is the interface it is announced on ("" for vip mode's
	// off-subnet interface, or a bgp address on no subnet of the node).
	Interface string
	// Unserved are the Local holders without a ready endpoint on this
	// node, set when no node has one of each.
	Unserved []string
}

// Who announces an address:
//   - The candidates are the alive nodes the pool's nodeSelector picks and,
//     when Local services hold the address, that have a ready endpoint of as
//     many of them as any node has. Traffic for a Local service reaching a
//     node without its endpoint is dropped, so a node serving every holder
//     wins; services sharing an address may have their endpoints on
//     disjoint nodes, and then the nodes serving the most of them do rather
//     than none. With no ready endpoint on any of them, no node is.
//   - layer2 and vip: one owner among the candidates with an interface for
//     the address (rendezvous hashing, Owner).
//   - vip with the address on no candidate's subnet and no pool interfaces:
//     every candidate, on its off-subnet interface, for a routing daemon.
//   - bgp: every candidate; routers spread traffic with ECMP.

// Table decides which addresses one node (self) announces, and absorbs
// node and address changes at a cost that grows with one of them only.
type Table struct {
	self  string
	nodes map[string]*Node
	addrs map[netip.Addr]*addrState
	mine  map[netip.Addr]Decision
	// generation counts Updates; an address not given in the latest is
	// gone.
	generation uint64
}

// addrState is one address and its election among the nodes.
type addrState struct {
	Address
	// Without Local holders the candidates are every selected node, and
	// owner is kept as nodes come and go. With them,
	// the candidates are among the nodes named by a holder (their Ready
	// lists), few enough to elect again on each change of one of them.
	owner      ranked   // among the candidates with an interface; none has one when zero
	candidates []string // with Local holders
	generation uint64   // the latest Update that gave it
}

// NewTable returns an empty table for the node called self.
func NewTable(self string) *Table {
	return &Table{self: self, nodes: map[string]*Node{}, addrs: map[netip.Addr]*addrState{}, mine: map[netip.Addr]Decision{}}
}

// Mine returns what this node announces, by address. The map is the
// table's own: read it, do not keep it past the next Update.
func (t *Table) Mine() map[netip.Addr]Decision { return t.mine }

// Owner returns the node elected for ip among the candidates with an
// interface for it ("" when none has one, or ip is not in the table). For
// bgp addresses, and vip addresses on no candidate's subnet, every
// candidate announces: the owner is only the one that would if one did.
func (t *Table) Owner(ip netip.Addr) string {
	if a := t.addrs[ip]; a != nil {
		return a.owner.name
	}
	return ""
}

// Stats counts the elections an Update ran: full ones (over every candidate
// of an address) and incremental ones (one node weighed for an address).
type Stats struct {
	Full, Incremental int
}

// Update makes the table hold nodes (the alive ones; a node's labels and
// interfaces included) and addrs (every held address), electing again only
// where a change can move an owner. The table keeps both slices: the caller
// builds new ones for the next Update rather than changing these.
func (t *Table) Update(nodes []Node, addrs []Address) Stats {
	var st Stats
	c := t.nodeChangesFrom(nodes)

	t.generation++
	for i := range addrs {
		cur, elected := t.set(&addrs[i])
		if elected {
			st.Full++
			continue
		}
		st.add(t.absorbNodes(cur, c))
	}
	for ip, a := range t.addrs {
		if a.generation != t.generation {
			delete(t.addrs, ip)
			delete(t.mine, ip)
		}
	}
	return st
}

// UpdateNodes is Update with the addresses unchanged (a membership change):
// its cost grows with the addresses, and with the nodes only for the
// addresses a leaving node owned.
func (t *Table) UpdateNodes(nodes []Node) Stats {
	var st Stats
	c := t.nodeChangesFrom(nodes)
	if len(c.removed) == 0 && len(c.added) == 0 {
		return st
	}
	for _, cur := range t.addrs {
		st.add(t.absorbNodes(cur, c))
	}
	return st
}

// nodeChanges are the nodes that left or changed (removed, as they were)
// and came or changed (added), their names, and whether this node is one.
type nodeChanges struct {
	removed, added []*Node
	names          map[string]bool
	self           bool
}

// nodeChangesFrom makes the table hold nodes and returns what changed.
func (t *Table) nodeChangesFrom(nodes []Node) nodeChanges {
	var c nodeChanges
	c.removed, c.added = t.setNodes(nodes)
	c.names = make(map[string]bool, len(c.removed)+len(c.added))
	for _, list := range [][]*Node{c.removed, c.added} {
		for _, n := range list {
			c.names[n.Name] = true
		}
	}
	c.self = c.names[t.self]
	return c
}

func (st *Stats) add(o Stats) {
	st.Full += o.Full
	st.Incremental += o.Incremental
}

// absorbNodes brings an address's election up to date with the nodes'
// changes.
func (t *Table) absorbNodes(cur *addrState, c nodeChanges) Stats {
	var st Stats
	touched := c.self
	removed, added := c.removed, c.added
	switch {
	case len(removed) == 0 && len(added) == 0:
	case len(cur.Local) > 0 && touchesReady(cur, c.names):
		// A node with a ready endpoint came, went or changed: elect again
		// among the few.
		t.elect(cur)
		st.Full++
		touched = true
	case len(cur.Local) > 0:
		// Its candidates are among nodes that did not change.
	default:
		full, n := t.absorb(cur, removed, added)
		if full {
			t.elect(cur)
			st.Full++
		}
		st.Incremental += n
		touched = touched || full || n > 0
	}
	if touched {
		t.decide(cur)
	}
	return st
}

// UpdateAddresses is Update for a few addresses with the nodes unchanged:
// changed are given anew (an election where they differ), removed are no
// longer held. Its cost grows with the nodes, not with the other addresses.
func (t *Table) UpdateAddresses(changed []Address, removed []netip.Addr) Stats {
	var st Stats
	for _, ip := range removed {
		delete(t.addrs, ip)
		delete(t.mine, ip)
	}
	for i := range changed {
		if _, elected := t.set(&changed[i]); elected {
			st.Full++
		}
	}
	return st
}

// set puts a in the table, electing when it is new or elects differently
// from the address it replaces.
func (t *Table) set(a *Address) (*addrState, bool) {
	cur := t.addrs[a.IP]
	if cur == nil || !cur.Address.equal(a) {
		cur = &addrState{Address: *a, generation: t.generation}
		t.addrs[a.IP] = cur
		t.elect(cur)
		t.decide(cur)
		return cur, true
	}
	cur.Address, cur.generation = *a, t.generation // the same election, maybe a new pool object
	return cur, false
}

// setNodes replaces the nodes and returns those that left or changed (as
// they were) and those that came or changed (as they are). The map is
// updated in place, and searched for nodes that left only when some did:
// every membership change comes here, on every node.
func (t *Table) setNodes(nodes []Node) (removed, added []*Node) {
	kept := 0
	for i := range nodes {
		n := &nodes[i]
		old := t.nodes[n.Name]
		if old != nil {
			kept++
		}
		if old == nil || !old.equal(n) {
			if old != nil {
				removed = append(removed, old)
			}
			added = append(added, n)
		}
	}
	if kept < len(t.nodes) {
		present := make(map[string]bool, len(nodes))
		for i := range nodes {
			present[nodes[i].Name] = true
		}
		for name, old := range t.nodes {
			if !present[name] {
				removed = append(removed, old)
				delete(t.nodes, name)
			}
		}
	}
	for i := range nodes {
		t.nodes[nodes[i].Name] = &nodes[i]
	}
	return removed, added
}

// touchesReady reports whether a node that changed (changed: their names)
// has a ready endpoint of one of a's Local holders.
func touchesReady(a *addrState, changed map[string]bool) bool {
	for _, h := range a.Local {
		for _, name := range h.Ready {
			if changed[name] {
				return true
			}
		}
	}
	return false
}

// absorb applies node changes to an address without Local holders without a full election
// unless its owner left. It returns whether a full election is needed and
// how many nodes it weighed.
func (t *Table) absorb(a *addrState, removed, added []*Node) (full bool, weighed int) {
	for _, n := range removed {
		if n.Name == a.owner.name {
			return true, 0
		}
	}
	for _, n := range added {
		if !selects(a.Pool, n) || n.InterfaceFor(a.IP, a.Pool.Interfaces) == "" {
			continue
		}
		a.owner = a.owner.max(ranked{name: n.Name, score: weight(n.Name, a.IP)})
		weighed++
	}
	return false, weighed
}

// elect runs a's election over every node that may be a candidate.
func (t *Table) elect(a *addrState) {
	a.owner = ranked{}
	a.candidates = nil
	consider := func(n *Node) {
		if n.InterfaceFor(a.IP, a.Pool.Interfaces) != "" {
			a.owner = a.owner.max(ranked{name: n.Name, score: weight(n.Name, a.IP)})
		}
	}
	if len(a.Local) == 0 {
		for _, n := range t.nodes {
			if selects(a.Pool, n) {
				consider(n)
			}
		}
		return
	}
	served := map[string]int{}
	best := 0
	for _, h := range a.Local {
		for _, name := range h.Ready {
			if n := t.nodes[name]; n != nil && selects(a.Pool, n) {
				served[name]++
				best = max(best, served[name])
			}
		}
	}
	for name, count := range served {
		if count == best {
			a.candidates = append(a.candidates, name)
			consider(t.nodes[name])
		}
	}
}

// decide derives this node's decision for a from its election.
func (t *Table) decide(a *addrState) {
	delete(t.mine, a.IP)
	self := t.nodes[t.self]
	if self == nil || !t.isCandidate(a, self) {
		return
	}
	iface := self.InterfaceFor(a.IP, a.Pool.Interfaces)
	switch {
	case a.Pool.Mode == config.ModeBGP:
	case a.Pool.Mode == config.ModeVIP && a.owner.name == "" && len(a.Pool.Interfaces) == 0:
		iface = ""
	case a.owner.name != t.self:
		return
	}
	d := Decision{Interface: iface}
	for _, h := range a.Local {
		if _, ok := slices.BinarySearch(h.Ready, t.self); !ok {
			d.Unserved = append(d.Unserved, h.Key)
		}
	}
	t.mine[a.IP] = d
}

// isCandidate reports whether n is one of a's candidates.
func (t *Table) isCandidate(a *addrState, n *Node) bool {
	if len(a.Local) == 0 {
		return selects(a.Pool, n)
	}
	return slices.Contains(a.candidates, n.Name)
}

// selects reports whether pool's nodeSelector picks n.
func selects(pool *config.Pool, n *Node) bool {
	return pool.NodeSelector == nil || pool.NodeSelector.Matches(labels.Set(n.Labels))
}
