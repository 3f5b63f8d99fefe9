package vip

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
)

func TestLabelFor(t *testing.T) {
	for iface, want := range map[string]string{
		"eth0":            "eth0:ilb",
		"lo":              "lo:ilb",
		"enp0s31f6":       "enp0s31f6:ilb",
		"abcdefghijk":     "abcdefghijk:ilb", // 15 bytes: the limit
		"abcdefghijkl":    "",
		"bond0.100-trunk": "",
	} {
		if got := labelFor(iface); got != want {
			t.Errorf("labelFor(%q) = %q, want %q", iface, got, want)
		}
	}
}

func TestOurs(t *testing.T) {
	v4, v6 := netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("2001:db8::10")
	for _, tc := range []struct {
		name string
		a    kernelAddr
		want bool
	}{
		{"protocol", kernelAddr{addr: v6, proto: AddressProtocol}, true},
		{"protocol v4", kernelAddr{addr: v4, proto: AddressProtocol, label: "eth0"}, true},
		{"label only, pre-6.3 kernel", kernelAddr{addr: v4, label: "eth0:ilb"}, true},
		{"plain", kernelAddr{addr: v4, label: "eth0"}, false},
		{"other label", kernelAddr{addr: v4, label: "eth0:1"}, false},
		{"kernel protocol", kernelAddr{addr: v6, proto: 1}, false},
		{"plain v6", kernelAddr{addr: v6}, false},
	} {
		if got := tc.a.ours(); got != tc.want {
			t.Errorf("%s: ours() = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestNormalizeWant(t *testing.T) {
	mapped := netip.AddrFrom16(netip.MustParseAddr("198.51.100.10").As16())
	got, errs := normalizeWant(map[netip.Addr]string{
		mapped:                                "eth0",
		netip.MustParseAddr("2001:db8::1"):    "",
		netip.MustParseAddr("fe80::1"):        "eth0",
		netip.MustParseAddr("224.0.0.1"):      "eth0",
		netip.MustParseAddr("2001:db8::2%e0"): "eth0",
	})
	if len(got) != 2 || got[netip.MustParseAddr("198.51.100.10")] != "eth0" || got[netip.MustParseAddr("2001:db8::1")] != "" {
		t.Errorf("normalized = %v", got)
	}
	if len(errs) != 3 {
		t.Errorf("errors = %v, want 3 (link-local, multicast, zone)", errs)
	}

	got, errs = normalizeWant(map[netip.Addr]string{
		mapped:                               "eth0",
		netip.MustParseAddr("198.51.100.10"): "eth1",
	})
	if len(got) != 0 || len(errs) != 1 || !strings.Contains(errs[0].Error(), "both") {
		t.Errorf("conflicting duplicate: got %v, errors %v", got, errs)
	}
}

func TestNormalizeSchedule(t *testing.T) {
	got := normalizeSchedule([]time.Duration{time.Second, -time.Second, 0})
	want := []time.Duration{0, 0, time.Second}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("normalizeSchedule = %v, want %v", got, want)
	}
}

var testMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}

func TestGratuitousARPFrames(t *testing.T) {
	addr := netip.MustParseAddr("198.51.100.10")
	frames, err := gratuitousFrames(testMAC, addr)
	if err != nil || len(frames) != 2 {
		t.Fatalf("gratuitousFrames = %d frames, %v; want 2", len(frames), err)
	}
	for i, want := range []struct {
		op        arp.Operation
		targetMAC net.HardwareAddr
	}{
		{arp.OperationRequest, make(net.HardwareAddr, 6)},
		{arp.OperationReply, testMAC},
	} {
		var f ethernet.Frame
		if err := f.UnmarshalBinary(frames[i]); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		var p arp.Packet
		if err := p.UnmarshalBinary(f.Payload); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.Destination.String() != ethernet.Broadcast.String() || f.EtherType != ethernet.EtherTypeARP ||
			p.Operation != want.op || p.SenderIP != addr || p.TargetIP != addr ||
			p.SenderHardwareAddr.String() != testMAC.String() || p.TargetHardwareAddr.String() != want.targetMAC.String() {
			t.Errorf("frame %d: %+v %+v", i, f, p)
		}
	}
}

func TestNeighborAdvertisementFrame(t *testing.T) {
	addr := netip.MustParseAddr("2001:db8::10")
	frames, err := gratuitousFrames(testMAC, addr)
	if err != nil || len(frames) != 1 {
		t.Fatalf("gratuitousFrames = %d frames, %v; want 1", len(frames), err)
	}
	var f ethernet.Frame
	if err := f.UnmarshalBinary(frames[0]); err != nil {
		t.Fatal(err)
	}
	ip := f.Payload
	if f.EtherType != ethernet.EtherTypeIPv6 || f.Destination.String() != allNodesMAC.String() ||
		ip[0]>>4 != 6 || ip[6] != protoICMPv6 || ip[7] != 255 {
		t.Fatalf("headers: %+v % x", f, ip[:ipv6HeaderLen])
	}
	src, dst := netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
	if src != addr || dst != allNodes {
		t.Errorf("%s -> %s, want %s -> %s", src, dst, addr, allNodes)
	}
	msg := ip[ipv6HeaderLen:]
	m, err := ndp.ParseMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	na, ok := m.(*ndp.NeighborAdvertisement)
	if !ok || na.TargetAddress != addr || !na.Override || na.Solicited || na.Router {
		t.Fatalf("advertisement: %+v", m)
	}
	if len(na.Options) != 1 || na.Options[0].(*ndp.LinkLayerAddress).Addr.String() != testMAC.String() {
		t.Errorf("options: %+v", na.Options)
	}
	// Recomputing the checksum over the message as sent must give the same.
	want, err := ndp.MarshalMessageChecksum(na, src, dst)
	if err != nil || string(want) != string(msg) {
		t.Errorf("checksum mismatch: % x vs % x (%v)", msg, want, err)
	}
}
