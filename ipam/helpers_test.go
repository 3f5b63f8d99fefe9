package ipam

import (
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// mustRanges parses each of ss with ParseRange, failing the test on error.
func mustRanges(t testing.TB, ss ...string) []Range {
	t.Helper()
	out := make([]Range, len(ss))
	for i, s := range ss {
		r, err := ParseRange(s)
		if err != nil {
			t.Fatalf("ParseRange(%q): %v", s, err)
		}
		out[i] = r
	}
	return out
}

// newAllocator returns an allocator with the given pools.
func newAllocator(t testing.TB, pools ...PoolSpec) *Allocator {
	t.Helper()
	a := New()
	if err := a.SetPools(pools); err != nil {
		t.Fatalf("SetPools: %v", err)
	}
	return a
}

// poolSpec builds a pool from ranges in ParseRange's syntax.
func poolSpec(t testing.TB, name string, ranges ...string) PoolSpec {
	t.Helper()
	return PoolSpec{Name: name, Ranges: mustRanges(t, ranges...)}
}

func addr(s string) netip.Addr {
	return netip.MustParseAddr(s)
}

// v4 and v6 build required family requests from the given pools.
func v4(pools ...string) FamilyRequest {
	return FamilyRequest{Family: IPv4, Required: true, Pools: pools}
}

func v6(pools ...string) FamilyRequest {
	return FamilyRequest{Family: IPv6, Required: true, Pools: pools}
}

func tcp(port int32) Port { return Port{Protocol: "TCP", Port: port} }
func udp(port int32) Port { return Port{Protocol: "UDP", Port: port} }

// mustAllocate allocates, failing the test on error.
func mustAllocate(t testing.TB, a *Allocator, req Request) []Assignment {
	t.Helper()
	got, err := a.Allocate(req)
	if err != nil {
		t.Fatalf("Allocate(%s): %v", req.Service, err)
	}
	return got
}

// checkInvariants verifies every internal index against the holdings.
func (a *Allocator) checkInvariants() error {
	a.mu.RLock()
	defer a.mu.RUnlock()

	inUse := map[*poolFamily]int{}
	services := map[string][]netip.Addr{}
	keys := map[string][]netip.Addr{}
	for addr, h := range a.held {
		if len(h.holders) == 0 {
			return fmt.Errorf("%s is held by nobody", addr)
		}
		if !slices.IsSortedFunc(h.holders, func(x, y holder) int { return strings.Compare(x.service, y.service) }) {
			return fmt.Errorf("%s: holders are not sorted", addr)
		}
		for i, x := range h.holders {
			for _, y := range h.holders[i+1:] {
				if x.service == y.service {
					return fmt.Errorf("%s: %s holds it twice", addr, x.service)
				}
				if !x.sharing.compatible(y.sharing) {
					return fmt.Errorf("%s is held by %s and %s, which may not share", addr, x.service, y.service)
				}
			}
			services[x.service] = append(services[x.service], addr)
			if x.sharing.Key != "" && !slices.Contains(keys[x.sharing.Key], addr) {
				keys[x.sharing.Key] = append(keys[x.sharing.Key], addr)
			}
		}
		p, inPool := a.ranges.lookup(addr)
		if p != h.pool {
			return fmt.Errorf("%s: recorded in pool %q, lies in %q", addr, h.poolName(), p.nameOrEmpty())
		}
		_, orphan := a.orphans[addr]
		if orphan == inPool {
			return fmt.Errorf("%s: orphan=%v but in pool=%v", addr, orphan, inPool)
		}
		if inPool {
			pf := p.family(FamilyOf(addr))
			if pf.free.isFree(addr) {
				return fmt.Errorf("%s is held and free", addr)
			}
			inUse[pf]++
		}
	}
	for addr := range a.orphans {
		if a.held[addr] == nil {
			return fmt.Errorf("orphan %s is not held", addr)
		}
	}

	if len(services) != len(a.byService) {
		return fmt.Errorf("byService has %d services, holdings %d", len(a.byService), len(services))
	}
	for svc, want := range services {
		slices.SortFunc(want, netip.Addr.Compare)
		if got := a.byService[svc]; !slices.Equal(got, want) {
			return fmt.Errorf("byService[%s] = %v, holdings say %v", svc, got, want)
		}
	}
	if len(keys) != len(a.byKey) {
		return fmt.Errorf("byKey has %d keys, holdings %d", len(a.byKey), len(keys))
	}
	for key, want := range keys {
		slices.SortFunc(want, netip.Addr.Compare)
		var got []netip.Addr
		a.byKey[key].Ascend(func(addr netip.Addr) bool { got = append(got, addr); return true })
		if !slices.Equal(got, want) {
			return fmt.Errorf("byKey[%q] = %v, holdings say %v", key, got, want)
		}
	}

	for name, p := range a.pools {
		for _, f := range []Family{IPv4, IPv6} {
			pf := p.family(f)
			if pf == nil {
				continue
			}
			if pf.inUse != inUse[pf] {
				return fmt.Errorf("pool %s %s: inUse %d, holdings say %d", name, f, pf.inUse, inUse[pf])
			}
			if err := pf.free.check(); err != nil {
				return fmt.Errorf("pool %s %s: %w", name, f, err)
			}
			total := new(big.Int).Add(pf.free.count(), big.NewInt(int64(pf.inUse)))
			if total.Cmp(pf.size) != 0 {
				return fmt.Errorf("pool %s %s: %s free + %d in use != size %s", name, f, pf.free.count(), pf.inUse, pf.size)
			}
		}
	}
	return nil
}

func (p *pool) nameOrEmpty() string {
	if p == nil {
		return ""
	}
	return p.name
}

// check verifies that spans are ordered, disjoint and maximal, and that the
// usable index holds exactly the spans with a usable address.
func (f *freeList) check() error {
	var prev span
	var err error
	f.spans.Ascend(func(s span) bool {
		switch {
		case s.last.Less(s.first):
			err = fmt.Errorf("span %s-%s is reversed", s.first, s.last)
		case prev.last.IsValid() && !prev.last.Less(s.first):
			err = fmt.Errorf("spans %s-%s and %s-%s overlap", prev.first, prev.last, s.first, s.last)
		case prev.last.IsValid() && prev.last.Next() == s.first:
			err = fmt.Errorf("spans %s-%s and %s-%s touch", prev.first, prev.last, s.first, s.last)
		}
		if f.usable != nil {
			_, usable := f.firstUsable(s)
			if f.usable.Has(s) != usable {
				err = fmt.Errorf("span %s-%s: usable=%v, indexed=%v", s.first, s.last, usable, f.usable.Has(s))
			}
		}
		prev = s
		return err == nil
	})
	if err == nil && f.usable != nil {
		f.usable.Ascend(func(s span) bool {
			if got, ok := f.spans.Get(s); !ok || got != s {
				err = fmt.Errorf("usable span %s-%s is not a free span", s.first, s.last)
			}
			return err == nil
		})
	}
	return err
}

// count returns the number of free addresses.
func (f *freeList) count() *big.Int {
	n := new(big.Int)
	f.spans.Ascend(func(s span) bool {
		n.Add(n, Range{First: s.first, Last: s.last}.Size())
		return true
	})
	return n
}

// spanStrings lists the free spans, for comparison in tests.
func (f *freeList) spanStrings() []string {
	var out []string
	f.spans.Ascend(func(s span) bool {
		out = append(out, Range{First: s.first, Last: s.last}.String())
		return true
	})
	return out
}

// snapshot renders the allocator's whole state, to check that a failed call
// changed nothing.
func (a *Allocator) snapshot() string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	var b strings.Builder
	addrs := make([]netip.Addr, 0, len(a.held))
	for addr := range a.held {
		addrs = append(addrs, addr)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	for _, addr := range addrs {
		h := a.held[addr]
		fmt.Fprintf(&b, "%s pool=%q:", addr, h.poolName())
		for _, hd := range h.holders {
			fmt.Fprintf(&b, " %s%v", hd.service, hd.sharing)
		}
		b.WriteString("\n")
	}
	names := make([]string, 0, len(a.pools))
	for name := range a.pools {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, f := range []Family{IPv4, IPv6} {
			if pf := a.pools[name].family(f); pf != nil {
				fmt.Fprintf(&b, "%s %s free=%v inUse=%d\n", name, f, pf.free.spanStrings(), pf.inUse)
			}
		}
	}
	return b.String()
}
