package vip

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ironlb/ironlb/announcer/internal/netnstest"
	"github.com/ironlb/ironlb/announcer/neighbor"
)

// The load-balancer addresses under test.
const (
	vip4    = "198.51.100.10"
	vip6    = "2001:db8:1::10"
	offVIP4 = "203.0.113.10"
	offVIP6 = "2001:db8:ff::10"
)

func TestIPv4AssignedAnnouncedAndRemoved(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	h := newHooks()
	a := n.newAnnouncer(t, h.options(0, 100*time.Millisecond))
	n.seedWrongNeigh(t, vip4)

	start := time.Now()
	set(t, a, map[string]string{vip4: ifaceA})
	setTook := time.Since(start)
	if got := n.requireAddr(t, ifaceA, vip4); got.Label != ifaceA+labelSuffix {
		t.Errorf("%s has label %q, want %q", vip4, got.Label, ifaceA+labelSuffix)
	}
	requireMarked(t, a, vip4)
	took := n.waitNeighMAC(t, vip4, 2*time.Second)
	t.Logf("SetAnnounced took %v; B's stale entry pointed at A %v after it returned", setTook, took)
	// Two rounds of an ARP announcement and a gratuitous reply.
	h.waitCount(t, neighbor.IPv4, 4, 2*time.Second)

	n.requireReachable(t, n.serveOnA(t, vip4))

	// Level-triggered: the same set again changes nothing and sends nothing.
	set(t, a, map[string]string{vip4: ifaceA})
	time.Sleep(150 * time.Millisecond)
	if got := h.count(neighbor.IPv4); got != 4 {
		t.Errorf("an unchanged SetAnnounced sent gratuitous packets: %d, want still 4", got)
	}

	// Someone removes it behind our back: the next call repairs it.
	n.IP(t, "-n", n.A.Netns, "addr", "del", vip4+"/32", "dev", ifaceA)
	set(t, a, map[string]string{vip4: ifaceA})
	n.requireAddr(t, ifaceA, vip4)
	h.waitCount(t, neighbor.IPv4, 8, 2*time.Second)

	set(t, a, map[string]string{})
	n.requireNoAddr(t, ifaceA, vip4)
	if _, ok := n.findAddr(t, ifaceA, netnstest.A4); !ok {
		t.Errorf("A's own %s went with the load-balancer address", netnstest.A4)
	}
}

func TestIPv6AssignedAnnouncedAndRemoved(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	h := newHooks()
	a := n.newAnnouncer(t, h.options(0, 100*time.Millisecond))
	n.seedWrongNeigh(t, vip6)

	set(t, a, map[string]string{vip6: ifaceA})
	got := n.requireAddr(t, ifaceA, vip6)
	if !got.NoDAD || !got.Deprecated {
		t.Errorf("%s: nodad=%v deprecated=%v, want both", vip6, got.NoDAD, got.Deprecated)
	}
	requireMarked(t, a, vip6)
	took := n.waitNeighMAC(t, vip6, 2*time.Second)
	t.Logf("B's stale entry pointed at A %v after SetAnnounced returned", took)
	h.waitCount(t, neighbor.IPv6, 2, 2*time.Second)

	n.requireReachable(t, n.serveOnA(t, vip6))

	// Deprecated, so the node never sources its own traffic from it.
	if route := n.IP(t, "-n", n.A.Netns, "-6", "route", "get", netnstest.B6); !strings.Contains(route, "src "+netnstest.A6+" ") {
		t.Errorf("A would reach B from the wrong source: %s", route)
	}

	set(t, a, map[string]string{})
	n.requireNoAddr(t, ifaceA, vip6)
	if _, ok := n.findAddr(t, ifaceA, netnstest.A6); !ok {
		t.Errorf("A's own %s went with the load-balancer address", netnstest.A6)
	}
}

func TestRemovalStopsBurst(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	h := newHooks()
	// A second round long enough after the first that the removal surely
	// comes before it, even on a loaded machine.
	a := n.newAnnouncer(t, h.options(0, time.Second))
	set(t, a, map[string]string{vip4: ifaceA, vip6: ifaceA})
	h.waitCount(t, neighbor.IPv4, 2, 500*time.Millisecond)
	h.waitCount(t, neighbor.IPv6, 1, 500*time.Millisecond)
	set(t, a, map[string]string{})
	time.Sleep(1300 * time.Millisecond)
	if v4, v6 := h.count(neighbor.IPv4), h.count(neighbor.IPv6); v4 != 2 || v6 != 1 {
		t.Fatalf("after removal the bursts went on: %d IPv4, %d IPv6 packets, want 2 and 1", v4, v6)
	}
}

func TestLeavesForeignAddressesAlone(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	a := n.newAnnouncer(t, Options{GratuitousSchedule: []time.Duration{}})
	// Someone else's host address, which looks like ours but is not marked.
	const other4 = "198.51.100.20"
	n.IP(t, "-n", n.A.Netns, "addr", "add", other4+"/32", "dev", "lo")

	err := trySet(t, a, map[string]string{
		netnstest.A4:    ifaceA, // the node's own addresses
		netnstest.A6:    ifaceA,
		other4:          ifaceA, // assigned, to another interface
		"198.51.100.11": ifaceA, // fine: applied despite the others
	})
	if !isForeign(err) {
		t.Fatalf("SetAnnounced of the node's own addresses: %v, want ErrForeignAddress", err)
	}
	for _, s := range []string{netnstest.A4 + " wanted on " + ifaceA, netnstest.A6 + " wanted on " + ifaceA, other4 + "/32 on lo"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error does not name %q: %v", s, err)
		}
	}
	n.requireAddr(t, ifaceA, "198.51.100.11")
	for _, addr := range []string{netnstest.A4, netnstest.A6, other4} {
		if got := kernelAddrs(t, a, addr); len(got) != 1 || got[0].ours() {
			t.Errorf("%s: %+v, want one unmarked entry", addr, got)
		}
	}

	set(t, a, map[string]string{})
	if err := a.Cleanup(t.Context()); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	n.requireNoAddr(t, ifaceA, "198.51.100.11")
	for iface, addrs := range map[string][]string{ifaceA: {netnstest.A4, netnstest.A6}, "lo": {other4}} {
		for _, addr := range addrs {
			if _, ok := n.findAddr(t, iface, addr); !ok {
				t.Errorf("%s was removed from %s, but ironlb never added it", addr, iface)
			}
		}
	}
}

func TestCleanupAfterCrash(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	want := map[string]string{vip4: ifaceA, vip6: ifaceA, offVIP4: "", offVIP6: ""}

	crashed, err := New(t.Context(), Options{NetNSPath: "/run/netns/" + n.A.Netns, GratuitousSchedule: []time.Duration{}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	set(t, crashed, want)
	off := crashed.OffSubnetInterface()
	// Close releases the sockets and, like kill -9, leaves the addresses.
	if err := crashed.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for addr, iface := range want {
		if iface == "" {
			iface = off
		}
		n.requireAddr(t, iface, addr)
	}

	restarted := n.newAnnouncer(t, Options{GratuitousSchedule: []time.Duration{}})
	start := time.Now()
	if err := restarted.Cleanup(t.Context()); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	t.Logf("Cleanup of 4 leftovers took %v", time.Since(start))
	for addr, iface := range want {
		if iface == "" {
			iface = off
		}
		if iface == DummyInterface {
			if out, err := netnstest.Run(10*time.Second, "ip", "-n", n.A.Netns, "link", "show", DummyInterface); err == nil {
				t.Errorf("Cleanup left %s behind: %s", DummyInterface, out)
			}
			continue
		}
		n.requireNoAddr(t, iface, addr)
	}
	if _, ok := n.findAddr(t, "lo", "127.0.0.1"); !ok {
		t.Error("Cleanup removed 127.0.0.1 from lo")
	}
}

func TestOffSubnetOnDummyOrFallback(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	wantIface := DefaultFallbackInterface
	if n.dummySupported(t) {
		wantIface = DummyInterface
	}
	h := newHooks()
	a := n.newAnnouncer(t, h.options(0))
	if got := a.OffSubnetInterface(); got != "" {
		t.Errorf("OffSubnetInterface before any off-subnet address = %q, want \"\"", got)
	}

	set(t, a, map[string]string{offVIP4: "", offVIP6: ""})
	if got := a.OffSubnetInterface(); got != wantIface {
		t.Fatalf("OffSubnetInterface = %q, want %q", got, wantIface)
	}
	n.requireAddr(t, wantIface, offVIP4)
	n.requireAddr(t, wantIface, offVIP6)
	requireMarked(t, a, offVIP4)
	requireMarked(t, a, offVIP6)
	// B routes these networks through A.
	n.requireReachable(t, n.serveOnA(t, offVIP4))
	n.requireReachable(t, n.serveOnA(t, offVIP6))
	time.Sleep(100 * time.Millisecond)
	if v4, v6 := h.count(neighbor.IPv4), h.count(neighbor.IPv6); v4+v6 != 0 {
		t.Errorf("sent %d IPv4 and %d IPv6 gratuitous packets for addresses on %s, want none", v4, v6, wantIface)
	}

	if wantIface == DefaultFallbackInterface {
		t.Run("configured fallback", func(t *testing.T) {
			b := n.newAnnouncer(t, Options{FallbackInterface: "nosuch0"})
			err := trySet(t, b, map[string]string{"203.0.113.11": ""})
			if err == nil || !strings.Contains(err.Error(), "203.0.113.11") || !strings.Contains(err.Error(), "nosuch0") {
				t.Fatalf("SetAnnounced with a missing fallback: %v, want an error naming the address and nosuch0", err)
			}
		})
	}
}

func TestMovesBetweenInterfaces(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	h := newHooks()
	a := n.newAnnouncer(t, h.options(0))

	set(t, a, map[string]string{vip4: ifaceA, vip6: ifaceA})
	h.waitCount(t, neighbor.IPv4, 2, time.Second)
	h.waitCount(t, neighbor.IPv6, 1, time.Second)

	set(t, a, map[string]string{vip4: "", vip6: ""})
	off := a.OffSubnetInterface()
	for _, addr := range []string{vip4, vip6} {
		n.requireNoAddr(t, ifaceA, addr)
		n.requireAddr(t, off, addr)
		requireMarked(t, a, addr)
	}

	set(t, a, map[string]string{vip4: ifaceA, vip6: ifaceA})
	for _, addr := range []string{vip4, vip6} {
		n.requireNoAddr(t, off, addr)
		n.requireAddr(t, ifaceA, addr)
		requireMarked(t, a, addr)
	}
	h.waitCount(t, neighbor.IPv4, 4, time.Second)
	h.waitCount(t, neighbor.IPv6, 2, time.Second)
	if got := h.on(off); got != 0 {
		t.Errorf("%d gratuitous packets on %s, want none", got, off)
	}
}

func TestReportsPartialFailures(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	a := n.newAnnouncer(t, Options{GratuitousSchedule: []time.Duration{}})
	set(t, a, map[string]string{"198.51.100.13": ifaceA})

	err := trySet(t, a, map[string]string{
		"198.51.100.11":  ifaceA,
		"198.51.100.12":  "nosuch0",
		"2001:db8:1::12": "nosuch0",
		"198.51.100.13":  "nosuch0", // now wanted where it cannot go
		"127.0.0.1":      ifaceA,
	})
	if err == nil {
		t.Fatal("SetAnnounced with a missing interface and a loopback address succeeded")
	}
	for _, s := range []string{"198.51.100.12", "2001:db8:1::12", "198.51.100.13", "nosuch0", "127.0.0.1"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error does not name %s: %v", s, err)
		}
	}
	n.requireAddr(t, ifaceA, "198.51.100.11")
	// Left where it was rather than withdrawn: the failure may be transient.
	n.requireAddr(t, ifaceA, "198.51.100.13")
}

func TestContextAndClose(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	a := n.newAnnouncer(t, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := a.SetAnnounced(ctx, map[netip.Addr]string{netip.MustParseAddr(vip4): ifaceA}); !errors.Is(err, context.Canceled) {
		t.Errorf("SetAnnounced with a cancelled context: %v, want context.Canceled", err)
	}
	n.requireNoAddr(t, ifaceA, vip4)
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := a.SetAnnounced(t.Context(), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("SetAnnounced after Close: %v, want ErrClosed", err)
	}
	if err := a.Cleanup(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("Cleanup after Close: %v, want ErrClosed", err)
	}
}

// TestManyAddresses measures a node taking over and releasing many addresses
// at once, as after a failover.
func TestManyAddresses(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	a := n.newAnnouncer(t, Options{GratuitousSchedule: []time.Duration{0}})
	want := map[string]string{}
	base := netip.MustParseAddr("203.0.113.0")
	for i := 0; i < 200; i++ {
		base = base.Next()
		want[base.String()] = ifaceA
	}
	start := time.Now()
	set(t, a, want)
	added := time.Since(start)
	start = time.Now()
	set(t, a, want)
	unchanged := time.Since(start)
	start = time.Now()
	set(t, a, map[string]string{})
	removed := time.Since(start)
	t.Logf("200 addresses: added in %v, unchanged sync %v, removed in %v", added, unchanged, removed)
	if left := len(n.addrsOn(t, ifaceA)); left != 3 { // the node's two and the link-local
		t.Errorf("%d addresses left on %s, want 3", left, ifaceA)
	}
}

// TestNeighboursNeedTheBurst is the control for the neighbour checks above:
// without gratuitous packets, nothing else corrects a neighbour's stale
// entry, so it is the burst that does.
func TestNeighboursNeedTheBurst(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	a := n.newAnnouncer(t, Options{GratuitousSchedule: []time.Duration{}})
	n.seedWrongNeigh(t, vip4)
	n.seedWrongNeigh(t, vip6)
	set(t, a, map[string]string{vip4: ifaceA, vip6: ifaceA})
	time.Sleep(300 * time.Millisecond)
	for _, addr := range []string{vip4, vip6} {
		if entry := n.NeighB(t, addr); !strings.Contains(entry, wrongMAC) {
			t.Errorf("B's entry for %s changed without a burst: %q", addr, entry)
		}
	}
}

// TestForeignDummyName checks that an interface called ironlb0 that is not a
// dummy is neither used nor deleted.
func TestForeignDummyName(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	n.IP(t, "-n", n.A.Netns, "link", "add", DummyInterface, "type", "veth", "peer", "name", "ilbpeer")
	a := n.newAnnouncer(t, Options{GratuitousSchedule: []time.Duration{}})
	err := trySet(t, a, map[string]string{offVIP4: ""})
	if err == nil || !strings.Contains(err.Error(), offVIP4) || !strings.Contains(err.Error(), "not a dummy") {
		t.Fatalf("SetAnnounced with a veth called %s: %v, want an error naming %s and saying it is not a dummy", DummyInterface, err, offVIP4)
	}
	if err := a.Cleanup(t.Context()); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	n.IP(t, "-n", n.A.Netns, "link", "show", DummyInterface)
}

// TestWithoutCapNetRaw runs New on a thread holding CAP_NET_ADMIN but not
// CAP_NET_RAW: addresses still work, only the bursts are off. It also covers
// an empty NetNSPath (the calling thread's namespace).
func TestWithoutCapNetRaw(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	h := newHooks()
	var (
		a   *Announcer
		err error
	)
	netnstest.InNS(t, n.A.Netns, func() {
		// Capabilities are per thread, and this one is thrown away after.
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err = unix.Capget(&hdr, &data[0]); err != nil {
			return
		}
		data[0].Effective &^= 1 << unix.CAP_NET_RAW
		if err = unix.Capset(&hdr, &data[0]); err != nil {
			return
		}
		a, err = New(t.Context(), h.options(0))
	})
	if err != nil {
		t.Fatalf("New without CAP_NET_RAW: %v", err)
	}
	t.Cleanup(func() { _ = a.Close() })
	if a.sender != nil {
		t.Fatal("opened a packet socket without CAP_NET_RAW")
	}
	set(t, a, map[string]string{vip4: ifaceA})
	n.requireAddr(t, ifaceA, vip4)
	n.requireReachable(t, n.serveOnA(t, vip4))
	if got := h.count(neighbor.IPv4); got != 0 {
		t.Errorf("%d gratuitous packets without CAP_NET_RAW, want 0", got)
	}
	if err := a.Cleanup(t.Context()); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	n.requireNoAddr(t, ifaceA, vip4)
}
