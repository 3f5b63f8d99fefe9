package migrate

import (
	"net/netip"
	"strings"
)

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
