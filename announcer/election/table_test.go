package election

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/config"
)

// reference decides what self announces the plain way: every address,
// every node, no state. The table must always agree with it.
func reference(self string, nodes []Node, addrs []Address) map[netip.Addr]Decision {
	out := map[netip.Addr]Decision{}
	for _, a := range addrs {
		type cand struct {
			node     *Node
			unserved []string
		}
		var cands []cand
		best := min(len(a.Local), 1)
		for i := range nodes {
			n := &nodes[i]
			if a.Pool.NodeSelector != nil && !a.Pool.NodeSelector.Matches(labels.Set(n.Labels)) {
				continue
			}
			var unserved []string
			for _, h := range a.Local {
				if !slices.Contains(h.Ready, n.Name) {
					unserved = append(unserved, h.Key)
				}
			}
			served := len(a.Local) - len(unserved)
			if served < best {
				continue
			}
			if served > best {
				best, cands = served, nil
			}
			cands = append(cands, cand{n, unserved})
		}
		var mine *cand
		var withInterface []string
		for i, c := range cands {
			if c.node.Name == self {
				mine = &cands[i]
			}
			if c.node.InterfaceFor(a.IP, a.Pool.Interfaces) != "" {
				withInterface = append(withInterface, c.node.Name)
			}
		}
		if mine == nil {
			continue
		}
		d := Decision{Interface: mine.node.InterfaceFor(a.IP, a.Pool.Interfaces), Unserved: mine.unserved}
		switch {
		case a.Pool.Mode == config.ModeBGP:
		case a.Pool.Mode == config.ModeVIP && len(withInterface) == 0 && len(a.Pool.Interfaces) == 0:
			d.Interface = ""
		default:
			if owner, _ := Owner(a.IP, withInterface); owner != self {
				continue
			}
		}
		out[a.IP] = d
	}
	return out
}

var (
	lan   = netip.MustParsePrefix("203.0.113.0/25")
	other = netip.MustParsePrefix("203.0.113.128/25")
)

// randomNode is a node with eth0 on lan, sometimes eth1 on other, and
// sometimes the edge label.
func randomNode(r *rand.Rand, name string) Node {
	n := Node{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}}
	if r.IntN(4) > 0 {
		n.Interfaces = append(n.Interfaces, Interface{Name: "eth0", Prefixes: []netip.Prefix{lan}})
	}
	if r.IntN(3) == 0 {
		n.Interfaces = append(n.Interfaces, Interface{Name: "eth1", Prefixes: []netip.Prefix{other}})
	}
	if r.IntN(2) == 0 {
		n.Labels["edge"] = "true"
	}
	return n
}

func testPools() []*config.Pool {
	edge := labels.SelectorFromSet(labels.Set{"edge": "true"})
	return []*config.Pool{
		{Name: "l2", Mode: config.ModeLayer2},
		{Name: "l2-edge", Mode: config.ModeLayer2, NodeSelector: edge},
		{Name: "vip", Mode: config.ModeVIP},
		{Name: "vip-eth1", Mode: config.ModeVIP, Interfaces: []string{"eth1"}},
		{Name: "bgp", Mode: config.ModeBGP},
		{Name: "bgp-edge", Mode: config.ModeBGP, NodeSelector: edge},
	}
}

func randomAddress(r *rand.Rand, ip netip.Addr, pools []*config.Pool, nodeNames []string) Address {
	a := Address{IP: ip, Pool: pools[r.IntN(len(pools))]}
	for h := range r.IntN(3) {
		if r.IntN(2) == 0 {
			continue
		}
		holder := LocalHolder{Key: fmt.Sprintf("ns/svc-%s-%d", ip, h)}
		for _, name := range nodeNames {
			if r.IntN(4) == 0 {
				holder.Ready = append(holder.Ready, name)
			}
		}
		a.Local = append(a.Local, holder)
	}
	return a
}

// TestTableAgreesWithReference drives tables through random node and
// address changes and checks every node's table against the reference
// after each.
func TestTableAgreesWithReference(t *testing.T) {
	pools := testPools()
	for seed := range uint64(40) {
		r := rand.New(rand.NewPCG(seed, 7))
		var names []string
		for i := range 12 {
			names = append(names, fmt.Sprintf("node-%d", i))
		}
		all := map[string]Node{}
		for _, name := range names {
			all[name] = randomNode(r, name)
		}
		alive := map[string]bool{}
		for _, name := range names {
			alive[name] = r.IntN(3) > 0
		}
		slices.Sort(names) // LocalHolder.Ready is sorted
		var addrs []Address
		for range 60 {
			ip := netip.AddrFrom4([4]byte{203, 0, 113, byte(r.IntN(250) + 1)})
			if !slices.ContainsFunc(addrs, func(a Address) bool { return a.IP == ip }) {
				addrs = append(addrs, randomAddress(r, ip, pools, names))
			}
		}
		tables := map[string]*Table{}
		var nodes []Node
		for _, name := range names {
			if alive[name] {
				nodes = append(nodes, all[name])
			}
		}
		for _, name := range names {
			tables[name] = NewTable(name)
			tables[name].Update(slices.Clone(nodes), slices.Clone(addrs))
		}
		for step := range 60 {
			// An address change alone may go through UpdateAddresses, a
			// node change alone through UpdateNodes.
			var changed []Address
			var released []netip.Addr
			switch r.IntN(5) {
			case 0: // a node leaves or comes back
				name := names[r.IntN(len(names))]
				alive[name] = !alive[name]
			case 1: // a node's labels or interfaces change
				name := names[r.IntN(len(names))]
				all[name] = randomNode(r, name)
			case 2: // an address changes pool or endpoints
				i := r.IntN(len(addrs))
				addrs = slices.Clone(addrs)
				addrs[i] = randomAddress(r, addrs[i].IP, pools, names)
				changed = append(changed, addrs[i])
			case 3: // an address is released
				i := r.IntN(len(addrs))
				released = append(released, addrs[i].IP)
				addrs = slices.Delete(slices.Clone(addrs), i, i+1)
			case 4: // several at once
				for range 3 {
					name := names[r.IntN(len(names))]
					alive[name] = !alive[name]
				}
			}
			nodes = nil
			for _, name := range names {
				if alive[name] {
					nodes = append(nodes, all[name])
				}
			}
			for _, name := range names {
				// Every table is updated, a dead node's too, so that each
				// can take the next change alone.
				switch {
				case (changed != nil || released != nil) && r.IntN(2) == 0:
					tables[name].UpdateAddresses(changed, released)
				case changed == nil && released == nil && r.IntN(2) == 0:
					tables[name].UpdateNodes(slices.Clone(nodes))
				default:
					tables[name].Update(slices.Clone(nodes), slices.Clone(addrs))
				}
				if !alive[name] {
					continue
				}
				want := reference(name, nodes, addrs)
				if got := tables[name].Mine(); !reflect.DeepEqual(normalize(got), normalize(want)) {
					t.Fatalf("seed %d step %d, %s: table %v, reference %v", seed, step, name, got, want)
				}
			}
		}
	}
}

func normalize(m map[netip.Addr]Decision) map[netip.Addr]Decision {
	out := make(map[netip.Addr]Decision, len(m))
	for ip, d := range m {
		if len(d.Unserved) == 0 {
			d.Unserved = nil
		}
		out[ip] = d
	}
	return out
}

func TestTableElectsOncePerChange(t *testing.T) {
	pool := &config.Pool{Name: "l2", Mode: config.ModeLayer2}
	eth0 := []Interface{{Name: "eth0", Prefixes: []netip.Prefix{lan}}}
	var nodes []Node
	for i := range 50 {
		nodes = append(nodes, Node{Name: fmt.Sprintf("node-%02d", i), Interfaces: eth0})
	}
	var addrs []Address
	ip := lan.Addr()
	for range 100 {
		ip = ip.Next()
		addrs = append(addrs, Address{IP: ip, Pool: pool})
	}
	tab := NewTable("node-00")
	if st := tab.Update(nodes, addrs); st.Full != 100 {
		t.Fatalf("first update: %+v, want 100 full elections", st)
	}
	if st := tab.Update(nodes, addrs); st != (Stats{}) {
		t.Errorf("nothing changed: %+v", st)
	}
	// A node that owned k addresses leaves: k full elections, nothing else.
	gone := "node-07"
	owned := 0
	for _, a := range addrs {
		if tab.Owner(a.IP) == gone {
			owned++
		}
	}
	rest := slices.DeleteFunc(slices.Clone(nodes), func(n Node) bool { return n.Name == gone })
	if st := tab.Update(rest, addrs); st.Full != owned || st.Incremental != 0 {
		t.Errorf("%s (owner of %d) left: %+v", gone, owned, st)
	}
	// It comes back: weighed once per address, no full election.
	if st := tab.Update(nodes, addrs); st.Full != 0 || st.Incremental != len(addrs) {
		t.Errorf("%s came back: %+v, want %d incremental", gone, st, len(addrs))
	}
	// A config edit that leaves the pool's election alone: none.
	same := slices.Clone(addrs)
	for i := range same {
		same[i].Pool = &config.Pool{Name: "l2", Mode: config.ModeLayer2}
	}
	if st := tab.Update(nodes, same); st != (Stats{}) {
		t.Errorf("an equal pool: %+v", st)
	}
	// One address changes mode: one full election.
	changed := slices.Clone(same)
	changed[3].Pool = &config.Pool{Name: "other", Mode: config.ModeVIP}
	if st := tab.Update(nodes, changed); st.Full != 1 || st.Incremental != 0 {
		t.Errorf("one address changed: %+v", st)
	}
}

func TestInterfaceFor(t *testing.T) {
	n := Node{Name: "n", Interfaces: []Interface{
		{Name: "eth0", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}},
		{Name: "eth1", Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:100::/64")}},
	}}
	cases := []struct {
		ip    string
		pool  []string
		iface string
	}{
		{"198.51.100.9", nil, "eth0"},
		{"2001:db8:100::9", nil, "eth1"},
		{"203.0.113.9", nil, ""},
		{"203.0.113.9", []string{"bond0", "eth1"}, "eth1"},
		{"203.0.113.9", []string{"bond0"}, ""},
	}
	for _, c := range cases {
		if got := n.InterfaceFor(netip.MustParseAddr(c.ip), c.pool); got != c.iface {
			t.Errorf("%s %v: %q, want %q", c.ip, c.pool, got, c.iface)
		}
	}
}

// TestVIPOffSubnetWhenTheLastInterfaceLeaves: a vip address on the subnet of
// one node only is that node's; once it leaves, every node announces it on
// its off-subnet interface, and when it returns it is its alone again.
func TestVIPOffSubnetWhenTheLastInterfaceLeaves(t *testing.T) {
	pool := &config.Pool{Name: "vip", Mode: config.ModeVIP}
	ip := netip.MustParseAddr("203.0.113.200")
	addrs := []Address{{IP: ip, Pool: pool}}
	onSubnet := Node{Name: "a", Interfaces: []Interface{{Name: "eth1", Prefixes: []netip.Prefix{other}}}}
	offSubnet := Node{Name: "b", Interfaces: []Interface{{Name: "eth0", Prefixes: []netip.Prefix{lan}}}}
	tab := NewTable("b")
	for _, step := range []struct {
		nodes []Node
		want  map[netip.Addr]Decision
	}{
		{[]Node{onSubnet, offSubnet}, map[netip.Addr]Decision{}},
		{[]Node{offSubnet}, map[netip.Addr]Decision{ip: {}}},
		{[]Node{onSubnet, offSubnet}, map[netip.Addr]Decision{}},
	} {
		tab.Update(step.nodes, addrs)
		if got := tab.Mine(); !reflect.DeepEqual(normalize(got), step.want) {
			t.Errorf("nodes %v: %v, want %v", step.nodes, got, step.want)
		}
	}
}
