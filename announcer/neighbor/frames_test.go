package neighbor

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net"
	"net/netip"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
)

// testMAC is the MAC of the host announcing in every test.
var testMAC = net.HardwareAddr{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}

func TestGratuitousARP(t *testing.T) {
	testVIP4 := netip.MustParseAddr("198.51.100.10")
	frames, err := GratuitousFrames(testMAC, testVIP4)
	if err != nil || len(frames) != 2 {
		t.Fatalf("GratuitousFrames = %d frames, %v; want 2", len(frames), err)
	}
	for i, want := range []struct {
		op        arp.Operation
		targetMAC net.HardwareAddr
	}{
		{arp.OperationRequest, make(net.HardwareAddr, 6)}, // RFC 5227 announcement
		{arp.OperationReply, testMAC},                     // gratuitous reply
	} {
		var f ethernet.Frame
		if err := f.UnmarshalBinary(frames[i]); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.EtherType != ethernet.EtherTypeARP {
			t.Fatalf("frame %d: EtherType %v, want ARP", i, f.EtherType)
		}
		var p arp.Packet
		if err := p.UnmarshalBinary(f.Payload); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(f.Destination, ethernet.Broadcast) || !bytes.Equal(f.Source, testMAC) {
			t.Errorf("frame %d: Ethernet %v -> %v, want %v -> broadcast", i, f.Source, f.Destination, testMAC)
		}
		if p.Operation != want.op {
			t.Errorf("frame %d: operation %v, want %v", i, p.Operation, want.op)
		}
		if p.SenderIP != testVIP4 || p.TargetIP != testVIP4 || !bytes.Equal(p.SenderHardwareAddr, testMAC) {
			t.Errorf("frame %d: sender %v %v target IP %v, want sender and target IP %v from %v", i, p.SenderHardwareAddr, p.SenderIP, p.TargetIP, testVIP4, testMAC)
		}
		if !bytes.Equal(p.TargetHardwareAddr, want.targetMAC) {
			t.Errorf("frame %d: target MAC %v, want %v", i, p.TargetHardwareAddr, want.targetMAC)
		}
	}
}

func TestGratuitousNeighborAdvertisement(t *testing.T) {
	testVIP6 := netip.MustParseAddr("2001:db8:1::10")
	frames, err := GratuitousFrames(testMAC, testVIP6)
	if err != nil || len(frames) != 1 {
		t.Fatalf("GratuitousFrames = %d frames, %v; want 1", len(frames), err)
	}
	var f ethernet.Frame
	if err := f.UnmarshalBinary(frames[0]); err != nil {
		t.Fatal(err)
	}
	ip := f.Payload
	if f.EtherType != ethernet.EtherTypeIPv6 || len(ip) < ipv6HeaderLen ||
		ip[0]>>4 != 6 || ip[6] != protoICMPv6 || ip[7] != 255 {
		t.Fatalf("not an ICMPv6 packet with hop limit 255: %+v % x", f, ip)
	}
	if !bytes.Equal(f.Destination, AllNodesMAC) || !bytes.Equal(f.Source, testMAC) {
		t.Errorf("Ethernet %v -> %v, want %v -> %v", f.Source, f.Destination, testMAC, AllNodesMAC)
	}
	src, dst := netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
	if src != testVIP6 || dst != AllNodes {
		t.Errorf("IPv6 %v -> %v, want %v -> %v", src, dst, testVIP6, AllNodes)
	}
	msg := ip[ipv6HeaderLen:]
	if plen := int(binary.BigEndian.Uint16(ip[4:6])); plen != len(msg) {
		t.Fatalf("payload length %d, want %d", plen, len(msg))
	}
	m, err := ndp.ParseMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	na, ok := m.(*ndp.NeighborAdvertisement)
	if !ok || na.TargetAddress != testVIP6 || !na.Override || na.Solicited || na.Router {
		t.Fatalf("advertisement %+v, want an unsolicited override for %v", m, testVIP6)
	}
	if len(na.Options) != 1 {
		t.Fatalf("options %+v, want only the target link-layer address", na.Options)
	}
	if lla, ok := na.Options[0].(*ndp.LinkLayerAddress); !ok || lla.Direction != ndp.Target || !bytes.Equal(lla.Addr, testMAC) {
		t.Errorf("option %+v, want target link-layer address %v", na.Options[0], testMAC)
	}
	// The checksum covers the pseudo-header: recomputing it over the
	// addresses as sent must give the message as sent.
	want, err := ndp.MarshalMessageChecksum(na, src, dst)
	if err != nil || !bytes.Equal(want, msg) {
		t.Errorf("checksum mismatch: % x, want % x (%v)", msg, want, err)
	}
}

// TestFramesOnTheWire pins the exact bytes: neighbours on the wire, not this
// package's decoders, are the judges, and they were proven with these.
func TestFramesOnTheWire(t *testing.T) {
	testVIP4, testVIP6 := netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("2001:db8:1::10")
	peerMAC := net.HardwareAddr{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}
	build := func(f func() ([]byte, error)) func() ([][]byte, error) {
		return func() ([][]byte, error) {
			b, err := f()
			return [][]byte{b}, err
		}
	}
	for _, tc := range []struct {
		name  string
		build func() ([][]byte, error)
		want  []string
	}{{
		name:  "gratuitous IPv4",
		build: func() ([][]byte, error) { return GratuitousFrames(testMAC, testVIP4) },
		want: []string{
			"ffffffffffff02112233445508060001080006040001021122334455c633640a000000000000c633640a000000000000000000000000000000000000",
			"ffffffffffff02112233445508060001080006040002021122334455c633640a021122334455c633640a000000000000000000000000000000000000",
		},
	}, {
		name:  "gratuitous IPv6",
		build: func() ([][]byte, error) { return GratuitousFrames(testMAC, testVIP6) },
		want: []string{
			"33330000000102112233445586dd6000000000203aff20010db8000100000000000000000010ff020000000000000000000000000001880092722000000020010db80001000000000000000000100201021122334455",
		},
	}, {
		name: "ARP reply",
		build: build(func() ([]byte, error) {
			return ARPFrame(arp.OperationReply, testMAC, testVIP4, peerMAC, netip.MustParseAddr("198.51.100.2"), peerMAC)
		}),
		want: []string{
			"02aabbccddee02112233445508060001080006040002021122334455c633640a02aabbccddeec6336402000000000000000000000000000000000000",
		},
	}, {
		name: "solicited advertisement",
		build: build(func() ([]byte, error) {
			return Advertisement(testMAC, testVIP6, peerMAC, netip.MustParseAddr("2001:db8:1::2"), true)
		}),
		want: []string{
			"02aabbccddee02112233445586dd6000000000203aff20010db800010000000000000000001020010db8000100000000000000000002880023ba6000000020010db80001000000000000000000100201021122334455",
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			frames, err := tc.build()
			if err != nil {
				t.Fatal(err)
			}
			if len(frames) != len(tc.want) {
				t.Fatalf("%d frames, want %d", len(frames), len(tc.want))
			}
			for i, f := range frames {
				if got := hex.EncodeToString(f); got != tc.want[i] {
					t.Errorf("frame %d:\n got %s\nwant %s", i, got, tc.want[i])
				}
			}
		})
	}
}

func TestFamilyOf(t *testing.T) {
	for addr, want := range map[string]Family{"198.51.100.10": IPv4, "2001:db8:1::10": IPv6} {
		if got := FamilyOf(netip.MustParseAddr(addr)); got != want {
			t.Errorf("FamilyOf(%s) = %q, want %q", addr, got, want)
		}
	}
}
