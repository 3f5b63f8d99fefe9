package vip

import (
	"net/netip"
	"strings"
	"testing"
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
