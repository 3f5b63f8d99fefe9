package election

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"testing"
)

func TestOwnerSpreadsAndIsStable(t *testing.T) {
	nodes := []string{"node-1", "node-2", "node-3"}
	count := map[string]int{}
	owners := map[netip.Addr]string{}
	addr := netip.MustParseAddr("203.0.113.0")
	for range 240 {
		addr = addr.Next()
		o, ok := Owner(addr, nodes)
		if !ok {
			t.Fatal("no owner")
		}
		if again, _ := Owner(addr, []string{"node-3", "node-1", "node-2"}); again != o {
			t.Fatalf("%s: owner depends on candidate order: %s vs %s", addr, o, again)
		}
		owners[addr] = o
		count[o]++
	}
	for _, n := range nodes {
		if count[n] < 240/3/2 {
			t.Errorf("uneven spread: %v", count)
		}
	}
	// Removing a node moves only the addresses it owned.
	for a, o := range owners {
		n, _ := Owner(a, []string{"node-1", "node-2"})
		if o != "node-3" && n != o {
			t.Errorf("%s moved from %s to %s though its owner stayed", a, o, n)
		}
	}
	if _, ok := Owner(addr, nil); ok {
		t.Error("an owner among no candidates")
	}
}

func BenchmarkOwner(b *testing.B) {
	nodes := make([]string, 100)
	for i := range nodes {
		nodes[i] = fmt.Sprintf("node-%d", i)
	}
	addr := netip.MustParseAddr("203.0.113.10")
	for b.Loop() {
		Owner(addr, nodes)
	}
}

// TestWeightIsFNV1a pins the weight to hash/fnv's, which earlier releases
// used: a rolling update must not move addresses.
func TestWeightIsFNV1a(t *testing.T) {
	for _, c := range []struct{ node, addr string }{{"node-1", "203.0.113.7"}, {"", "2001:db8::1"}, {"a-much-longer-node-name.example", "198.51.100.255"}} {
		addr := netip.MustParseAddr(c.addr)
		h := fnv.New64a()
		h.Write([]byte(c.node))
		h.Write([]byte{0})
		a := addr.As16()
		h.Write(a[:])
		if got, want := weight(c.node, addr), mix(h.Sum64()); got != want {
			t.Errorf("weight(%q, %s) = %x, want %x", c.node, addr, got, want)
		}
	}
}
