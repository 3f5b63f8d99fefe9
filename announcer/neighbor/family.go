package neighbor

import "net/netip"

// Family is an address family, as used in logs and metric labels.
type Family string

// The address families.
const (
	IPv4 Family = "ipv4"
	IPv6 Family = "ipv6"
)

// FamilyOf returns the family of a. IPv4-mapped IPv6 addresses count as
// IPv6: callers unmap addresses first.
func FamilyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}
