package ipam

import (
	"maps"
	"math/big"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestSetPoolsValidation(t *testing.T) {
	tests := []struct {
		name    string
		pools   []PoolSpec
		wantErr string
	}{
		{
			name: "valid, with adjacent ranges and an empty pool",
			pools: []PoolSpec{
				poolSpec(t, "a", "203.0.113.0-203.0.113.9", "203.0.113.10-203.0.113.19", "2001:db8::/64"),
				poolSpec(t, "b", "203.0.113.20/30", "2001:db8:0:1::/64"),
				{Name: "empty"},
			},
		},
		{
			name:    "empty name",
			pools:   []PoolSpec{poolSpec(t, "a", "203.0.113.0/30"), poolSpec(t, "", "203.0.113.8/30")},
			wantErr: "pool 1 has an empty name",
		},
		{
			name:    "duplicate name",
			pools:   []PoolSpec{poolSpec(t, "a", "203.0.113.0/30"), poolSpec(t, "a", "203.0.113.8/30")},
			wantErr: `pool "a" is defined more than once`,
		},
		{
			name:    "mixed families",
			pools:   []PoolSpec{{Name: "a", Ranges: []Range{{First: addr("203.0.113.0"), Last: addr("2001:db8::1")}}}},
			wantErr: `pool "a", range 0: range start and end are of different families`,
		},
		{
			name: "reversed",
			pools: []PoolSpec{{Name: "a", Ranges: []Range{
				{First: addr("203.0.113.0"), Last: addr("203.0.113.1")},
				{First: addr("203.0.113.9"), Last: addr("203.0.113.5")},
			}}},
			wantErr: `pool "a", range 1: range is reversed: 203.0.113.9 is after 203.0.113.5`,
		},
		{
			name:    "unset address",
			pools:   []PoolSpec{{Name: "a", Ranges: []Range{{First: addr("203.0.113.0")}}}},
			wantErr: `pool "a", range 0: range end is missing`,
		},
		{
			name:    "zoned address",
			pools:   []PoolSpec{{Name: "a", Ranges: []Range{{First: addr("fe80::1%eth0"), Last: addr("fe80::2%eth0")}}}},
			wantErr: `pool "a", range 0: range start has an IPv6 zone`,
		},
		{
			name:    "IPv4-mapped address",
			pools:   []PoolSpec{{Name: "a", Ranges: []Range{{First: addr("::ffff:1.2.3.4"), Last: addr("::ffff:1.2.3.5")}}}},
			wantErr: `pool "a", range 0: range start is an IPv4-mapped IPv6 address`,
		},
		{
			name:    "overlap within a pool",
			pools:   []PoolSpec{poolSpec(t, "a", "203.0.113.0/28", "203.0.113.15-203.0.113.20")},
			wantErr: `pool "a": ranges 203.0.113.0-203.0.113.15 and 203.0.113.15-203.0.113.20 overlap`,
		},
		{
			name: "overlap across pools",
			pools: []PoolSpec{
				poolSpec(t, "a", "2001:db8::/64"),
				poolSpec(t, "b", "203.0.113.0/24"),
				poolSpec(t, "c", "2001:db8::ffff:0:0:1"),
			},
			wantErr: `range 2001:db8::-2001:db8::ffff:ffff:ffff:ffff of pool "a" overlaps range 2001:db8::ffff:0:0:1 of pool "c"`,
		},
		{
			name: "identical ranges are named in configuration order",
			pools: []PoolSpec{
				poolSpec(t, "z", "203.0.113.7"),
				poolSpec(t, "a", "203.0.113.7"),
			},
			wantErr: `range 203.0.113.7 of pool "z" overlaps range 203.0.113.7 of pool "a"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAllocator(t, poolSpec(t, "old", "198.51.100.0/24"))
			mustAllocate(t, a, req("web", v4("old")))
			before := a.snapshot()
			err := a.SetPools(tt.pools)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("SetPools() error: %v", err)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("SetPools() = %v, want error containing %q", err, tt.wantErr)
				}
				if after := a.snapshot(); after != before {
					t.Fatalf("failed SetPools changed the state:\nbefore:\n%s\nafter:\n%s", before, after)
				}
			}
			if err := a.checkInvariants(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestPoolChanges walks one allocator through configuration reloads that
// remove, shrink and re-add the pool of held addresses.
func TestPoolChanges(t *testing.T) {
	poolA := poolSpec(t, "a", "203.0.113.0-203.0.113.3")
	shrunkA := poolSpec(t, "a", "203.0.113.1-203.0.113.3")
	poolB := poolSpec(t, "b", "203.0.113.8-203.0.113.11")
	poolC := poolSpec(t, "c", "203.0.113.0-203.0.113.7")
	web, orphanAddr := "default/web", addr("203.0.113.0")

	a := newAllocator(t, poolA, poolB)
	step := func(name string, fn func(t *testing.T)) {
		t.Helper()
		if !t.Run(name, fn) {
			t.FailNow()
		}
		if err := a.checkInvariants(); err != nil {
			t.Fatalf("after %s: %v", name, err)
		}
	}
	wantOrphans := func(t *testing.T, want map[netip.Addr][]string) {
		t.Helper()
		if got := a.Orphans(); !maps.EqualFunc(got, want, slices.Equal) {
			t.Errorf("Orphans() = %v, want %v", got, want)
		}
	}
	wantAllocate := func(t *testing.T, r Request, want ...Assignment) {
		t.Helper()
		if got := mustAllocate(t, a, r); !slices.Equal(got, want) {
			t.Errorf("Allocate(%s) = %v, want %v", r.Service, got, want)
		}
	}

	step("allocate", func(t *testing.T) {
		wantAllocate(t, req("web", v4("a")), Assignment{Addr: orphanAddr, Pool: "a"})
	})
	step("pool removed: the address becomes an orphan", func(t *testing.T) {
		if err := a.SetPools([]PoolSpec{poolB}); err != nil {
			t.Fatal(err)
		}
		wantOrphans(t, map[netip.Addr][]string{orphanAddr: {web}})
		if p, ok := a.PoolOf(orphanAddr); ok {
			t.Errorf("PoolOf(%s) = %q, want none", orphanAddr, p)
		}
		want := []Assignment{{Addr: orphanAddr, Kept: true}}
		if got := a.Addresses(web); !slices.Equal(got, want) {
			t.Errorf("Addresses() = %v, want %v", got, want)
		}
	})
	step("the orphan is kept by its service", func(t *testing.T) {
		wantAllocate(t, req("web", v4("b")), Assignment{Addr: orphanAddr, Kept: true})
	})
	step("the orphan is not handed to another service", func(t *testing.T) {
		wantAllocate(t, req("x", v4("b")), Assignment{Addr: addr("203.0.113.8"), Pool: "b"})
		_, err := a.Allocate(req("y", withIP(v4("b"), orphanAddr.String())))
		if err == nil || !strings.Contains(err.Error(), "203.0.113.0 is in no pool") {
			t.Errorf("Allocate(orphan) error = %v", err)
		}
		if err := a.Seed("default/y", orphanAddr, Sharing{}); err == nil {
			t.Error("Seed of an orphan held by another service succeeded")
		}
	})
	step("pool shrunk around the orphan", func(t *testing.T) {
		if err := a.SetPools([]PoolSpec{shrunkA, poolB}); err != nil {
			t.Fatal(err)
		}
		wantOrphans(t, map[netip.Addr][]string{orphanAddr: {web}})
		wantAllocate(t, req("z", v4("a")), Assignment{Addr: addr("203.0.113.1"), Pool: "a"})
	})
	step("a new pool containing the held address", func(t *testing.T) {
		if err := a.SetPools([]PoolSpec{poolC, poolB}); err != nil {
			t.Fatal(err)
		}
		wantOrphans(t, map[netip.Addr][]string{})
		want := []Assignment{{Addr: orphanAddr, Pool: "c", Kept: true}}
		if got := a.Addresses(web); !slices.Equal(got, want) {
			t.Errorf("Addresses() = %v, want %v", got, want)
		}
		// .0 and .1 are held: the lowest free address of c is .2.
		wantAllocate(t, req("v", v4("c")), Assignment{Addr: addr("203.0.113.2"), Pool: "c"})
		for _, s := range a.Stats() {
			if s.Pool == "c" && s.InUse != 3 {
				t.Errorf("pool c InUse = %d, want 3", s.InUse)
			}
		}
	})
	step("an explicit request gives the orphan up", func(t *testing.T) {
		if err := a.SetPools([]PoolSpec{poolB}); err != nil {
			t.Fatal(err)
		}
		wantAllocate(t, req("web", explicit(v4("b"))), Assignment{Addr: addr("203.0.113.9"), Pool: "b"})
		wantOrphans(t, map[netip.Addr][]string{
			addr("203.0.113.1"): {"default/z"},
			addr("203.0.113.2"): {"default/v"},
		})
	})
	step("released orphans are forgotten, and free once their pool returns", func(t *testing.T) {
		a.Release("default/z")
		a.Release("default/v")
		wantOrphans(t, map[netip.Addr][]string{})
		if err := a.SetPools([]PoolSpec{poolA, poolB}); err != nil {
			t.Fatal(err)
		}
		wantAllocate(t, req("u", v4("a")), Assignment{Addr: orphanAddr, Pool: "a"})
	})
}

func TestSeed(t *testing.T) {
	type seed struct {
		service string
		addr    string
		sharing Sharing
		wantErr string
	}
	dns := func(ports ...Port) Sharing { return Sharing{Key: "dns", Ports: ports} }
	tests := []struct {
		name  string
		seeds []seed
		// then, the addresses a new service gets from pool a
		wantNext []string
		wantHeld map[string][]string
	}{
		{
			name:     "an address in a pool is no longer free",
			seeds:    []seed{{service: "default/web", addr: "203.0.113.0"}},
			wantNext: []string{"203.0.113.1", "203.0.113.2", "203.0.113.3", ""},
			wantHeld: map[string][]string{"default/web": {"203.0.113.0"}},
		},
		{
			name:     "an address in no pool",
			seeds:    []seed{{service: "default/web", addr: "198.51.100.7"}},
			wantNext: []string{"203.0.113.0"},
			wantHeld: map[string][]string{"default/web": {"198.51.100.7"}},
		},
		{
			name: "twice is a no-op",
			seeds: []seed{
				{service: "default/web", addr: "203.0.113.2"},
				{service: "default/web", addr: "203.0.113.2", sharing: dns(tcp(53))},
			},
			wantHeld: map[string][]string{"default/web": {"203.0.113.2"}},
		},
		{
			name: "several addresses of one service",
			seeds: []seed{
				{service: "default/web", addr: "2001:db8::1"},
				{service: "default/web", addr: "203.0.113.2"},
				{service: "default/web", addr: "203.0.113.1"},
			},
			wantNext: []string{"203.0.113.0", "203.0.113.3"},
			wantHeld: map[string][]string{"default/web": {"203.0.113.1", "203.0.113.2", "2001:db8::1"}},
		},
		{
			name: "held by another service",
			seeds: []seed{
				{service: "default/web", addr: "203.0.113.1"},
				{service: "default/api", addr: "203.0.113.1", wantErr: "203.0.113.1 is held by default/web"},
			},
			wantHeld: map[string][]string{"default/web": {"203.0.113.1"}},
		},
		{
			name: "shared",
			seeds: []seed{
				{service: "default/dns-tcp", addr: "203.0.113.1", sharing: dns(tcp(53))},
				{service: "default/dns-udp", addr: "203.0.113.1", sharing: dns(udp(53))},
			},
			wantNext: []string{"203.0.113.0", "203.0.113.2"},
			wantHeld: map[string][]string{"default/dns-tcp": {"203.0.113.1"}, "default/dns-udp": {"203.0.113.1"}},
		},
		{
			name: "port collision",
			seeds: []seed{
				{service: "default/dns-tcp", addr: "203.0.113.1", sharing: dns(tcp(53))},
				{service: "default/dns-2", addr: "203.0.113.1", sharing: dns(tcp(53)), wantErr: "port TCP/53 collides with default/dns-tcp on 203.0.113.1"},
			},
			wantHeld: map[string][]string{"default/dns-tcp": {"203.0.113.1"}},
		},
		{
			name: "invalid",
			seeds: []seed{
				{service: "", addr: "203.0.113.1", wantErr: "service name is empty"},
				{service: "default/web", addr: "fe80::1%eth0", wantErr: "fe80::1%eth0 has an IPv6 zone"},
				{service: "default/web", addr: "::ffff:203.0.113.1", wantErr: "::ffff:203.0.113.1 is an IPv4-mapped IPv6 address"},
			},
			wantHeld: map[string][]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAllocator(t, poolSpec(t, "a", "203.0.113.0-203.0.113.3", "2001:db8::/64"))
			for _, s := range tt.seeds {
				before := a.snapshot()
				err := a.Seed(s.service, addr(s.addr), s.sharing)
				if s.wantErr == "" && err != nil {
					t.Fatalf("Seed(%s, %s): %v", s.service, s.addr, err)
				}
				if s.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), s.wantErr) {
						t.Fatalf("Seed(%s, %s) = %v, want error containing %q", s.service, s.addr, err, s.wantErr)
					}
					if after := a.snapshot(); after != before {
						t.Fatalf("failed Seed changed the state:\nbefore:\n%s\nafter:\n%s", before, after)
					}
				}
				if err := a.checkInvariants(); err != nil {
					t.Fatal(err)
				}
			}
			for service, want := range tt.wantHeld {
				var got []string
				for _, as := range a.Addresses(service) {
					got = append(got, as.Addr.String())
				}
				if !slices.Equal(got, want) {
					t.Errorf("Addresses(%s) = %v, want %v", service, got, want)
				}
			}
			for i, want := range tt.wantNext {
				got, err := a.Allocate(req("next"+string(rune('a'+i)), v4("a")))
				var gotAddr string
				if err == nil {
					gotAddr = got[0].Addr.String()
				}
				if gotAddr != want {
					t.Errorf("allocation %d = %v, %v; want %q", i, got, err, want)
				}
			}
		})
	}
	if err := New().Seed("default/web", netip.Addr{}, Sharing{}); err == nil {
		t.Error("Seed of the zero Addr succeeded")
	}
}

func TestSeededAddressIsKept(t *testing.T) {
	a := newAllocator(t, testPools(t)...)
	if err := a.Seed("default/web", addr("203.0.113.9"), Sharing{}); err != nil {
		t.Fatal(err)
	}
	got := mustAllocate(t, a, req("web", v4("a", "b")))
	want := []Assignment{{Addr: addr("203.0.113.9"), Pool: "b", Kept: true}}
	if !slices.Equal(got, want) {
		t.Errorf("Allocate() = %v, want %v", got, want)
	}
}

func TestRelease(t *testing.T) {
	a := newAllocator(t, testPools(t)...)
	mustAllocate(t, a, shared(req("dns-tcp", v4("a"), v6("a")), "dns", tcp(53)))
	mustAllocate(t, a, shared(req("dns-udp", v4("a")), "dns", udp(53)))

	got := a.Release("default/dns-tcp")
	want := []netip.Addr{addr("203.0.113.0"), addr("2001:db8:a::")}
	if !slices.Equal(got, want) {
		t.Errorf("Release() = %v, want %v", got, want)
	}
	if got := a.Addresses("default/dns-tcp"); got != nil {
		t.Errorf("Addresses() after Release = %v, want none", got)
	}
	// The shared address stays with dns-udp; the IPv6 one is free again.
	wantUDP := []Assignment{{Addr: addr("203.0.113.0"), Pool: "a", Kept: true}}
	if got := a.Addresses("default/dns-udp"); !slices.Equal(got, wantUDP) {
		t.Errorf("Addresses(dns-udp) = %v, want %v", got, wantUDP)
	}
	next := mustAllocate(t, a, req("web", v4("a"), v6("a")))
	wantNext := []Assignment{{Addr: addr("203.0.113.1"), Pool: "a"}, {Addr: addr("2001:db8:a::"), Pool: "a"}}
	if !slices.Equal(next, wantNext) {
		t.Errorf("Allocate() after Release = %v, want %v", next, wantNext)
	}
	if got := a.Release("default/nobody"); got != nil {
		t.Errorf("Release(unknown) = %v, want nil", got)
	}
	if err := a.checkInvariants(); err != nil {
		t.Fatal(err)
	}
}

func TestPoolOf(t *testing.T) {
	a := newAllocator(t, testPools(t)...)
	tests := []struct {
		addr     netip.Addr
		wantPool string
	}{
		{addr("203.0.113.0"), "a"},
		{addr("203.0.113.3"), "a"},
		{addr("203.0.113.4"), ""},
		{addr("203.0.113.11"), "b"},
		{addr("203.0.113.20"), "single"},
		{addr("2001:db8:a::3"), "a"},
		{addr("2001:db8:6::ffff"), "v6"},
		{addr("198.51.101.0"), "buggy"},
		{addr("0.0.0.0"), ""},
		{addr("::ffff:203.0.113.0"), ""},
		{netip.Addr{}, ""},
	}
	for _, tt := range tests {
		got, ok := a.PoolOf(tt.addr)
		if got != tt.wantPool || ok != (tt.wantPool != "") {
			t.Errorf("PoolOf(%v) = %q, %v; want %q", tt.addr, got, ok, tt.wantPool)
		}
	}
}

func TestStats(t *testing.T) {
	a := newAllocator(t,
		poolSpec(t, "z", "2001:db8::/64", "203.0.113.0/30", "203.0.113.8/29"),
		poolSpec(t, "half", "8000::/1"),
		PoolSpec{Name: "empty"},
	)
	mustAllocate(t, a, shared(req("dns-tcp", v4("z"), v6("z")), "dns", tcp(53)))
	mustAllocate(t, a, shared(req("dns-udp", v4("z")), "dns", udp(53)))
	mustAllocate(t, a, req("web", v4("z")))
	if err := a.Seed("default/seeded", addr("8000::1"), Sharing{}); err != nil {
		t.Fatal(err)
	}

	want := []PoolStats{
		{Pool: "half", Family: IPv6, Size: new(big.Int).Lsh(big.NewInt(1), 127), InUse: 1},
		{Pool: "z", Family: IPv4, Size: big.NewInt(12), InUse: 2},
		{Pool: "z", Family: IPv6, Size: new(big.Int).Lsh(big.NewInt(1), 64), InUse: 1},
	}
	got := a.Stats()
	equal := slices.EqualFunc(got, want, func(x, y PoolStats) bool {
		return x.Pool == y.Pool && x.Family == y.Family && x.Size.Cmp(y.Size) == 0 && x.InUse == y.InUse
	})
	if !equal {
		t.Errorf("Stats() = %v, want %v", got, want)
	}
	// The sizes are copies.
	got[0].Size.SetInt64(0)
	if a.Stats()[0].Size.Sign() == 0 {
		t.Error("changing a returned Size changed the pool")
	}
}

// TestWholeAddressSpaces checks that pools as large as a family cost one free
// span when empty, and that their edges are handled.
func TestWholeAddressSpaces(t *testing.T) {
	a := newAllocator(t, poolSpec(t, "all4", "0.0.0.0/0"), poolSpec(t, "all6", "::/0"))
	for _, f := range []Family{IPv4, IPv6} {
		pool := map[Family]string{IPv4: "all4", IPv6: "all6"}[f]
		if spans := a.pools[pool].family(f).free.spans.Len(); spans != 1 {
			t.Errorf("empty %s pool has %d free spans, want 1", f, spans)
		}
	}
	for i, want := range []string{"0.0.0.0", "0.0.0.1", "0.0.0.2"} {
		got := mustAllocate(t, a, req("v4-"+strconv.Itoa(i), v4("all4")))
		if got[0].Addr != addr(want) {
			t.Errorf("allocation %d = %v, want %s", i, got, want)
		}
	}
	last4, last6 := "255.255.255.255", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
	mustAllocate(t, a, req("top4", withIP(v4("all4"), last4)))
	mustAllocate(t, a, req("dual", v6("all6"), withIP(v4("all4"), "0.0.0.4")))
	mustAllocate(t, a, req("top6", withIP(v6("all6"), last6)))
	a.Release("default/v4-1")
	if err := a.checkInvariants(); err != nil {
		t.Fatal(err)
	}
	want := []string{"0.0.0.1", "0.0.0.3", "0.0.0.5-255.255.255.254"}
	if got := a.pools["all4"].v4.free.spanStrings(); !slices.Equal(got, want) {
		t.Errorf("IPv4 free spans = %v, want %v", got, want)
	}
	a.Release("default/top4")
	a.Release("default/top6")
	a.Release("default/dual")
	want6 := []string{"::-" + last6}
	if got := a.pools["all6"].v6.free.spanStrings(); !slices.Equal(got, want6) {
		t.Errorf("IPv6 free spans = %v, want %v", got, want6)
	}
}
