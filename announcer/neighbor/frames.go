package neighbor

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
)

// IPv6 header fields for building a neighbor advertisement by hand: ndp
// marshals only the ICMPv6 message.
const (
	ipv6HeaderLen = 40
	protoICMPv6   = 58
)

var (
	// AllNodes is the IPv6 all-nodes multicast group, where unsolicited
	// advertisements go.
	AllNodes = netip.MustParseAddr("ff02::1")
	// AllNodesMAC is the Ethernet multicast address of AllNodes (RFC 2464 7).
	AllNodesMAC = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
)

// GratuitousFrames returns the frames of one gratuitous round announcing that
// addr lives at mac: for IPv4 an ARP announcement and a gratuitous ARP reply,
// both broadcast; for IPv6 an unsolicited neighbor advertisement to all
// nodes. See the package documentation for their exact form.
func GratuitousFrames(mac net.HardwareAddr, addr netip.Addr) ([][]byte, error) {
	if addr.Is4() {
		zero := make(net.HardwareAddr, 6)
		announcement, err := ARPFrame(arp.OperationRequest, mac, addr, zero, addr, ethernet.Broadcast)
		if err != nil {
			return nil, err
		}
		// Target MAC = sender MAC: what Linux requires to treat a reply as
		// gratuitous.
		reply, err := ARPFrame(arp.OperationReply, mac, addr, mac, addr, ethernet.Broadcast)
		if err != nil {
			return nil, err
		}
		return [][]byte{announcement, reply}, nil
	}
	na, err := Advertisement(mac, addr, AllNodesMAC, AllNodes, false)
	if err != nil {
		return nil, err
	}
	return [][]byte{na}, nil
}

// ARPFrame returns an Ethernet frame from mac to dst carrying an ARP packet
// of operation op sent by (mac, ip) to (targetMAC, targetIP).
func ARPFrame(op arp.Operation, mac net.HardwareAddr, ip netip.Addr, targetMAC net.HardwareAddr, targetIP netip.Addr, dst net.HardwareAddr) ([]byte, error) {
	p, err := arp.NewPacket(op, mac, ip, targetMAC, targetIP)
	if err != nil {
		return nil, fmt.Errorf("building ARP %s for %s: %w", op, ip, err)
	}
	payload, err := p.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return (&ethernet.Frame{
		Destination: dst,
		Source:      mac,
		EtherType:   ethernet.EtherTypeARP,
		Payload:     payload,
	}).MarshalBinary()
}

// Advertisement returns an Ethernet frame from mac to (dstMAC, dst) carrying
// a neighbor advertisement that target lives at mac, with Override set and
// Solicited as given. It is sourced from target itself, as the kernel does
// for addresses it owns: receivers place no requirement on the source, and
// so no link-local address (which may still be tentative) is needed.
func Advertisement(mac net.HardwareAddr, target netip.Addr, dstMAC net.HardwareAddr, dst netip.Addr, solicited bool) ([]byte, error) {
	na := &ndp.NeighborAdvertisement{
		Solicited:     solicited,
		Override:      true,
		TargetAddress: target,
		Options: []ndp.Option{
			&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac},
		},
	}
	msg, err := ndp.MarshalMessageChecksum(na, target, dst)
	if err != nil {
		return nil, fmt.Errorf("building neighbor advertisement for %s: %w", target, err)
	}
	packet := make([]byte, ipv6HeaderLen+len(msg))
	packet[0] = 6 << 4
	binary.BigEndian.PutUint16(packet[4:6], uint16(len(msg)))
	packet[6] = protoICMPv6
	packet[7] = ndp.HopLimit // receivers drop NDP with any other hop limit
	src16, dst16 := target.As16(), dst.As16()
	copy(packet[8:24], src16[:])
	copy(packet[24:40], dst16[:])
	copy(packet[ipv6HeaderLen:], msg)
	return (&ethernet.Frame{
		Destination: dstMAC,
		Source:      mac,
		EtherType:   ethernet.EtherTypeIPv6,
		Payload:     packet,
	}).MarshalBinary()
}
