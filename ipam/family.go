package ipam

import (
	"fmt"
	"net/netip"
)

// Family is an IP address family.
type Family int

// The address families, numbered as in "IPv4" and "IPv6".
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// String returns "IPv4" or "IPv6".
func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return fmt.Sprintf("Family(%d)", int(f))
}

// FamilyOf returns the family of a. As in net/netip, an IPv4-mapped IPv6
// address is IPv6. The zero Addr has no family and yields Family(0).
func FamilyOf(a netip.Addr) Family {
	switch {
	case a.Is4():
		return IPv4
	case a.Is6():
		return IPv6
	}
	return 0
}

func (f Family) valid() bool {
	return f == IPv4 || f == IPv6
}

// lowest returns the lowest address of the family, where a walk over sorted
// addresses of that family starts.
func (f Family) lowest() netip.Addr {
	if f == IPv4 {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}
