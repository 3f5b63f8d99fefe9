package ipam

import (
	"math/big"
	"net/netip"
	"strings"
	"testing"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		in        string
		wantFirst string
		wantLast  string
		wantErr   string
	}{
		{in: "203.0.113.10-203.0.113.50", wantFirst: "203.0.113.10", wantLast: "203.0.113.50"},
		{in: "203.0.113.10 - 203.0.113.50", wantFirst: "203.0.113.10", wantLast: "203.0.113.50"},
		{in: " 203.0.113.10\t-203.0.113.10 ", wantFirst: "203.0.113.10", wantLast: "203.0.113.10"},
		{in: "198.51.100.0/28", wantFirst: "198.51.100.0", wantLast: "198.51.100.15"},
		{in: "198.51.100.7/32", wantFirst: "198.51.100.7", wantLast: "198.51.100.7"},
		{in: "0.0.0.0/0", wantFirst: "0.0.0.0", wantLast: "255.255.255.255"},
		{in: "198.51.100.200", wantFirst: "198.51.100.200", wantLast: "198.51.100.200"},
		{in: "2001:db8::10-2001:db8::ff", wantFirst: "2001:db8::10", wantLast: "2001:db8::ff"},
		{in: "2001:db8::/64", wantFirst: "2001:db8::", wantLast: "2001:db8::ffff:ffff:ffff:ffff"},
		{in: "2001:db8::/125", wantFirst: "2001:db8::", wantLast: "2001:db8::7"},
		{in: "::/0", wantFirst: "::", wantLast: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
		{in: "2001:db8::1", wantFirst: "2001:db8::1", wantLast: "2001:db8::1"},

		{in: "", wantErr: "is empty"},
		{in: "   ", wantErr: "is empty"},
		{in: "pool-a", wantErr: "range start is not an IP"},
		{in: "banana", wantErr: "is not an IP, range or CIDR"},
		{in: "203.0.113", wantErr: "is not an IP, range or CIDR"},
		{in: "203.0.113.010", wantErr: "is not an IP, range or CIDR"},
		{in: "203.0.113.1-", wantErr: "range end is missing"},
		{in: "-203.0.113.1", wantErr: "range start is missing"},
		{in: "203.0.113.1-203.0.113.2-203.0.113.3", wantErr: "range end is not an IP"},
		{in: "203.0.113.0/24-203.0.114.0/24", wantErr: "range start is not an IP"},
		{in: "203.0.113.1-2001:db8::1", wantErr: "range start and end are of different families"},
		{in: "203.0.113.50-203.0.113.10", wantErr: "range is reversed: 203.0.113.50 is after 203.0.113.10"},
		{in: "2001:db8::2-2001:db8::1", wantErr: "range is reversed: 2001:db8::2 is after 2001:db8::1"},
		{in: "198.51.100.5/28", wantErr: "host bits are set; did you mean 198.51.100.0/28?"},
		{in: "2001:db8::1/64", wantErr: "host bits are set; did you mean 2001:db8::/64?"},
		{in: "198.51.100.0/33", wantErr: "has an invalid prefix length"},
		{in: "198.51.100.0/", wantErr: "has an invalid prefix length"},
		{in: "198.51.100.0/024", wantErr: "has an invalid prefix length"},
		{in: "/24", wantErr: "is not an IP, range or CIDR"},
		{in: "fe80::1%eth0", wantErr: "has an IPv6 zone; zoned addresses are not allowed"},
		{in: "fe80::1%eth0/64", wantErr: "has an IPv6 zone"},
		{in: "fe80::1%eth0-fe80::2", wantErr: "range start has an IPv6 zone"},
		{in: "::ffff:203.0.113.1", wantErr: "is an IPv4-mapped IPv6 address; write the IPv4 address"},
		{in: "::ffff:203.0.113.0/120", wantErr: "is an IPv4-mapped IPv6 address; write the IPv4 address"},
		{in: "203.0.113.1-::ffff:203.0.113.9", wantErr: "range end is an IPv4-mapped IPv6 address"},
		{in: "::/80", wantErr: "ends in the IPv4-mapped IPv6 addresses (::ffff:0:0/96), which are not allowed"},
		{in: "::-::ffff:255.255.255.255", wantErr: "range end is an IPv4-mapped IPv6 address"},
		{in: "::/64", wantFirst: "::", wantLast: "::ffff:ffff:ffff:ffff"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRange(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseRange(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				if trimmed := strings.TrimSpace(tt.in); len(trimmed) > 3 && strings.Contains(err.Error(), trimmed) {
					t.Errorf("error %q repeats the input", err)
				}
				return
			}
			want := Range{First: netip.MustParseAddr(tt.wantFirst), Last: netip.MustParseAddr(tt.wantLast)}
			if err != nil || got != want {
				t.Fatalf("ParseRange(%q) = %v, %v; want %v", tt.in, got, err, want)
			}
		})
	}
}

func TestRangeMethods(t *testing.T) {
	two128 := new(big.Int).Lsh(big.NewInt(1), 128)
	tests := []struct {
		in         string
		wantFamily Family
		wantSize   *big.Int
		wantString string
	}{
		{"203.0.113.7", IPv4, big.NewInt(1), "203.0.113.7"},
		{"203.0.113.0/24", IPv4, big.NewInt(256), "203.0.113.0-203.0.113.255"},
		{"203.0.113.250-203.0.114.5", IPv4, big.NewInt(12), "203.0.113.250-203.0.114.5"},
		{"0.0.0.0/0", IPv4, big.NewInt(1 << 32), "0.0.0.0-255.255.255.255"},
		{"2001:db8::/64", IPv6, new(big.Int).Lsh(big.NewInt(1), 64), "2001:db8::-2001:db8::ffff:ffff:ffff:ffff"},
		{"::/0", IPv6, two128, "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r := mustRanges(t, tt.in)[0]
			if got := r.Family(); got != tt.wantFamily {
				t.Errorf("Family() = %v, want %v", got, tt.wantFamily)
			}
			if got := r.Size(); got.Cmp(tt.wantSize) != 0 {
				t.Errorf("Size() = %v, want %v", got, tt.wantSize)
			}
			if got := r.String(); got != tt.wantString {
				t.Errorf("String() = %q, want %q", got, tt.wantString)
			}
		})
	}
	if got := (Range{}).Size(); got.Sign() != 0 {
		t.Errorf("zero Range Size() = %v, want 0", got)
	}
	reversed := Range{First: addr("203.0.113.9"), Last: addr("203.0.113.1")}
	if got := reversed.Size(); got.Sign() != 0 {
		t.Errorf("reversed Range Size() = %v, want 0", got)
	}
}

func TestRangeContains(t *testing.T) {
	r := mustRanges(t, "203.0.113.10-203.0.113.20")[0]
	tests := []struct {
		addr netip.Addr
		want bool
	}{
		{addr("203.0.113.9"), false},
		{addr("203.0.113.10"), true},
		{addr("203.0.113.15"), true},
		{addr("203.0.113.20"), true},
		{addr("203.0.113.21"), false},
		{addr("::ffff:203.0.113.15"), false},
		{addr("2001:db8::1"), false},
		{netip.Addr{}, false},
	}
	for _, tt := range tests {
		if got := r.Contains(tt.addr); got != tt.want {
			t.Errorf("Contains(%v) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	v6 := mustRanges(t, "fe80::/64")[0]
	if v6.Contains(addr("fe80::1%eth0")) {
		t.Error("a range contains a zoned address")
	}
	if (Range{}).Contains(netip.Addr{}) {
		t.Error("the zero Range contains the zero Addr")
	}
}

func TestRangeOverlaps(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"203.0.113.0-203.0.113.10", "203.0.113.10-203.0.113.20", true},
		{"203.0.113.0-203.0.113.10", "203.0.113.11-203.0.113.20", false},
		{"203.0.113.0/24", "203.0.113.77", true},
		{"203.0.113.77", "203.0.113.0/24", true},
		{"203.0.113.0/24", "2001:db8::/32", false},
		{"2001:db8::/64", "2001:db8::ffff:0:0:0/80", true},
		{"::/0", "2001:db8::1", true},
		{"0.0.0.0/0", "::/0", false},
	}
	for _, tt := range tests {
		a, b := mustRanges(t, tt.a)[0], mustRanges(t, tt.b)[0]
		if got := a.Overlaps(b); got != tt.want {
			t.Errorf("%s overlaps %s = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestFamily(t *testing.T) {
	tests := []struct {
		addr       netip.Addr
		want       Family
		wantString string
	}{
		{addr("203.0.113.1"), IPv4, "IPv4"},
		{addr("2001:db8::1"), IPv6, "IPv6"},
		{addr("::ffff:203.0.113.1"), IPv6, "IPv6"},
		{netip.Addr{}, 0, "Family(0)"},
	}
	for _, tt := range tests {
		got := FamilyOf(tt.addr)
		if got != tt.want || got.String() != tt.wantString {
			t.Errorf("FamilyOf(%v) = %v (%q), want %v (%q)", tt.addr, int(got), got, int(tt.want), tt.wantString)
		}
	}
}

func FuzzParseRange(f *testing.F) {
	for _, seed := range []string{
		"203.0.113.10-203.0.113.50", "203.0.113.10 - 203.0.113.50", "198.51.100.0/28", "198.51.100.5/28",
		"198.51.100.200", "2001:db8::/64", "2001:db8::1-2001:db8::ff", "::/0", "0.0.0.0/0",
		"fe80::1%eth0", "::ffff:1.2.3.4", "::/80", "::ffff:0:0/95", "1.2.3.4-::1", "", "-", "/", "1.2.3.4/", "::-::",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRange(s)
		if err != nil {
			return
		}
		if r.Last.Less(r.First) {
			t.Fatalf("ParseRange(%q) = %v: reversed", s, r)
		}
		if FamilyOf(r.First) != FamilyOf(r.Last) || !r.Family().valid() {
			t.Fatalf("ParseRange(%q) = %v: families %v and %v", s, r, FamilyOf(r.First), FamilyOf(r.Last))
		}
		if r.Size().Sign() <= 0 {
			t.Fatalf("ParseRange(%q) = %v: size %v", s, r, r.Size())
		}
		again, err := ParseRange(r.String())
		if err != nil || again != r {
			t.Fatalf("ParseRange(%q) = %v, but its String %q parses to %v, %v", s, r, r.String(), again, err)
		}
	})
}
