package netlab

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
)

// The lab's address ranges; see the package documentation.
var (
	// LANv4 and LANv6 are the LAN every host is on. The IPv4 LAN is a /25 so
	// that LAN2 fits in the same documentation /24.
	LANv4 = netip.MustParsePrefix("198.51.100.0/25")
	LANv6 = netip.MustParsePrefix("2001:db8:100::/64")
	// LAN2v4 and LAN2v6 are the network behind the first router.
	LAN2v4 = netip.MustParsePrefix("198.51.100.128/25")
	LAN2v6 = netip.MustParsePrefix("2001:db8:101::/64")
	// VIPv4 and VIPv6 are reserved for load-balancer addresses (pools):
	// never assigned to a host by the lab.
	VIPv4 = netip.MustParsePrefix("203.0.113.0/24")
	VIPv6 = netip.MustParsePrefix("2001:db8:200::/64")
)

// Host numbers on the LAN (the last IPv4 octet; see the package doc).
const (
	firstRouterNum = 1
	controlNum     = 2
	routerNumBase  = 2 // routers after the first: 3…9
	nodeNumBase    = 10
	clientNum      = 100

	// MaxNodes and MaxRouters are what the address plan has room for.
	MaxNodes   = 89
	MaxRouters = 8
)

// Host names (namespace suffixes) with a fixed role.
const (
	switchName  = "sw"
	controlName = "cp"
	clientName  = "cl"
	client2Name = "c2"
)

// Iface is the name of every host's LAN interface; the first router's LAN2
// interface is Iface2.
const (
	Iface  = "eth0"
	Iface2 = "eth1"
)

// Switch-side bridges.
const (
	bridgeLAN  = "br0"
	bridgeLAN2 = "br1"
)

var (
	// idPattern matches lab ids; nsPattern matches the namespaces of any
	// lab. Both are part of what Sweep requires before it deletes anything.
	idPattern = regexp.MustCompile(`^ilb[0-9a-f]{4}$`)
	nsPattern = regexp.MustCompile(`^(ilb[0-9a-f]{4})-([a-z][a-z0-9]{0,5})$`)
	// routerName is what Options.Routers accepts; node names are reserved.
	routerName = regexp.MustCompile(`^[a-z][a-z0-9]{0,5}$`)
	nodeName   = regexp.MustCompile(`^n[0-9]+$`)
)

// lanAddrs returns host number n's addresses and MAC on the LAN.
func lanAddrs(n int) (v4, v6 netip.Addr, mac net.HardwareAddr) {
	return hostAddrs(LANv4, LANv6, n)
}

// lan2Addrs returns host number n's addresses and MAC on LAN2.
func lan2Addrs(n int) (v4, v6 netip.Addr, mac net.HardwareAddr) {
	return hostAddrs(LAN2v4, LAN2v6, n)
}

func hostAddrs(p4, p6 netip.Prefix, n int) (v4, v6 netip.Addr, mac net.HardwareAddr) {
	b := p4.Addr().As4()
	b[3] += byte(n)
	v4 = netip.AddrFrom4(b)
	// n in decimal digits, read as hex: host 11 is ::11, host 100 is ::100.
	hextet, err := strconv.ParseUint(strconv.Itoa(n), 16, 16)
	if err != nil {
		panic(fmt.Sprintf("netlab: host number %d out of plan", n))
	}
	b6 := p6.Addr().As16()
	b6[14], b6[15] = byte(hextet>>8), byte(hextet)
	v6 = netip.AddrFrom16(b6)
	// Locally administered unicast; the last three bytes spell the IPv4
	// address, so a MAC in a capture names its host.
	mac = net.HardwareAddr{0x02, 0x00, b[0], b[1], b[2], b[3]}
	return v4, v6, mac
}
