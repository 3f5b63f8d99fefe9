package migrate

import (
	"net/netip"
	"strings"
)

// span is an inclusive address range, for the overlap check across source
// resources. Addresses reach it only after config's own validation, so it
// need not explain what it refuses.
type span struct {
	first, last netip.Addr
}

// parseSpan reads "a-b", a CIDR or one address, like config does.
func parseSpan(s string) (span, bool) {
	s = strings.TrimSpace(s)
	if a, b, ok := strings.Cut(s, "-"); ok {
		first, err1 := netip.ParseAddr(strings.TrimSpace(a))
		last, err2 := netip.ParseAddr(strings.TrimSpace(b))
		if err1 != nil || err2 != nil || first.Is4() != last.Is4() || last.Less(first) {
			return span{}, false
		}
		return span{first, last}, true
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return span{}, false
		}
		p = p.Masked()
		return span{p.Addr(), lastOf(p)}, true
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return span{}, false
	}
	return span{a, a}, true
}

func (a span) overlaps(b span) bool {
	return a.first.Is4() == b.first.Is4() && a.first.Compare(b.last) <= 0 && b.first.Compare(a.last) <= 0
}

func lastOf(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// masked returns s with host bits cleared when it is a CIDR that has some:
// MetalLB, OpenELB and PureLB read such a CIDR as its whole network (Go's
// net.ParseCIDR), where ironlb asks for it to be written masked.
func masked(s string) (string, bool) {
	t := strings.TrimSpace(s)
	if strings.Contains(t, "-") || !strings.Contains(t, "/") {
		return s, false
	}
	p, err := netip.ParsePrefix(t)
	if err != nil || p.Masked() == p {
		return s, false
	}
	return p.Masked().String(), true
}
