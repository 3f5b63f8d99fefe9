package layer2

import (
	"errors"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ironlb/ironlb/announcer/neighbor"
)

// The announced addresses (documentation ranges, on A's subnet).
const (
	testVIP4 = "198.51.100.10"
	testVIP6 = "2001:db8:1::10"
	wrongMAC = "02:00:00:00:00:99"
)

// hooks records what the Announcer reports through its Options hooks.
type hooks struct {
	mu         sync.Mutex
	gratuitous map[neighbor.Family][]time.Time
	answers    map[neighbor.Family]int
}

func newHooks() *hooks {
	return &hooks{gratuitous: map[neighbor.Family][]time.Time{}, answers: map[neighbor.Family]int{}}
}

func (h *hooks) options(schedule []time.Duration) Options {
	return Options{
		GratuitousSchedule: schedule,
		OnGratuitous: func(iface string, f neighbor.Family) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.gratuitous[f] = append(h.gratuitous[f], time.Now())
		},
		OnAnswer: func(iface string, f neighbor.Family) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.answers[f]++
		},
	}
}

func (h *hooks) counts() (v4, v6 int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.gratuitous[neighbor.IPv4]), len(h.gratuitous[neighbor.IPv6])
}

func (h *hooks) firstGratuitous(f neighbor.Family) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.gratuitous[f]) == 0 {
		return time.Time{}
	}
	return h.gratuitous[f][0]
}

func (h *hooks) answered(f neighbor.Family) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.answers[f]
}

// newAnnouncer returns an Announcer closed when the test ends (before the
// namespaces go).
func newAnnouncer(t *testing.T, opts Options) *Announcer {
	a := New(opts)
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return a
}

// arpingB asks for addr from B; it returns arping's output and whether any
// reply came.
func (n *testNet) arpingB(t *testing.T, addr string) (string, bool) {
	t.Helper()
	out, err := n.execB(t, 10*time.Second, "arping", "-c", "2", "-w", "3", "-i", ifaceB, addr)
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return strings.ToLower(out), true
	case errors.As(err, &exitErr):
		return strings.ToLower(out), false
	default:
		t.Fatalf("arping: %v: %s", err, out)
		return "", false
	}
}

// ndisc6B solicits addr from B; it returns the advertised MAC, or "" if none
// came.
func (n *testNet) ndisc6B(t *testing.T, addr string) string {
	t.Helper()
	out, err := n.execB(t, 10*time.Second, "ndisc6", "-1", "-q", "-r", "2", "-w", "500", addr, ifaceB)
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return strings.ToLower(strings.TrimSpace(out))
	case errors.As(err, &exitErr):
		return ""
	default:
		t.Fatalf("ndisc6: %v: %s", err, out)
		return ""
	}
}

// sendUDPFromB makes B's kernel resolve addr by sending it a datagram.
func (n *testNet) sendUDPFromB(t *testing.T, addr string) {
	t.Helper()
	var err error
	n.inB.Do(func() {
		var c net.Conn
		if c, err = net.Dial("udp", net.JoinHostPort(addr, "9")); err != nil {
			return
		}
		defer c.Close()
		_, err = c.Write([]byte("ironlb"))
	})
	if err != nil {
		t.Fatalf("sending to %s from B: %v", addr, err)
	}
}

func TestARPAnswersUntilRemoved(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	h := newHooks()
	a := newAnnouncer(t, h.options([]time.Duration{})) // no bursts: only answers

	if out, ok := n.arpingB(t, testVIP4); ok {
		t.Fatalf("before SetAnnounced, %s is answered:\n%s", testVIP4, out)
	}
	n.set(t, a, map[string]string{testVIP4: ifaceA})
	out, ok := n.arpingB(t, testVIP4)
	if !ok || !strings.Contains(out, n.A.MAC) {
		t.Fatalf("arping %s from B: want a reply from %s, got:\n%s", testVIP4, n.A.MAC, out)
	}
	if got := h.answered(neighbor.IPv4); got < 1 {
		t.Errorf("OnAnswer reported %d IPv4 answers, want at least 1", got)
	}

	n.set(t, a, map[string]string{})
	if out, ok := n.arpingB(t, testVIP4); ok {
		t.Fatalf("after removal, %s is still answered:\n%s", testVIP4, out)
	}
	if len(a.responders) != 0 {
		t.Errorf("responders left open after the last address went: %v", a.responders)
	}
}

func TestNDPAnswersUntilRemoved(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	h := newHooks()
	a := newAnnouncer(t, h.options([]time.Duration{}))
	n.set(t, a, map[string]string{testVIP6: ifaceA})
	// The solicited-node group of the address, joined so the NIC and
	// MLD-snooping switches let multicast solicitations through.
	const group = "ff02::1:ff00:10"
	if m := n.IP(t, "-n", n.A.Netns, "maddr", "show", "dev", ifaceA); !strings.Contains(m, group) {
		t.Errorf("A has not joined %s:\n%s", group, m)
	}

	t.Run("ndisc6", func(t *testing.T) {
		if got := n.ndisc6B(t, testVIP6); got != n.A.MAC {
			t.Fatalf("ndisc6 %s from B = %q, want %s", testVIP6, got, n.A.MAC)
		}
	})

	t.Run("kernel resolution", func(t *testing.T) {
		n.sendUDPFromB(t, testVIP6)
		n.WaitNeighB(t, testVIP6, 3*time.Second, "REACHABLE at "+n.A.MAC, func(e string) bool {
			return strings.Contains(e, n.A.MAC) && strings.Contains(e, "reachable")
		})
	})

	// Neighbours confirm a stale entry with a unicast solicitation to the
	// address itself, which only reaches a packet socket: the address is
	// not local to A.
	t.Run("unicast NUD probe", func(t *testing.T) {
		n.Sysctl(t, n.B.Netns, "net/ipv6/neigh/"+ifaceB+"/delay_first_probe_time", "0")
		n.IP(t, "-n", n.B.Netns, "neigh", "replace", testVIP6, "lladdr", n.A.MAC, "nud", "stale", "dev", ifaceB)
		n.sendUDPFromB(t, testVIP6)
		n.WaitNeighB(t, testVIP6, 4*time.Second, "REACHABLE again after the probe", func(e string) bool {
			if strings.Contains(e, "failed") {
				t.Fatalf("NUD probe unanswered: %q", e)
			}
			return strings.Contains(e, "reachable")
		})
	})

	t.Run("duplicate address detection", func(t *testing.T) {
		n.Sysctl(t, n.B.Netns, "net/ipv6/conf/"+ifaceB+"/dad_transmits", "1")
		n.IP(t, "-n", n.B.Netns, "addr", "add", testVIP6+"/64", "dev", ifaceB)
		defer n.IP(t, "-n", n.B.Netns, "addr", "del", testVIP6+"/64", "dev", ifaceB)
		var addr string
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			addr = n.IP(t, "-n", n.B.Netns, "-6", "addr", "show", "dev", ifaceB, "to", testVIP6+"/128")
			if strings.Contains(addr, "dadfailed") {
				return
			}
		}
		t.Fatalf("B's DAD for %s did not fail: %s", testVIP6, addr)
	})

	if got := h.answered(neighbor.IPv6); got < 3 {
		t.Errorf("OnAnswer reported %d IPv6 answers, want at least 3", got)
	}

	n.set(t, a, map[string]string{})
	if got := n.ndisc6B(t, testVIP6); got != "" {
		t.Fatalf("after removal, %s is still answered by %s", testVIP6, got)
	}
	if m := n.IP(t, "-n", n.A.Netns, "maddr", "show", "dev", ifaceA); strings.Contains(m, group) {
		t.Errorf("A is still in %s after removal:\n%s", group, m)
	}
}

// A takeover must fix neighbours that cached another MAC, without their
// asking. Linux updates an existing entry from gratuitous packets even
// without arp_accept, so B gets a stale entry with a wrong MAC first.
func TestTakeoverUpdatesNeighbours(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	for _, addr := range []string{testVIP4, testVIP6} {
		n.IP(t, "-n", n.B.Netns, "neigh", "replace", addr, "lladdr", wrongMAC, "nud", "stale", "dev", ifaceB)
	}
	h := newHooks()
	a := newAnnouncer(t, h.options(nil)) // the default schedule

	start := time.Now()
	n.set(t, a, map[string]string{testVIP4: ifaceA, testVIP6: ifaceA})
	for _, addr := range []string{testVIP4, testVIP6} {
		n.WaitNeighB(t, addr, 2*time.Second, n.A.MAC, func(e string) bool { return strings.Contains(e, n.A.MAC) })
	}
	t.Logf("B's entries moved to A's MAC %v after SetAnnounced was called", time.Since(start))
	for _, f := range []neighbor.Family{neighbor.IPv4, neighbor.IPv6} {
		if first := h.firstGratuitous(f); !first.IsZero() {
			t.Logf("first %s gratuitous packet sent %v after SetAnnounced was called", f, first.Sub(start))
		}
	}
}

func TestGratuitousBurstStopsOnRemoval(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	h := newHooks()
	a := newAnnouncer(t, h.options([]time.Duration{0, 400 * time.Millisecond, 800 * time.Millisecond}))
	want := map[string]string{testVIP4: ifaceA, testVIP6: ifaceA}
	// Each round is 2 neighbor.IPv4 packets (request and reply) and 1 neighbor.IPv6 one.
	waitCounts := func(v4, v6 int) {
		t.Helper()
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if g4, g6 := h.counts(); g4 >= v4 && g6 >= v6 {
				return
			}
		}
		g4, g6 := h.counts()
		t.Fatalf("%d IPv4 and %d IPv6 gratuitous packets after 3s, want %d and %d", g4, g6, v4, v6)
	}

	// Removed after the immediate round: nothing more may follow.
	n.set(t, a, want)
	waitCounts(2, 1)
	n.set(t, a, map[string]string{})
	v4, v6 := h.counts()
	if v4 >= 6 || v6 >= 3 {
		t.Fatalf("burst complete (%d, %d packets) before removal; the test is too slow to prove anything", v4, v6)
	}
	time.Sleep(time.Second)
	if g4, g6 := h.counts(); g4 != v4 || g6 != v6 {
		t.Fatalf("gratuitous packets sent after removal: IPv4 %d -> %d, IPv6 %d -> %d", v4, g4, v6, g6)
	}

	// Left alone, the whole schedule is sent: 3 rounds, and no more.
	n.set(t, a, want)
	waitCounts(v4+6, v6+3)
	time.Sleep(200 * time.Millisecond)
	if g4, g6 := h.counts(); g4 != v4+6 || g6 != v6+3 {
		t.Fatalf("full burst: %d IPv4 and %d IPv6 gratuitous packets, want 6 and 3", g4-v4, g6-v6)
	}
}

// A MAC change leaves the open socket sending a stale MAC; the next
// SetAnnounced must notice and reopen it.
func TestInterfaceMACChange(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	h := newHooks()
	a := newAnnouncer(t, h.options([]time.Duration{0}))
	want := map[string]string{testVIP4: ifaceA}
	n.set(t, a, want)

	const newMAC = "02:00:00:00:01:01"
	n.IP(t, "-n", n.A.Netns, "link", "set", ifaceA, "address", newMAC)
	n.set(t, a, want)
	if out, ok := n.arpingB(t, testVIP4); !ok || !strings.Contains(out, newMAC) {
		t.Fatalf("after the MAC change, want replies from %s, got:\n%s", newMAC, out)
	}
	if v4, _ := h.counts(); v4 != 4 {
		t.Errorf("%d IPv4 gratuitous packets, want 4 (one round per MAC)", v4)
	}
}

func TestMissingInterface(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	a := newAnnouncer(t, Options{})
	err := n.trySet(t, a, map[string]string{testVIP4: "nonexistent0", testVIP6: ifaceA})
	if err == nil || !strings.Contains(err.Error(), "nonexistent0") {
		t.Fatalf("SetAnnounced with a missing interface = %v, want an error naming it", err)
	}
	// The rest was applied.
	if got := n.ndisc6B(t, testVIP6); got != n.A.MAC {
		t.Fatalf("ndisc6 %s from B = %q, want %s", testVIP6, got, n.A.MAC)
	}
}

// Nothing depends on A's link-local address, which on a fresh link stays
// tentative (unusable as a source, unbindable) for a second or more.
func TestIPv6WithTentativeLinkLocal(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	n.IP(t, "-n", n.A.Netns, "-6", "addr", "flush", "dev", ifaceA, "scope", "link")
	n.Sysctl(t, n.A.Netns, "net/ipv6/conf/"+ifaceA+"/dad_transmits", "1")
	n.IP(t, "-n", n.A.Netns, "-6", "addr", "add", "fe80::a/64", "dev", ifaceA)

	a := newAnnouncer(t, Options{GratuitousSchedule: []time.Duration{}})
	n.set(t, a, map[string]string{testVIP6: ifaceA})
	got := n.ndisc6B(t, testVIP6)
	if ll := n.IP(t, "-n", n.A.Netns, "-6", "addr", "show", "dev", ifaceA, "scope", "link"); !strings.Contains(ll, "tentative") {
		t.Fatalf("A's link-local address is no longer tentative, the test proves nothing:\n%s", ll)
	}
	if got != n.A.MAC {
		t.Fatalf("ndisc6 %s from B = %q, want %s", testVIP6, got, n.A.MAC)
	}
}

// Not parallel: it counts goroutines.
func TestCloseStopsEverything(t *testing.T) {
	n := newTestNet(t)
	before := runtime.NumGoroutine()
	a := New(Options{GratuitousSchedule: []time.Duration{0, time.Minute}})
	n.set(t, a, map[string]string{testVIP4: ifaceA, testVIP6: ifaceA})

	start := time.Now()
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Close took %v", took)
	}
	if err := n.trySet(t, a, map[string]string{testVIP4: ifaceA}); !errors.Is(err, ErrClosed) {
		t.Errorf("SetAnnounced after Close = %v, want ErrClosed", err)
	}
	var now int
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if now = runtime.NumGoroutine(); now <= before {
			break
		}
	}
	if now > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after Close, %d before New:\n%s", now, before, buf[:runtime.Stack(buf, true)])
	}
	if out, ok := n.arpingB(t, testVIP4); ok {
		t.Fatalf("after Close, %s is still answered:\n%s", testVIP4, out)
	}
}
