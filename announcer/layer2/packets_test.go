package layer2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"

	"github.com/ironlb/ironlb/announcer/neighbor"
)

var (
	ourMAC   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	theirMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0b}
	vip4     = netip.MustParseAddr("198.51.100.10")
	their4   = netip.MustParseAddr("198.51.100.2")
	vip6     = netip.MustParseAddr("2001:db8:1::10")
	their6   = netip.MustParseAddr("2001:db8:1::2")
)

func ownsOnly(addrs ...netip.Addr) func(netip.Addr) bool {
	return func(a netip.Addr) bool { return slices.Contains(addrs, a) }
}

func mustARPFrame(t *testing.T, op arp.Operation, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr, dst net.HardwareAddr) []byte {
	t.Helper()
	b, err := neighbor.ARPFrame(op, sha, spa, tha, tpa, dst)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeARP parses an Ethernet frame carrying ARP.
func decodeARP(t *testing.T, b []byte) (*ethernet.Frame, *arp.Packet) {
	t.Helper()
	var f ethernet.Frame
	if err := f.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if f.EtherType != ethernet.EtherTypeARP {
		t.Fatalf("EtherType = %v, want ARP", f.EtherType)
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		t.Fatal(err)
	}
	return &f, &p
}

func TestAnswerARP(t *testing.T) {
	zero := make(net.HardwareAddr, 6)
	unspecified := netip.IPv4Unspecified()
	tests := []struct {
		name      string
		frame     []byte
		wantReply bool
		wantTPA   netip.Addr
		conflict  bool
	}{{
		name:      "request for owned address",
		frame:     mustARPFrame(t, arp.OperationRequest, theirMAC, their4, zero, vip4, ethernet.Broadcast),
		wantReply: true,
		wantTPA:   their4,
	}, {
		name:      "RFC 5227 probe is answered, defending the address",
		frame:     mustARPFrame(t, arp.OperationRequest, theirMAC, unspecified, zero, vip4, ethernet.Broadcast),
		wantReply: true,
		wantTPA:   unspecified,
	}, {
		name:  "request for another address",
		frame: mustARPFrame(t, arp.OperationRequest, theirMAC, their4, zero, netip.MustParseAddr("198.51.100.11"), ethernet.Broadcast),
	}, {
		name:  "reply is not a question",
		frame: mustARPFrame(t, arp.OperationReply, theirMAC, their4, ourMAC, vip4, ourMAC),
	}, {
		name:  "our own request",
		frame: mustARPFrame(t, arp.OperationRequest, ourMAC, their4, zero, vip4, ethernet.Broadcast),
	}, {
		name:     "another host announcing our address",
		frame:    mustARPFrame(t, arp.OperationRequest, theirMAC, vip4, zero, vip4, ethernet.Broadcast),
		conflict: true,
	}, {
		name:  "group sender address",
		frame: mustARPFrame(t, arp.OperationRequest, ethernet.Broadcast, their4, zero, vip4, ethernet.Broadcast),
	}, {
		name:  "truncated",
		frame: mustARPFrame(t, arp.OperationRequest, theirMAC, their4, zero, vip4, ethernet.Broadcast)[:30],
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := answerARP(tt.frame, ourMAC, ownsOnly(vip4))
			if err != nil {
				t.Fatal(err)
			}
			if (v.conflict != nil) != tt.conflict {
				t.Errorf("conflict = %v, want %v", v.conflict, tt.conflict)
			}
			if !tt.wantReply {
				if v.reply != nil {
					t.Fatalf("got a reply, want none")
				}
				return
			}
			if v.reply == nil {
				t.Fatal("got no reply")
			}
			f, p := decodeARP(t, v.reply)
			if !bytes.Equal(f.Destination, theirMAC) || !bytes.Equal(f.Source, ourMAC) {
				t.Errorf("Ethernet %v -> %v, want %v -> %v", f.Source, f.Destination, ourMAC, theirMAC)
			}
			if p.Operation != arp.OperationReply {
				t.Errorf("operation = %v, want reply", p.Operation)
			}
			if !bytes.Equal(p.SenderHardwareAddr, ourMAC) || p.SenderIP != vip4 {
				t.Errorf("sender = %v %v, want %v %v", p.SenderHardwareAddr, p.SenderIP, ourMAC, vip4)
			}
			if !bytes.Equal(p.TargetHardwareAddr, theirMAC) || p.TargetIP != tt.wantTPA {
				t.Errorf("target = %v %v, want %v %v", p.TargetHardwareAddr, p.TargetIP, theirMAC, tt.wantTPA)
			}
		})
	}
}

// nsFrame builds a neighbor solicitation frame as a neighbour would send it.
type nsFrame struct {
	ethSrc, ethDst net.HardwareAddr
	src, dst       netip.Addr
	target         netip.Addr
	sourceLLA      net.HardwareAddr
	hopLimit       byte
	corrupt        bool
}

func (n nsFrame) build(t *testing.T) []byte {
	t.Helper()
	ns := &ndp.NeighborSolicitation{TargetAddress: n.target}
	if n.sourceLLA != nil {
		ns.Options = []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: n.sourceLLA}}
	}
	msg, err := ndp.MarshalMessageChecksum(ns, n.src, n.dst)
	if err != nil {
		t.Fatal(err)
	}
	if n.corrupt {
		msg[len(msg)-1] ^= 0xff
	}
	hop := n.hopLimit
	if hop == 0 {
		hop = 255
	}
	ip := make([]byte, ipv6HeaderLen, ipv6HeaderLen+len(msg))
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:6], uint16(len(msg)))
	ip[6], ip[7] = protoICMPv6, hop
	s, d := n.src.As16(), n.dst.As16()
	copy(ip[8:], s[:])
	copy(ip[24:], d[:])
	b, err := (&ethernet.Frame{Destination: n.ethDst, Source: n.ethSrc, EtherType: ethernet.EtherTypeIPv6, Payload: append(ip, msg...)}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func snm(t *testing.T, a netip.Addr) netip.Addr {
	t.Helper()
	g, err := ndp.SolicitedNodeMulticast(a)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// decodeNA parses and validates a frame carrying a neighbor advertisement.
func decodeNA(t *testing.T, b []byte) (eth *ethernet.Frame, src, dst netip.Addr, na *ndp.NeighborAdvertisement) {
	t.Helper()
	eth = new(ethernet.Frame)
	if err := eth.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	ip := eth.Payload
	if eth.EtherType != ethernet.EtherTypeIPv6 || ip[0]>>4 != 6 || ip[6] != protoICMPv6 || ip[7] != 255 {
		t.Fatalf("not an ICMPv6 packet with hop limit 255: %x", b)
	}
	plen := int(binary.BigEndian.Uint16(ip[4:6]))
	msg := ip[ipv6HeaderLen : ipv6HeaderLen+plen]
	src, dst = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
	if !checksumOK(src, dst, msg) {
		t.Errorf("bad ICMPv6 checksum")
	}
	m, err := ndp.ParseMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	na, ok := m.(*ndp.NeighborAdvertisement)
	if !ok {
		t.Fatalf("got %T, want a neighbor advertisement", m)
	}
	return eth, src, dst, na
}

func targetLLA(na *ndp.NeighborAdvertisement) net.HardwareAddr {
	for _, o := range na.Options {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target {
			return lla.Addr
		}
	}
	return nil
}

func TestParseAndAnswerSolicitation(t *testing.T) {
	llaOther := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0c}
	resolve := nsFrame{ethSrc: theirMAC, ethDst: net.HardwareAddr{0x33, 0x33, 0xff, 0, 0, 0x10}, src: their6, dst: snm(t, vip6), target: vip6, sourceLLA: llaOther}
	nud := nsFrame{ethSrc: theirMAC, ethDst: ourMAC, src: their6, dst: vip6, target: vip6}
	dad := nsFrame{ethSrc: theirMAC, ethDst: net.HardwareAddr{0x33, 0x33, 0xff, 0, 0, 0x10}, src: netip.IPv6Unspecified(), dst: snm(t, vip6), target: vip6}

	tests := []struct {
		name       string
		frame      nsFrame
		invalid    bool
		wantEthDst net.HardwareAddr
		wantDst    netip.Addr
		solicited  bool
	}{
		{name: "multicast resolution answers to the source link-layer option", frame: resolve, wantEthDst: llaOther, wantDst: their6, solicited: true},
		{name: "unicast NUD probe without option answers to the Ethernet source", frame: nud, wantEthDst: theirMAC, wantDst: their6, solicited: true},
		{name: "DAD probe answers to all nodes", frame: dad, wantEthDst: neighbor.AllNodesMAC, wantDst: neighbor.AllNodes},
		{name: "hop limit below 255", frame: func() nsFrame { f := resolve; f.hopLimit = 254; return f }(), invalid: true},
		{name: "bad checksum", frame: func() nsFrame { f := resolve; f.corrupt = true; return f }(), invalid: true},
		{name: "DAD with a source link-layer option", frame: func() nsFrame { f := dad; f.sourceLLA = theirMAC; return f }(), invalid: true},
		{name: "DAD not to the solicited-node group", frame: func() nsFrame { f := dad; f.dst = neighbor.AllNodes; return f }(), invalid: true},
		{name: "multicast target", frame: func() nsFrame { f := resolve; f.target = neighbor.AllNodes; return f }(), invalid: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ok := parseSolicitation(tt.frame.build(t))
			if ok == tt.invalid {
				t.Fatalf("parse ok = %v, want %v", ok, !tt.invalid)
			}
			if tt.invalid {
				return
			}
			if s.target != vip6 {
				t.Fatalf("target = %v, want %v", s.target, vip6)
			}
			reply, err := answerNS(s, ourMAC)
			if err != nil {
				t.Fatal(err)
			}
			eth, src, dst, na := decodeNA(t, reply)
			if !bytes.Equal(eth.Destination, tt.wantEthDst) || !bytes.Equal(eth.Source, ourMAC) {
				t.Errorf("Ethernet %v -> %v, want %v -> %v", eth.Source, eth.Destination, ourMAC, tt.wantEthDst)
			}
			if src != vip6 || dst != tt.wantDst {
				t.Errorf("IPv6 %v -> %v, want %v -> %v", src, dst, vip6, tt.wantDst)
			}
			if na.TargetAddress != vip6 || na.Solicited != tt.solicited || !na.Override || na.Router {
				t.Errorf("advertisement %+v, want target %v, solicited %v, override", na, vip6, tt.solicited)
			}
			if got := targetLLA(na); !bytes.Equal(got, ourMAC) {
				t.Errorf("target link-layer address = %v, want %v", got, ourMAC)
			}
		})
	}

	t.Run("truncated", func(t *testing.T) {
		b := resolve.build(t)
		for _, n := range []int{0, 14, icmpv6Offset, len(b) - 1} {
			if _, ok := parseSolicitation(b[:n]); ok {
				t.Errorf("parsed a frame truncated to %d bytes", n)
			}
		}
	})
}

func TestNormalizeWant(t *testing.T) {
	mapped := netip.AddrFrom16(vip4.As16())
	got, errs := normalizeWant(map[netip.Addr]string{
		mapped:                              "eth0",
		vip6:                                "eth1",
		netip.MustParseAddr("fe80::1"):      "eth0",
		netip.MustParseAddr("224.0.0.1"):    "eth0",
		netip.IPv4Unspecified():             "eth0",
		netip.MustParseAddr("198.51.100.9"): "",
		{}:                                  "eth0",
	})
	want := map[netip.Addr]string{vip4: "eth0", vip6: "eth1"}
	if !mapsEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if len(errs) != 5 {
		t.Errorf("got %d errors, want 5: %v", len(errs), errs)
	}
}

func mapsEqual(a, b map[netip.Addr]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestNew(t *testing.T) {
	a := New(Options{})
	if want := neighbor.DefaultSchedule(); !slices.Equal(a.opts.GratuitousSchedule, want) {
		t.Errorf("default schedule = %v, want %v", a.opts.GratuitousSchedule, want)
	}
	a = New(Options{GratuitousSchedule: []time.Duration{time.Second, -time.Second, 0}})
	if want := []time.Duration{0, 0, time.Second}; !slices.Equal(a.opts.GratuitousSchedule, want) {
		t.Errorf("schedule = %v, want %v", a.opts.GratuitousSchedule, want)
	}
	a = New(Options{GratuitousSchedule: []time.Duration{}})
	if len(a.opts.GratuitousSchedule) != 0 {
		t.Errorf("schedule = %v, want none", a.opts.GratuitousSchedule)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.SetAnnounced(t.Context(), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("SetAnnounced after Close = %v, want ErrClosed", err)
	}
}
