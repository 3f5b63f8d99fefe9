package layer2

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// Interface names inside the test namespaces. They can't clash with the
// host's: each namespace has its own.
const (
	ifaceA = "l2a"
	ifaceB = "l2b"
)

// testNet is two namespaces joined by a veth pair, using documentation
// addresses only: A (where the Announcer runs) has .1 and ::1, B (a
// neighbour) .2 and ::2.
type testNet struct {
	nsA, nsB string
	// macA is A's interface MAC, lower case.
	macA string
	// inA and inB run Go code inside the namespaces.
	inA, inB *nsThread
}

// requireNetAdmin fails, rather than skips, without root: CI runs as root,
// and a silently skipped data-plane test would hide regressions.
func requireNetAdmin(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("this test builds network namespaces and needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW); run it as root")
	}
	for _, tool := range []string{"ip", "arping", "ndisc6"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("this test needs %s; install the test dependencies with `make deps`: %v", tool, err)
		}
	}
}

// newTestNet builds the topology and removes it when the test ends, whatever
// the outcome.
func newTestNet(t *testing.T) *testNet {
	t.Helper()
	requireNetAdmin(t)
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	prefix := fmt.Sprintf("ilbl2-%d-%s", os.Getpid(), hex.EncodeToString(suffix))
	n := &testNet{nsA: prefix + "-a", nsB: prefix + "-b"}
	// Registered before anything exists, so a failure halfway still cleans
	// up. Deleting a namespace deletes its veth end, and with it the pair.
	t.Cleanup(func() {
		for _, ns := range []string{n.nsA, n.nsB} {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil && !strings.Contains(string(out), "No such file") {
				t.Errorf("deleting namespace %s: %v: %s", ns, err, out)
			}
		}
	})
	n.ip(t, "netns", "add", n.nsA)
	n.ip(t, "netns", "add", n.nsB)
	n.ip(t, "link", "add", ifaceA, "netns", n.nsA, "type", "veth", "peer", "name", ifaceB, "netns", n.nsB)
	for _, side := range []struct{ ns, iface, v4, v6 string }{
		{n.nsA, ifaceA, "198.51.100.1/24", "2001:db8:1::1/64"},
		{n.nsB, ifaceB, "198.51.100.2/24", "2001:db8:1::2/64"},
	} {
		// No DAD, so the link-local address is usable at once: the kernel
		// sends no solicitation while it is tentative.
		n.sysctl(t, side.ns, "net/ipv6/conf/"+side.iface+"/dad_transmits", "0")
		n.ip(t, "-n", side.ns, "addr", "add", side.v4, "dev", side.iface)
		n.ip(t, "-n", side.ns, "addr", "add", side.v6, "dev", side.iface, "nodad")
		n.ip(t, "-n", side.ns, "link", "set", side.iface, "up")
	}
	n.waitIPv6(t, n.nsA, ifaceA)
	n.waitIPv6(t, n.nsB, ifaceB)

	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal([]byte(n.ip(t, "-j", "-n", n.nsA, "link", "show", ifaceA)), &links); err != nil || len(links) != 1 {
		t.Fatalf("reading %s's MAC: %v %v", ifaceA, links, err)
	}
	n.macA = strings.ToLower(links[0].Address)
	n.inA = startNSThread(t, n.nsA)
	n.inB = startNSThread(t, n.nsB)
	return n
}

// ip runs ip(8) in the root namespace (use -n to aim elsewhere) and returns
// its output, failing the test on error.
func (n *testNet) ip(t *testing.T, args ...string) string {
	t.Helper()
	out, err := run(t, 10*time.Second, "ip", args...)
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

// execB runs a command in namespace B, killed after timeout.
func (n *testNet) execB(t *testing.T, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	return run(t, timeout, "ip", append([]string{"netns", "exec", n.nsB, name}, args...)...)
}

// run runs a command, killing it when timeout passes or the test ends.
func run(t *testing.T, timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// neigh returns B's neighbour entry for addr, e.g.
// "198.51.100.10 dev l2b lladdr 02:... STALE", lower case.
func (n *testNet) neigh(t *testing.T, addr string) string {
	t.Helper()
	return strings.ToLower(strings.TrimSpace(n.ip(t, "-n", n.nsB, "neigh", "show", addr, "dev", ifaceB)))
}

// waitNeigh waits until B's entry for addr satisfies ok, or fails the test.
func (n *testNet) waitNeigh(t *testing.T, addr string, timeout time.Duration, what string, ok func(entry string) bool) {
	t.Helper()
	var entry string
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if entry = n.neigh(t, addr); ok(entry) {
			return
		}
	}
	t.Fatalf("B's neighbour entry for %s is %q after %v, want %s", addr, entry, timeout, what)
}

// set calls SetAnnounced inside namespace A, where the sockets must live.
func (n *testNet) set(t *testing.T, a *Announcer, want map[string]string) {
	t.Helper()
	if err := n.trySet(t, a, want); err != nil {
		t.Fatalf("SetAnnounced(%v): %v", want, err)
	}
}

func (n *testNet) trySet(t *testing.T, a *Announcer, want map[string]string) error {
	t.Helper()
	m := map[netip.Addr]string{}
	for addr, iface := range want {
		m[netip.MustParseAddr(addr)] = iface
	}
	var err error
	n.inA.do(func() { err = a.SetAnnounced(t.Context(), m) })
	return err
}

// nsThread runs functions on one OS thread switched into a namespace.
// Sockets belong to the namespace of the thread that creates them.
type nsThread struct {
	fns chan func()
}

func startNSThread(t *testing.T, name string) *nsThread {
	t.Helper()
	fns := make(chan func())
	ready := make(chan error)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Never unlocked: when this goroutine ends its thread is thrown away
		// instead of returning to the scheduler inside the test namespace.
		runtime.LockOSThread()
		h, err := netns.GetFromName(name)
		if err == nil {
			err = netns.Set(h)
			_ = h.Close()
		}
		ready <- err
		if err != nil {
			return
		}
		for fn := range fns {
			fn()
		}
	}()
	if err := <-ready; err != nil {
		t.Fatalf("entering namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		close(fns)
		<-done
	})
	return &nsThread{fns: fns}
}

// do runs fn in the namespace and waits for it.
func (n *nsThread) do(fn func()) {
	finished := make(chan struct{})
	n.fns <- func() {
		defer close(finished)
		fn()
	}
	<-finished
}
