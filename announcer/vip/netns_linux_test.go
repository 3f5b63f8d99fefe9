package vip

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// Interface names inside the test namespaces; each namespace has its own, so
// they cannot clash with the host's.
const (
	ifaceA = "va"
	ifaceB = "vb"
)

// Addresses, from documentation ranges only. A (the node running the
// Announcer) and B (its neighbour) share 198.51.100.0/24 and
// 2001:db8:1::/64; 203.0.113.0/24 and 2001:db8:ff::/64 are on no link, and
// B routes them through A.
const (
	nodeA4   = "198.51.100.1"
	nodeA6   = "2001:db8:1::1"
	nodeB4   = "198.51.100.2"
	nodeB6   = "2001:db8:1::2"
	offNet4  = "203.0.113.0/24"
	offNet6  = "2001:db8:ff::/64"
	wrongMAC = "02:00:00:00:00:99"
)

// testNet is two namespaces joined by a veth pair.
type testNet struct {
	nsA, nsB string
	// macA is A's interface MAC, lower case.
	macA string
}

// requireRoot fails, rather than skips, without root: CI runs as root, and
// a silently skipped data-plane test would hide regressions.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("this test builds network namespaces and needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW); run it as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("this test needs ip(8) from iproute2: %v", err)
	}
}

// newTestNet builds the topology and deletes it when the test ends, whatever
// the outcome.
func newTestNet(t *testing.T) *testNet {
	t.Helper()
	requireRoot(t)
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	prefix := fmt.Sprintf("ilbvip-%d-%s", os.Getpid(), hex.EncodeToString(suffix))
	n := &testNet{nsA: prefix + "-a", nsB: prefix + "-b"}
	// Registered before anything exists, so a failure halfway still cleans
	// up. Deleting a namespace deletes its veth end, and with it the pair.
	t.Cleanup(func() {
		for _, ns := range []string{n.nsA, n.nsB} {
			if out, err := runCmd(10*time.Second, "ip", "netns", "del", ns); err != nil && !strings.Contains(out, "No such file") {
				t.Errorf("deleting namespace %s: %v: %s", ns, err, out)
			}
		}
	})
	n.ip(t, "netns", "add", n.nsA)
	n.ip(t, "netns", "add", n.nsB)
	n.ip(t, "link", "add", ifaceA, "netns", n.nsA, "type", "veth", "peer", "name", ifaceB, "netns", n.nsB)
	for _, side := range []struct{ ns, iface, v4, v6 string }{
		{n.nsA, ifaceA, nodeA4 + "/24", nodeA6 + "/64"},
		{n.nsB, ifaceB, nodeB4 + "/24", nodeB6 + "/64"},
	} {
		// No DAD: the link-local address, and with it IPv6, is up at once.
		n.sysctl(t, side.ns, "net/ipv6/conf/"+side.iface+"/dad_transmits", "0")
		n.ip(t, "-n", side.ns, "addr", "add", side.v4, "dev", side.iface)
		n.ip(t, "-n", side.ns, "addr", "add", side.v6, "dev", side.iface, "nodad")
		n.ip(t, "-n", side.ns, "link", "set", side.iface, "up")
		// A node's lo is always up; a new namespace's is not.
		n.ip(t, "-n", side.ns, "link", "set", "lo", "up")
	}
	n.ip(t, "-n", n.nsB, "route", "add", offNet4, "via", nodeA4)
	n.ip(t, "-n", n.nsB, "route", "add", offNet6, "via", nodeA6)
	n.waitIPv6(t, n.nsA, ifaceA)
	n.waitIPv6(t, n.nsB, ifaceB)

	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal([]byte(n.ip(t, "-j", "-n", n.nsA, "link", "show", ifaceA)), &links); err != nil || len(links) != 1 {
		t.Fatalf("reading %s's MAC: %v %v", ifaceA, links, err)
	}
	n.macA = strings.ToLower(links[0].Address)
	return n
}

// newAnnouncer returns an Announcer working in A, closed when the test ends
// (before the namespaces go).
func (n *testNet) newAnnouncer(t *testing.T, opts Options) *Announcer {
	t.Helper()
	opts.NetNSPath = "/run/netns/" + n.nsA
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
	m := map[netip.Addr]string{}
	for addr, iface := range want {
		m[netip.MustParseAddr(addr)] = iface
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	return a.SetAnnounced(ctx, m)
}

// ip runs ip(8) in the root namespace (use -n to aim elsewhere) and returns
// its output, failing the test on error.
func (n *testNet) ip(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runCmd(10*time.Second, "ip", args...)
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out
}

// sysctl sets a per-namespace sysctl, key in /proc/sys path form.
func (n *testNet) sysctl(t *testing.T, ns, key, value string) {
	t.Helper()
	n.ip(t, "netns", "exec", ns, "sh", "-c", "echo "+value+" > /proc/sys/"+key)
}

// runCmd runs a command, killed after timeout.
func runCmd(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// waitIPv6 waits until IPv6 is up on iface: until then sending to a
// multicast group fails with ENETUNREACH.
func (n *testNet) waitIPv6(t *testing.T, ns, iface string) {
	t.Helper()
	var routes string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		routes = n.ip(t, "-n", ns, "-6", "route", "show", "table", "local", "dev", iface)
		if strings.Contains(routes, "ff00::/8") {
			return
		}
	}
	t.Fatalf("IPv6 not up on %s in %s after 5s; local routes:\n%s", iface, ns, routes)
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
	out := n.ip(t, "-j", "-n", n.nsA, "addr", "show", "dev", iface)
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
		t.Fatalf("%s is not on %s; `ip addr show %s`:\n%s", addr, iface, iface, n.ip(t, "-n", n.nsA, "addr", "show", "dev", iface))
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
		t.Fatalf("%s is still on %s; `ip addr show %s`:\n%s", addr, iface, iface, n.ip(t, "-n", n.nsA, "addr", "show", "dev", iface))
	}
}

// neighB returns B's neighbour entry for addr, lower case.
func (n *testNet) neighB(t *testing.T, addr string) string {
	t.Helper()
	return strings.ToLower(strings.TrimSpace(n.ip(t, "-n", n.nsB, "neigh", "show", addr, "dev", ifaceB)))
}

// seedWrongNeigh gives B a stale entry for addr pointing at a MAC nobody
// has, as if the address had lived on another node.
func (n *testNet) seedWrongNeigh(t *testing.T, addr string) {
	t.Helper()
	n.ip(t, "-n", n.nsB, "neigh", "replace", addr, "lladdr", wrongMAC, "nud", "stale", "dev", ifaceB)
}

// waitNeighMAC waits until B's entry for addr names A's MAC, and returns
// how long that took.
func (n *testNet) waitNeighMAC(t *testing.T, addr string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var entry string
	for time.Since(start) < timeout {
		if entry = n.neighB(t, addr); strings.Contains(entry, n.macA) {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("B's neighbour entry for %s is %q after %v, want A's MAC %s", addr, entry, timeout, n.macA)
	return 0
}

// inNS runs fn on a thread switched into the namespace name, and waits for
// it. Sockets belong to the namespace of the thread that creates them.
func inNS(t *testing.T, name string, fn func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread is thrown away when this goroutine
		// ends instead of returning to the scheduler inside the namespace.
		runtime.LockOSThread()
		h, err := netns.GetFromName(name)
		if err == nil {
			err = netns.Set(h)
			_ = h.Close()
		}
		if err == nil {
			fn()
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Fatalf("entering namespace %s: %v", name, err)
	}
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
	inNS(t, n.nsA, func() { l, err = net.Listen("tcp", net.JoinHostPort(addr, "0")) })
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
	inNS(t, n.nsB, func() {
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
	out, err := runCmd(10*time.Second, "ip", "-n", n.nsB, "link", "add", "ilbprobe0", "type", "dummy")
	if err != nil {
		t.Logf("no dummy interfaces on this kernel: %s", strings.TrimSpace(out))
		return false
	}
	n.ip(t, "-n", n.nsB, "link", "del", "ilbprobe0")
	return true
}

// hooks records what the Announcer reports through OnGratuitous.
type hooks struct {
	mu    sync.Mutex
	sent  map[Family]int
	iface map[string]int
}

func newHooks() *hooks {
	return &hooks{sent: map[Family]int{}, iface: map[string]int{}}
}

func (h *hooks) options(schedule ...time.Duration) Options {
	if schedule == nil {
		schedule = []time.Duration{}
	}
	return Options{
		GratuitousSchedule: schedule,
		OnGratuitous: func(iface string, f Family) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.sent[f]++
			h.iface[iface]++
		},
	}
}

func (h *hooks) count(f Family) int {
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
func (h *hooks) waitCount(t *testing.T, f Family, want int, timeout time.Duration) {
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
