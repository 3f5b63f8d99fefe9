package ipam

import (
	"slices"
	"strings"
	"testing"
)

// testPools are the pools TestAllocate uses unless a case says otherwise.
func testPools(t testing.TB) []PoolSpec {
	return []PoolSpec{
		poolSpec(t, "a", "203.0.113.0-203.0.113.3", "2001:db8:a::/126"),
		poolSpec(t, "b", "203.0.113.8-203.0.113.11"),
		poolSpec(t, "single", "203.0.113.20"),
		poolSpec(t, "v6", "2001:db8:6::/64"),
		{Name: "buggy", AvoidBuggyIPs: true, Ranges: mustRanges(t, "198.51.100.255-198.51.101.2", "2001:db8:b::/120")},
	}
}

// req builds a request for service default/name.
func req(name string, families ...FamilyRequest) Request {
	return Request{Service: "default/" + name, Families: families}
}

func shared(r Request, key string, ports ...Port) Request {
	r.Sharing = Sharing{Key: key, Ports: ports}
	return r
}

func withIP(fr FamilyRequest, ip string) FamilyRequest {
	fr.IP = addr(ip)
	return fr
}

func explicit(fr FamilyRequest) FamilyRequest {
	fr.Explicit = true
	return fr
}

func bestEffort(fr FamilyRequest) FamilyRequest {
	fr.Required = false
	return fr
}

func TestAllocate(t *testing.T) {
	dnsTCP := shared(req("dns-tcp", v4("a")), "dns", tcp(53))
	tests := []struct {
		name    string
		setup   []Request // allocated in order before req, each must succeed
		seed    map[string][]string
		release []string // services released after setup
		req     Request
		want    []Assignment
		wantErr string
		// then lists allocations made after req, with the address each must get,
		// to show which addresses req left free.
		then  []Request
		want2 []string
	}{
		{
			name: "lowest free address of the first pool",
			req:  req("web", v4("a", "b")),
			want: []Assignment{{Addr: addr("203.0.113.0"), Pool: "a"}},
		},
		{
			name:  "next pool when the first is full",
			setup: []Request{req("x", v4("single"))},
			req:   req("web", v4("single", "b")),
			want:  []Assignment{{Addr: addr("203.0.113.8"), Pool: "b"}},
		},
		{
			name:    "lowest free address after a release",
			setup:   []Request{req("x", v4("a")), req("y", v4("a")), req("z", v4("a"))},
			release: []string{"default/y"},
			req:     req("web", v4("a")),
			want:    []Assignment{{Addr: addr("203.0.113.1"), Pool: "a"}},
		},
		{
			name:    "exhausted",
			setup:   []Request{req("x", v4("single"))},
			req:     req("web", v4("single")),
			wantErr: "no free IPv4 address in pools [single]",
		},
		{
			name:    "exhausted, then released and reused",
			setup:   []Request{req("x", v4("single"))},
			release: []string{"default/x"},
			req:     req("web", v4("single")),
			want:    []Assignment{{Addr: addr("203.0.113.20"), Pool: "single"}},
		},
		{
			name:    "no pool of the family",
			req:     req("web", v6("b", "single", "nope")),
			wantErr: "no pool with IPv6 addresses among [b single nope]",
		},
		{
			name:    "unknown pool",
			req:     req("web", v4("nope")),
			wantErr: "no pool with IPv4 addresses among [nope]",
		},
		{
			name:    "no pools allow the service",
			req:     req("web", v4()),
			wantErr: "no pools allow this service",
		},

		// Rule 1: a requested IP.
		{
			name:  "requested IP",
			req:   req("web", withIP(v4("a", "b"), "203.0.113.9")),
			want:  []Assignment{{Addr: addr("203.0.113.9"), Pool: "b"}},
			then:  []Request{req("x", v4("b"))},
			want2: []string{"203.0.113.8"},
		},
		{
			name:    "requested IP in a pool not allowed",
			req:     req("web", withIP(v4("a", "single"), "203.0.113.9")),
			wantErr: `203.0.113.9 is in pool "b", not in [a single]`,
		},
		{
			name:    "requested IP with no pools allowed",
			req:     req("web", withIP(v4(), "203.0.113.9")),
			wantErr: `203.0.113.9 is in pool "b", but no pools allow this service`,
		},
		{
			name:    "requested IP in no pool",
			req:     req("web", withIP(v4("a"), "198.51.100.1")),
			wantErr: "198.51.100.1 is in no pool",
		},
		{
			name:    "requested IP held by another service",
			setup:   []Request{req("web", withIP(v4("b"), "203.0.113.9"))},
			req:     req("api", withIP(v4("b"), "203.0.113.9")),
			wantErr: "203.0.113.9 is held by default/web",
		},
		{
			name: "requested IP held under another sharing key names the smallest holder",
			setup: []Request{
				shared(req("web", withIP(v4("b"), "203.0.113.9")), "k", tcp(80)),
				shared(req("api", withIP(v4("b"), "203.0.113.9")), "k", tcp(443)),
			},
			req:     shared(req("x", withIP(v4("b"), "203.0.113.9")), "other", tcp(8080)),
			wantErr: `203.0.113.9 is held by default/api (sharing key "k" differs)`,
		},
		{
			name:  "requested IP shared: TCP and UDP on the same port",
			setup: []Request{shared(req("dns-tcp", withIP(v4("b"), "203.0.113.9")), "dns", tcp(53))},
			req:   shared(req("dns-udp", withIP(v4("b"), "203.0.113.9")), "dns", udp(53)),
			want:  []Assignment{{Addr: addr("203.0.113.9"), Pool: "b"}},
		},
		{
			name:    "requested IP with a port collision",
			setup:   []Request{shared(req("dns-tcp", withIP(v4("b"), "203.0.113.9")), "dns", tcp(53))},
			req:     shared(req("dns-2", withIP(v4("b"), "203.0.113.9")), "dns", udp(53), tcp(53)),
			wantErr: "port TCP/53 collides with default/dns-tcp on 203.0.113.9",
		},
		{
			name:  "requested IP the service holds",
			setup: []Request{req("web", withIP(v4("b"), "203.0.113.9"))},
			req:   req("web", withIP(v4("b"), "203.0.113.9")),
			want:  []Assignment{{Addr: addr("203.0.113.9"), Pool: "b", Kept: true}},
		},
		{
			name:  "requested IP moves the service",
			setup: []Request{req("web", v4("a"))},
			req:   req("web", withIP(v4("a"), "203.0.113.2")),
			want:  []Assignment{{Addr: addr("203.0.113.2"), Pool: "a"}},
			then:  []Request{req("x", v4("a"))},
			want2: []string{"203.0.113.0"},
		},
		{
			name:    "requested buggy IP in a pool avoiding them",
			req:     req("web", withIP(v4("buggy"), "198.51.101.0")),
			wantErr: `198.51.101.0 ends in .0 or .255, which pool "buggy" avoids`,
		},

		// Rule 2: an address the service holds.
		{
			name:  "held address kept: idempotent",
			setup: []Request{req("web", v4("a"), v6("a"))},
			req:   req("web", v4("a"), v6("a")),
			want: []Assignment{
				{Addr: addr("203.0.113.0"), Pool: "a", Kept: true},
				{Addr: addr("2001:db8:a::"), Pool: "a", Kept: true},
			},
		},
		{
			name:  "held address kept outside the pools when not explicit",
			setup: []Request{req("web", v4("a"))},
			req:   req("web", v4("b")),
			want:  []Assignment{{Addr: addr("203.0.113.0"), Pool: "a", Kept: true}},
		},
		{
			name:  "held address given up for the explicit pools",
			setup: []Request{req("web", v4("a"))},
			req:   req("web", explicit(v4("b"))),
			want:  []Assignment{{Addr: addr("203.0.113.8"), Pool: "b"}},
			then:  []Request{req("x", v4("a"))},
			want2: []string{"203.0.113.0"},
		},
		{
			name:    "held address kept when the explicit pools are exhausted",
			setup:   []Request{req("web", v4("a")), req("x", v4("single"))},
			req:     req("web", explicit(v4("single"))),
			wantErr: "no free IPv4 address in pools [single]",
		},
		{
			name:  "held address kept when inside the explicit pools",
			setup: []Request{req("web", v4("b"))},
			req:   req("web", explicit(v4("a", "b"))),
			want:  []Assignment{{Addr: addr("203.0.113.8"), Pool: "b", Kept: true}},
		},
		{
			name:  "of several held addresses, the one in the preferred pool is kept",
			seed:  map[string][]string{"default/web": {"203.0.113.0", "203.0.113.8"}},
			req:   req("web", v4("b", "a")),
			want:  []Assignment{{Addr: addr("203.0.113.8"), Pool: "b", Kept: true}},
			then:  []Request{req("x", v4("a"))},
			want2: []string{"203.0.113.0"},
		},
		{
			name: "held address rechecked: ports now collide",
			setup: []Request{
				dnsTCP,
				shared(req("dns-udp", v4("a")), "dns", udp(53)),
			},
			req:     shared(req("dns-udp", v4("a")), "dns", udp(53), tcp(53)),
			wantErr: "port TCP/53 collides with default/dns-tcp on 203.0.113.0",
		},
		{
			name: "held address rechecked: sharing key changed",
			setup: []Request{
				dnsTCP,
				shared(req("dns-udp", v4("a")), "dns", udp(53)),
			},
			req:     shared(req("dns-udp", v4("a")), "other", udp(53)),
			wantErr: `203.0.113.0 is held by default/dns-tcp (sharing key "dns" differs)`,
		},
		{
			name: "held address rechecked: sharing dropped",
			setup: []Request{
				dnsTCP,
				shared(req("dns-udp", v4("a")), "dns", udp(53)),
			},
			req:     req("dns-udp", v4("a")),
			wantErr: "203.0.113.0 is held by default/dns-tcp",
		},
		{
			name:  "held address rechecked: compatible port change",
			setup: []Request{dnsTCP, shared(req("dns-udp", v4("a")), "dns", udp(53))},
			req:   shared(req("dns-udp", v4("a")), "dns", udp(53), udp(5353)),
			want:  []Assignment{{Addr: addr("203.0.113.0"), Pool: "a", Kept: true}},
		},
		{
			name: "a held buggy address is kept",
			seed: map[string][]string{"default/web": {"198.51.101.0"}},
			req:  req("web", v4("buggy")),
			want: []Assignment{{Addr: addr("198.51.101.0"), Pool: "buggy", Kept: true}},
		},

		// Rule 3: sharing and the lowest free address.
		{
			name:  "join a shared address: TCP and UDP on the same port",
			setup: []Request{dnsTCP},
			req:   shared(req("dns-udp", v4("a")), "dns", udp(53)),
			want:  []Assignment{{Addr: addr("203.0.113.0"), Pool: "a"}},
			then:  []Request{req("x", v4("a"))},
			want2: []string{"203.0.113.1"},
		},
		{
			name:  "no join on a port collision",
			setup: []Request{dnsTCP},
			req:   shared(req("dns-2", v4("a")), "dns", tcp(53)),
			want:  []Assignment{{Addr: addr("203.0.113.1"), Pool: "a"}},
		},
		{
			name:  "no join under another key",
			setup: []Request{dnsTCP},
			req:   shared(req("dns-2", v4("a")), "other", udp(53)),
			want:  []Assignment{{Addr: addr("203.0.113.1"), Pool: "a"}},
		},
		{
			name:  "no join without a key",
			setup: []Request{req("x", v4("a"))},
			req:   req("web", v4("a")),
			want:  []Assignment{{Addr: addr("203.0.113.1"), Pool: "a"}},
		},
		{
			name: "join the lowest compatible shared address",
			setup: []Request{
				shared(req("http", v4("a")), "k", tcp(80)),
				req("other", v4("a")),
				shared(req("alt", withIP(v4("a"), "203.0.113.2")), "k", tcp(8080)),
			},
			req:  shared(req("http-2", v4("a")), "k", tcp(80)),
			want: []Assignment{{Addr: addr("203.0.113.2"), Pool: "a"}},
		},
		{
			name:  "a free address in a preferred pool beats joining in a later one",
			setup: []Request{shared(req("http", v4("b")), "k", tcp(80))},
			req:   shared(req("https", v4("a", "b")), "k", tcp(443)),
			want:  []Assignment{{Addr: addr("203.0.113.0"), Pool: "a"}},
		},
		{
			name:  "joining beats a free address in the same pool",
			setup: []Request{req("x", v4("single")), shared(req("http", withIP(v4("b"), "203.0.113.10")), "k", tcp(80))},
			req:   shared(req("https", v4("single", "b")), "k", tcp(443)),
			want:  []Assignment{{Addr: addr("203.0.113.10"), Pool: "b"}},
		},
		{
			name: "avoid buggy IPs",
			req:  req("web", v4("buggy"), v6("buggy")),
			want: []Assignment{
				{Addr: addr("198.51.101.1"), Pool: "buggy"},
				{Addr: addr("2001:db8:b::"), Pool: "buggy"},
			},
			then:  []Request{req("x", v4("buggy")), req("y", v4("buggy"))},
			want2: []string{"198.51.101.2", ""},
		},

		// Families.
		{
			name: "dual-stack, IPv6 first",
			req:  req("web", v6("a"), v4("a")),
			want: []Assignment{
				{Addr: addr("2001:db8:a::"), Pool: "a"},
				{Addr: addr("203.0.113.0"), Pool: "a"},
			},
		},
		{
			name: "dual-stack from different pools",
			req:  req("web", v4("b"), v6("v6")),
			want: []Assignment{
				{Addr: addr("203.0.113.8"), Pool: "b"},
				{Addr: addr("2001:db8:6::"), Pool: "v6"},
			},
		},
		{
			name:    "dual-stack fails whole when a required family fails",
			req:     req("web", v4("a"), v6("b")),
			wantErr: "no pool with IPv6 addresses among [b]",
			then:    []Request{req("x", v4("a"))},
			want2:   []string{"203.0.113.0"},
		},
		{
			name:    "dual-stack with an exhausted family",
			setup:   []Request{req("w", v6("a")), req("x", v6("a")), req("y", v6("a")), req("z", v6("a"))},
			req:     req("web", v4("a"), v6("a")),
			wantErr: "no free IPv6 address in pools [a]",
		},
		{
			name: "best-effort family skipped",
			req:  req("web", v4("a"), bestEffort(v6("b"))),
			want: []Assignment{{Addr: addr("203.0.113.0"), Pool: "a"}},
		},
		{
			name: "best-effort family with no pools skipped",
			req:  req("web", bestEffort(v6()), v4("a")),
			want: []Assignment{{Addr: addr("203.0.113.0"), Pool: "a"}},
		},
		{
			name: "best-effort family allocated",
			req:  req("web", v4("a"), bestEffort(v6("v6"))),
			want: []Assignment{
				{Addr: addr("203.0.113.0"), Pool: "a"},
				{Addr: addr("2001:db8:6::"), Pool: "v6"},
			},
		},
		{
			name:  "a family no longer requested is given up",
			setup: []Request{req("web", v4("a"), v6("a"))},
			req:   req("web", v6("a")),
			want:  []Assignment{{Addr: addr("2001:db8:a::"), Pool: "a", Kept: true}},
			then:  []Request{req("x", v4("a"))},
			want2: []string{"203.0.113.0"},
		},
		{
			name:  "no families gives up everything",
			setup: []Request{req("web", v4("a"), v6("a"))},
			req:   req("web"),
			want:  []Assignment{},
			then:  []Request{req("x", v4("a"), v6("a"))},
			want2: []string{"203.0.113.0"},
		},

		// Invalid requests.
		{
			name:    "no service",
			req:     Request{Families: []FamilyRequest{v4("a")}},
			wantErr: "service name is empty",
		},
		{
			name:    "family twice",
			req:     req("web", v4("a"), v4("b")),
			wantErr: "IPv4 is requested more than once",
		},
		{
			name:    "unknown family",
			req:     req("web", FamilyRequest{Family: 5, Required: true, Pools: []string{"a"}}),
			wantErr: "unknown address family 5",
		},
		{
			name:    "requested IP of the wrong family",
			req:     req("web", withIP(v4("a"), "2001:db8:a::1")),
			wantErr: "requested IP 2001:db8:a::1 is not an IPv4 address",
		},
		{
			name:    "requested IPv4-mapped IP",
			req:     req("web", withIP(v6("a"), "::ffff:203.0.113.1")),
			wantErr: "requested IP ::ffff:203.0.113.1 is an IPv4-mapped IPv6 address; write the IPv4 address",
		},
		{
			name:    "requested zoned IP",
			req:     req("web", withIP(v6("a"), "fe80::1%eth0")),
			wantErr: "requested IP fe80::1%eth0 has an IPv6 zone",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAllocator(t, testPools(t)...)
			for service, addrs := range tt.seed {
				for _, s := range addrs {
					if err := a.Seed(service, addr(s), Sharing{}); err != nil {
						t.Fatalf("Seed(%s, %s): %v", service, s, err)
					}
				}
			}
			for _, r := range tt.setup {
				mustAllocate(t, a, r)
			}
			for _, service := range tt.release {
				a.Release(service)
			}
			before := a.snapshot()

			got, err := a.Allocate(tt.req)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Allocate() = %v, %v; want error containing %q", got, err, tt.wantErr)
				}
				if after := a.snapshot(); after != before {
					t.Fatalf("failed Allocate changed the state:\nbefore:\n%s\nafter:\n%s", before, after)
				}
			} else {
				if err != nil {
					t.Fatalf("Allocate() error: %v", err)
				}
				if !slices.Equal(got, tt.want) {
					t.Fatalf("Allocate() = %v, want %v", got, tt.want)
				}
				held := a.Addresses(tt.req.Service)
				slices.SortFunc(got, func(x, y Assignment) int { return x.Addr.Compare(y.Addr) })
				for i := range got {
					got[i].Kept = true
				}
				if !slices.Equal(held, got) && !(len(held) == 0 && len(got) == 0) {
					t.Errorf("Addresses() = %v, want what Allocate returned: %v", held, got)
				}
			}
			if err := a.checkInvariants(); err != nil {
				t.Fatal(err)
			}

			for i, r := range tt.then {
				next, err := a.Allocate(r)
				var gotAddr string
				if err == nil && len(next) > 0 {
					gotAddr = next[0].Addr.String()
				}
				if gotAddr != tt.want2[i] {
					t.Errorf("then Allocate(%s) = %v, %v; want %q", r.Service, next, err, tt.want2[i])
				}
			}
			if err := a.checkInvariants(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestAllocateIsIdempotent(t *testing.T) {
	requests := []Request{
		req("web", v4("a", "b"), bestEffort(v6("v6"))),
		shared(req("dns-tcp", v4("a")), "dns", tcp(53)),
		shared(req("dns-udp", v4("a")), "dns", udp(53)),
		req("api", withIP(v4("b"), "203.0.113.11")),
		req("buggy", v4("buggy"), v6("buggy")),
	}
	a := newAllocator(t, testPools(t)...)
	first := make([][]Assignment, len(requests))
	for i, r := range requests {
		first[i] = mustAllocate(t, a, r)
	}
	before := a.snapshot()
	for round := range 3 {
		for i, r := range requests {
			got := mustAllocate(t, a, r)
			want := slices.Clone(first[i])
			for j := range want {
				want[j].Kept = true
			}
			if !slices.Equal(got, want) {
				t.Errorf("round %d: Allocate(%s) = %v, want %v", round, r.Service, got, want)
			}
		}
	}
	if after := a.snapshot(); after != before {
		t.Errorf("repeated requests changed the state:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestAllocateIsDeterministic(t *testing.T) {
	run := func() string {
		a := newAllocator(t, testPools(t)...)
		for _, r := range []Request{
			req("w", v4("a", "b"), v6("a")),
			shared(req("x", v4("a")), "k", tcp(80)),
			shared(req("y", v4("a")), "k", tcp(443)),
			req("z", v4("b")),
		} {
			mustAllocate(t, a, r)
		}
		a.Release("default/w")
		mustAllocate(t, a, req("v", v4("a"), v6("v6")))
		return a.snapshot()
	}
	if first, second := run(), run(); first != second {
		t.Errorf("two identical runs differ:\n%s\n%s", first, second)
	}
}
