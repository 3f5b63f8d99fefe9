package layer2

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv6"

	"github.com/ironlb/ironlb/announcer/neighbor"
)

// Offsets into an untagged Ethernet frame carrying IPv6.
const (
	ipv6HeaderLen  = 40
	ipv6NextHeader = ethHeaderLen + 6
	ipv6HopLimit   = ethHeaderLen + 7
	icmpv6Offset   = ethHeaderLen + ipv6HeaderLen
	protoICMPv6    = 58
	// nsMinLen is an ICMPv6 header plus the reserved field and target.
	nsMinLen = 24
)

// ndpFilter admits ICMPv6 neighbor solicitations with hop limit 255 (RFC
// 4861 7.1.1: anything else was forwarded, so is not from the link) received
// by this host, multicast or unicast, whatever their IPv6 destination.
func ndpFilter() ([]bpf.RawInstruction, error) {
	return bpf.Assemble([]bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: pktTypeMulticast, SkipTrue: 7},
		bpf.LoadAbsolute{Off: ipv6NextHeader, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: protoICMPv6, SkipTrue: 5},
		bpf.LoadAbsolute{Off: ipv6HopLimit, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: ndp.HopLimit, SkipTrue: 3},
		bpf.LoadAbsolute{Off: icmpv6Offset, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(ipv6.ICMPTypeNeighborSolicitation), SkipTrue: 1},
		bpf.RetConstant{Val: acceptFrame},
		bpf.RetConstant{Val: 0},
	})
}

// solicitation is a validated neighbor solicitation.
type solicitation struct {
	// ethSrc is the Ethernet source of the frame.
	ethSrc net.HardwareAddr
	// src and dst are the IPv6 source and destination.
	src, dst netip.Addr
	// target is the address asked for.
	target netip.Addr
	// sourceLLA is the source link-layer address option, nil if absent.
	sourceLLA net.HardwareAddr
}

// isDAD reports whether s is a duplicate address detection probe.
func (s *solicitation) isDAD() bool { return s.src.IsUnspecified() }

// parseSolicitation validates frame b as a neighbor solicitation following
// RFC 4861 7.1.1.
func parseSolicitation(b []byte) (*solicitation, bool) {
	if len(b) < icmpv6Offset+nsMinLen ||
		ethernet.EtherType(binary.BigEndian.Uint16(b[12:14])) != ethernet.EtherTypeIPv6 {
		return nil, false
	}
	ip := b[ethHeaderLen:]
	if ip[0]>>4 != 6 || ip[6] != protoICMPv6 || ip[7] != ndp.HopLimit {
		return nil, false
	}
	plen := int(binary.BigEndian.Uint16(ip[4:6]))
	if plen < nsMinLen || len(ip) < ipv6HeaderLen+plen {
		return nil, false
	}
	msg := ip[ipv6HeaderLen : ipv6HeaderLen+plen]
	src := netip.AddrFrom16([16]byte(ip[8:24]))
	dst := netip.AddrFrom16([16]byte(ip[24:40]))
	if msg[0] != byte(ipv6.ICMPTypeNeighborSolicitation) || msg[1] != 0 || !checksumOK(src, dst, msg) {
		return nil, false
	}
	m, err := ndp.ParseMessage(msg)
	if err != nil {
		return nil, false
	}
	ns, ok := m.(*ndp.NeighborSolicitation)
	if !ok || ns.TargetAddress.IsMulticast() || src.IsMulticast() {
		return nil, false
	}
	s := &solicitation{
		ethSrc: net.HardwareAddr(b[6:12]),
		src:    src,
		dst:    dst,
		target: ns.TargetAddress,
	}
	for _, o := range ns.Options {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Source {
			s.sourceLLA = lla.Addr
		}
	}
	if s.isDAD() {
		snm, err := ndp.SolicitedNodeMulticast(s.target)
		if err != nil || dst != snm || s.sourceLLA != nil {
			return nil, false
		}
	}
	return s, true
}

// answerNS returns the advertisement answering s with our MAC.
func answerNS(s *solicitation, mac net.HardwareAddr) ([]byte, error) {
	if s.isDAD() {
		// The prober has no address yet: tell everyone (RFC 4861 7.2.4).
		return neighbor.Advertisement(mac, s.target, neighbor.AllNodesMAC, neighbor.AllNodes, false)
	}
	dstMAC := s.sourceLLA
	if dstMAC == nil {
		// Unicast (NUD) solicitations may omit the option.
		dstMAC = s.ethSrc
	}
	if !isUnicastMAC(dstMAC) {
		return nil, fmt.Errorf("no unicast link-layer address to answer %s", s.src)
	}
	return neighbor.Advertisement(mac, s.target, dstMAC, s.src, true)
}

// checksumOK verifies the ICMPv6 checksum of msg (RFC 4443 2.3). Packet
// sockets see frames before the kernel's ICMPv6 validation, so we do it.
func checksumOK(src, dst netip.Addr, msg []byte) bool {
	return icmpv6Sum(src, dst, msg) == 0xffff
}

// icmpv6Sum is the folded one's complement sum of the IPv6 pseudo-header and
// msg, including msg's checksum field.
func icmpv6Sum(src, dst netip.Addr, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for ; len(b) >= 2; b = b[2:] {
			sum += uint32(b[0])<<8 | uint32(b[1])
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	sum += uint32(len(msg)) + protoICMPv6
	add(msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}
