package election

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/ironlb/ironlb/config"
)

// benchInputs are nodes nodes on one subnet and services addresses in one
// layer2 pool, a fraction local of them held by a Local service with ready
// endpoints on three nodes.
func benchInputs(nodes, services int, local float64) ([]Node, []Address) {
	prefix := netip.MustParsePrefix("198.18.0.0/15")
	ns := make([]Node, nodes)
	names := make([]string, nodes)
	for i := range ns {
		names[i] = fmt.Sprintf("node-%04d", i)
		ns[i] = Node{Name: names[i], Labels: map[string]string{"kubernetes.io/hostname": names[i]},
			Interfaces: []Interface{{Name: "eth0", Prefixes: []netip.Prefix{prefix}}}}
	}
	pool := &config.Pool{Name: "lan", Mode: config.ModeLayer2}
	addrs := make([]Address, services)
	ip := prefix.Addr()
	every := 0
	if local > 0 {
		every = int(1 / local)
	}
	for i := range addrs {
		ip = ip.Next()
		addrs[i] = Address{IP: ip, Pool: pool}
		if every > 0 && i%every == 0 {
			ready := []string{names[(i*7)%nodes], names[(i*7+13)%nodes], names[(i*7+29)%nodes]}
			slices.Sort(ready)
			addrs[i].Local = []LocalHolder{{Key: fmt.Sprintf("default/svc-%05d", i), Ready: slices.Compact(ready)}}
		}
	}
	return ns, addrs
}

// BenchmarkTable is the decision alone at the sizes: "all" elects
// every address from scratch (a start or a config change), "member" is one
// node leaving or coming back in turn (UpdateNodes), "address" one address
// moving to another mode and back (UpdateAddresses), "none" a full Update
// with nothing changed (what a full sync costs it).
func BenchmarkTable(b *testing.B) {
	for _, size := range []struct {
		nodes, services int
		local           float64
	}{{100, 2000, 0.5}, {1000, 10000, 0}, {1000, 10000, 0.5}} {
		nodes, addrs := benchInputs(size.nodes, size.services, size.local)
		name := fmt.Sprintf("nodes=%d/services=%d/local=%.1f", size.nodes, size.services, size.local)
		b.Run(name+"/all", func(b *testing.B) {
			for b.Loop() {
				NewTable(nodes[0].Name).Update(nodes, addrs)
			}
		})
		tab := NewTable(nodes[0].Name)
		tab.Update(nodes, addrs)
		b.Run(name+"/member", func(b *testing.B) {
			without := nodes[:len(nodes)-1] // the last node owns its share
			i := 0
			for b.Loop() {
				if i%2 == 0 {
					tab.UpdateNodes(without)
				} else {
					tab.UpdateNodes(nodes)
				}
				i++
			}
			tab.UpdateNodes(nodes)
		})
		b.Run(name+"/address", func(b *testing.B) {
			moved := addrs[0]
			moved.Pool = &config.Pool{Name: "other", Mode: config.ModeVIP}
			i := 0
			for b.Loop() {
				if i%2 == 0 {
					tab.UpdateAddresses([]Address{moved}, nil)
				} else {
					tab.UpdateAddresses(addrs[:1], nil)
				}
				i++
			}
		})
		b.Run(name+"/none", func(b *testing.B) {
			for b.Loop() {
				tab.Update(nodes, addrs)
			}
		})
	}
}
