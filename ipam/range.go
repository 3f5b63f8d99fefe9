package ipam

import (
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"strings"
)

// Range is an inclusive range of addresses of one family.
type Range struct {
	First, Last netip.Addr
}

// Reasons a value is refused. They have no subject and do not repeat the
// input: callers put the field path and the value in front of them.
var (
	errNotIPRangeOrCIDR = errors.New("is not an IP, range or CIDR")
	errMissing          = errors.New("is missing")
	errNotIP            = errors.New("is not an IP")
	errZoned            = errors.New("has an IPv6 zone; zoned addresses are not allowed")
	errMapped           = errors.New("is an IPv4-mapped IPv6 address; write the IPv4 address")
)

// ParseRange parses one of:
//
//	203.0.113.10-203.0.113.50   a range, inclusive (spaces around '-' are allowed)
//	198.51.100.0/28             a CIDR: the whole prefix, network and broadcast included
//	198.51.100.200              a single address
//
// or the IPv6 form of any of them. A CIDR must be masked, and zoned or
// IPv4-mapped IPv6 addresses are refused. Errors do not repeat s.
func ParseRange(s string) (Range, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Range{}, errors.New("is empty")
	}
	if start, end, isRange := strings.Cut(s, "-"); isRange {
		return parseStartEnd(start, end)
	}
	if strings.Contains(s, "/") {
		return parseCIDR(s)
	}
	a, err := parseAddr(s)
	if errors.Is(err, errNotIP) {
		return Range{}, errNotIPRangeOrCIDR
	}
	if err != nil {
		return Range{}, err
	}
	return Range{First: a, Last: a}, nil
}

func parseStartEnd(start, end string) (Range, error) {
	first, err := parseAddr(strings.TrimSpace(start))
	if err != nil {
		return Range{}, fmt.Errorf("range start %w", err)
	}
	last, err := parseAddr(strings.TrimSpace(end))
	if err != nil {
		return Range{}, fmt.Errorf("range end %w", err)
	}
	r := Range{First: first, Last: last}
	if err := r.validate(); err != nil {
		return Range{}, err
	}
	return r, nil
}

func parseCIDR(s string) (Range, error) {
	addr, _, _ := strings.Cut(s, "/")
	// Check the address on its own first: netip's errors repeat the input,
	// and a zoned or mapped address deserves its own explanation.
	if _, err := parseAddr(addr); err != nil {
		if errors.Is(err, errNotIP) || errors.Is(err, errMissing) {
			return Range{}, errNotIPRangeOrCIDR
		}
		return Range{}, err
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return Range{}, errors.New("has an invalid prefix length")
	}
	if masked := p.Masked(); masked != p {
		return Range{}, fmt.Errorf("host bits are set; did you mean %s?", masked)
	}
	last := lastAddr(p)
	if last.Is4In6() {
		// Such as ::/80: refused like a written IPv4-mapped address, which
		// its last address is.
		return Range{}, errors.New("ends in the IPv4-mapped IPv6 addresses (::ffff:0:0/96), which are not allowed")
	}
	return Range{First: p.Addr(), Last: last}, nil
}

func parseAddr(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, errMissing
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, errNotIP
	}
	if err := checkPlain(a); err != nil {
		return netip.Addr{}, err
	}
	return a, nil
}

// checkPlain refuses the address forms a load balancer cannot hand out: a
// zone scopes an address to one host's link, and an IPv4-mapped address is
// an IPv4 address in disguise that would escape IPv4 pools and overlap checks.
func checkPlain(a netip.Addr) error {
	switch {
	case a.Zone() != "":
		return errZoned
	case a.Is4In6():
		return errMapped
	}
	return nil
}

// lastAddr returns the highest address of the masked prefix p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// validate checks what ParseRange guarantees, for ranges built by hand.
func (r Range) validate() error {
	switch {
	case !r.First.IsValid():
		return fmt.Errorf("range start %w", errMissing)
	case !r.Last.IsValid():
		return fmt.Errorf("range end %w", errMissing)
	}
	if err := checkPlain(r.First); err != nil {
		return fmt.Errorf("range start %w", err)
	}
	if err := checkPlain(r.Last); err != nil {
		return fmt.Errorf("range end %w", err)
	}
	if FamilyOf(r.First) != FamilyOf(r.Last) {
		return errors.New("range start and end are of different families")
	}
	if r.Last.Less(r.First) {
		return fmt.Errorf("range is reversed: %s is after %s", r.First, r.Last)
	}
	return nil
}

// Family returns the family of the range's addresses.
func (r Range) Family() Family {
	return FamilyOf(r.First)
}

// Contains reports whether a lies within r. Zoned addresses are never
// contained: ranges hold unscoped addresses only.
func (r Range) Contains(a netip.Addr) bool {
	return a.IsValid() && a.Zone() == "" && FamilyOf(a) == r.Family() &&
		r.First.Compare(a) <= 0 && a.Compare(r.Last) <= 0
}

// Overlaps reports whether r and o have an address in common.
func (r Range) Overlaps(o Range) bool {
	return r.First.IsValid() && r.Family() == o.Family() &&
		r.First.Compare(o.Last) <= 0 && o.First.Compare(r.Last) <= 0
}

// Size returns the number of addresses in r; zero for an invalid range. It is
// a big.Int because an IPv6 range can hold up to 2^128 addresses.
func (r Range) Size() *big.Int {
	if r.validate() != nil {
		return new(big.Int)
	}
	first, last := r.First.As16(), r.Last.As16()
	n := new(big.Int).SetBytes(last[:])
	n.Sub(n, new(big.Int).SetBytes(first[:]))
	return n.Add(n, big.NewInt(1))
}

// String returns "First-Last", or just "First" for a single address, in a
// form ParseRange accepts.
func (r Range) String() string {
	if r.First == r.Last {
		return r.First.String()
	}
	return r.First.String() + "-" + r.Last.String()
}
