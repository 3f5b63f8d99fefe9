package vip

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ironlb/ironlb/announcer/internal/netnstest"
	"github.com/ironlb/ironlb/announcer/neighbor"
)

// Interface names inside the test namespaces; each namespace has its own, so
// they cannot clash with the host's.
const (
	ifaceA = "va"
	ifaceB = "vb"
)

// Networks on no link, which B routes through A (documentation ranges), and a
// MAC nobody has.
const (
	offNet4  = "203.0.113.0/24"
	offNet6  = "2001:db8:ff::/64"
	wrongMAC = "02:00:00:00:00:99"
)

// testNet is the network of netnstest: A (the node running the Announcer)
// and B (its neighbour).
type testNet struct {
	*netnstest.Net
}

// newTestNet builds the topology and deletes it when the test ends, whatever
// the outcome.
func newTestNet(t *testing.T) *testNet {
	t.Helper()
	n := &testNet{netnstest.New(t, "ilbvip", ifaceA, ifaceB)}
	for _, ns := range []string{n.A.Netns, n.B.Netns} {
		// A node's lo is always up; a new namespace's is not.
		n.IP(t, "-n", ns, "link", "set", "lo", "up")
	}
	n.IP(t, "-n", n.B.Netns, "route", "add", offNet4, "via", netnstest.A4)
	n.IP(t, "-n", n.B.Netns, "route", "add", offNet6, "via", netnstest.A6)
	return n
}

// newAnnouncer returns an Announcer working in A, closed when the test ends
// (before the namespaces go).
func (n *testNet) newAnnouncer(t *testing.T, opts Options) *Announcer {
	t.Helper()
	opts.NetNSPath = "/run/netns/" + n.A.Netns
	a, err := New(t.Context(), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return a
}

// set calls SetAnnounced, failing the test on error.
func set(t *testing.T, a *Announcer, want map[string]string) {
	t.Helper()
	if err := trySet(t, a, want); err != nil {
		t.Fatalf("SetAnnounced(%v): %v", want, err)
	}
}

func trySet(t *testing.T, a *Announcer, want map[string]string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	return a.SetAnnounced(ctx, netnstest.ParseAddrs(want))
}

// ipAddr is one address as `ip -j addr` shows it.
type ipAddr struct {
	Local      string `json:"local"`
	PrefixLen  int    `json:"prefixlen"`
	Label      string `json:"label"`
	NoDAD      bool   `json:"nodad"`
	Deprecated bool   `json:"deprecated"`
}

// addrsOn lists the addresses on iface in A, as `ip addr` shows them.
func (n *testNet) addrsOn(t *testing.T, iface string) []ipAddr {
	t.Helper()
	var links []struct {
		AddrInfo []ipAddr `json:"addr_info"`
	}
	out := n.IP(t, "-j", "-n", n.A.Netns, "addr", "show", "dev", iface)
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("parsing `ip -j addr show dev %s`: %v: %s", iface, err, out)
	}
	return links[0].AddrInfo
}

// findAddr returns addr's entry on iface in A.
func (n *testNet) findAddr(t *testing.T, iface, addr string) (ipAddr, bool) {
	t.Helper()
	all := n.addrsOn(t, iface)
	if i := slices.IndexFunc(all, func(a ipAddr) bool { return a.Local == addr }); i >= 0 {
		return all[i], true
	}
	return ipAddr{}, false
}

// requireAddr fails unless addr is on iface in A as a host address.
func (n *testNet) requireAddr(t *testing.T, iface, addr string) ipAddr {
	t.Helper()
	a, ok := n.findAddr(t, iface, addr)
	if !ok {
		t.Fatalf("%s is not on %s; `ip addr show %s`:\n%s", addr, iface, iface, n.IP(t, "-n", n.A.Netns, "addr", "show", "dev", iface))
	}
	if want := netip.MustParseAddr(addr).BitLen(); a.PrefixLen != want {
		t.Errorf("%s on %s has prefix length %d, want %d", addr, iface, a.PrefixLen, want)
	}
	return a
}

// requireNoAddr fails if addr is on iface in A.
func (n *testNet) requireNoAddr(t *testing.T, iface, addr string) {
	t.Helper()
	if _, ok := n.findAddr(t, iface, addr); ok {
		t.Fatalf("%s is still on %s; `ip addr show %s`:\n%s", addr, iface, iface, n.IP(t, "-n", n.A.Netns, "addr", "show", "dev", iface))
	}
}

// seedWrongNeigh gives B a stale entry for addr pointing at a MAC nobody
// has, as if the address had lived on another node.
func (n *testNet) seedWrongNeigh(t *testing.T, addr string) {
	t.Helper()
	n.IP(t, "-n", n.B.Netns, "neigh", "replace", addr, "lladdr", wrongMAC, "nud", "stale", "dev", ifaceB)
}

// waitNeighMAC waits until B's entry for addr names A's MAC, and returns
// how long that took.
func (n *testNet) waitNeighMAC(t *testing.T, addr string, timeout time.Duration) time.Duration {
	t.Helper()
	return n.WaitNeighB(t, addr, timeout, "A's MAC "+n.A.MAC, func(entry string) bool { return strings.Contains(entry, n.A.MAC) })
}

// greeting is what the test servers say to every connection.
const greeting = "ironlb-vip"

// serveOnA listens on addr:port inside A (so addr must be assigned there)
// and greets every connection until the test ends.
func (n *testNet) serveOnA(t *testing.T, addr string) string {
	t.Helper()
	var (
		l   net.Listener
		err error
	)
	netnstest.InNS(t, n.A.Netns, func() { l, err = net.Listen("tcp", net.JoinHostPort(addr, "0")) })
	if err != nil {
		t.Fatalf("listening on %s in A: %v", addr, err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.WriteString(c, greeting)
			_ = c.Close()
		}
	})
	return l.Addr().String()
}

// dialFromB connects from B to hostport and returns the greeting read.
func (n *testNet) dialFromB(t *testing.T, hostport string, timeout time.Duration) (string, error) {
	t.Helper()
	var (
		got string
		err error
	)
	netnstest.InNS(t, n.B.Netns, func() {
		var c net.Conn
		if c, err = net.DialTimeout("tcp", hostport, timeout); err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(timeout))
		var b []byte
		b, err = io.ReadAll(c)
		got = string(b)
	})
	return got, err
}

// requireReachable fails unless B gets A's greeting at hostport.
func (n *testNet) requireReachable(t *testing.T, hostport string) {
	t.Helper()
	got, err := n.dialFromB(t, hostport, 3*time.Second)
	if err != nil || got != greeting {
		t.Fatalf("connecting from B to %s: got %q, %v; want %q", hostport, got, err, greeting)
	}
}

// dummySupported reports whether this kernel can create dummy interfaces,
// probed inside B so the root namespace is never touched.
func (n *testNet) dummySupported(t *testing.T) bool {
	t.Helper()
	out, err := netnstest.Run(10*time.Second, "ip", "-n", n.B.Netns, "link", "add", "ilbprobe0", "type", "dummy")
	if err != nil {
		t.Logf("no dummy interfaces on this kernel: %s", strings.TrimSpace(out))
		return false
	}
	n.IP(t, "-n", n.B.Netns, "link", "del", "ilbprobe0")
	return true
}

// hooks records what the Announcer reports through OnGratuitous.
type hooks struct {
	mu    sync.Mutex
	sent  map[neighbor.Family]int
	iface map[string]int
}

func newHooks() *hooks {
	return &hooks{sent: map[neighbor.Family]int{}, iface: map[string]int{}}
}

func (h *hooks) options(schedule ...time.Duration) Options {
	if schedule == nil {
		schedule = []time.Duration{}
	}
	return Options{
		GratuitousSchedule: schedule,
		OnGratuitous: func(iface string, f neighbor.Family) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.sent[f]++
			h.iface[iface]++
		},
	}
}

func (h *hooks) count(f neighbor.Family) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sent[f]
}

func (h *hooks) on(iface string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.iface[iface]
}

// waitCount waits until f's packet count reaches want, and fails if it
// does not within timeout or goes beyond.
func (h *hooks) waitCount(t *testing.T, f neighbor.Family, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for h.count(f) < want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := h.count(f); got != want {
		t.Fatalf("%d %s gratuitous packets sent after %v, want %d", got, f, timeout, want)
	}
}

// kernelAddrs lists A's addresses through the Announcer's own netlink socket,
// which, unlike iproute2 before 6.3, shows IFA_PROTO.
func kernelAddrs(t *testing.T, a *Announcer, addr string) []kernelAddr {
	t.Helper()
	all, err := a.addrs.list()
	if err != nil {
		t.Fatalf("listing addresses: %v", err)
	}
	want := netip.MustParseAddr(addr)
	var out []kernelAddr
	for _, ka := range all {
		if ka.addr == want {
			out = append(out, ka)
		}
	}
	return out
}

// requireMarked fails unless addr exists exactly once in A and carries the
// ownership marker.
func requireMarked(t *testing.T, a *Announcer, addr string) {
	t.Helper()
	got := kernelAddrs(t, a, addr)
	if len(got) != 1 {
		t.Fatalf("%s is assigned %d times in A, want once: %+v", addr, len(got), got)
	}
	if got[0].proto != AddressProtocol {
		t.Errorf("%s has IFA_PROTO %#x, want %#x", addr, got[0].proto, AddressProtocol)
	}
}

// isForeign reports whether err says a wanted address was left alone.
func isForeign(err error) bool {
	return errors.Is(err, ErrForeignAddress)
}
