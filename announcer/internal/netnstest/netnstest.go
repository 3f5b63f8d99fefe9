// Package netnstest builds the two-host network that the announcer's data
// plane tests run on: two network namespaces, A (the node under test) and B
// (a neighbour), joined by a veth pair and numbered from documentation
// ranges only, so nothing on the machine running the tests is touched.
//
// It needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW) and ip(8), and
// fails the test rather than skip it without them: CI runs as root, and a
// silently skipped data plane test would hide regressions.
package netnstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The addresses of A and B on their link, 198.51.100.0/24 and
// 2001:db8:1::/64.
const (
	A4 = "198.51.100.1"
	A6 = "2001:db8:1::1"
	B4 = "198.51.100.2"
	B6 = "2001:db8:1::2"
)

// commandTimeout bounds each ip(8) call.
const commandTimeout = 10 * time.Second

// Net is the two hosts. It is deleted when the test ends.
type Net struct {
	A, B Host
}

// Host is one end of the link.
type Host struct {
	// Netns is the name of the host's network namespace.
	Netns string
	// Iface is the host's end of the veth pair.
	Iface string
	// MAC is Iface's Ethernet address, lower case as ip(8) prints it.
	MAC string
}

// RequireRoot fails the test unless it runs as root with ip(8) and the given
// tools installed.
func RequireRoot(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("this test builds network namespaces and needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW); run it as root")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("this test needs %s; install the test dependencies with `make deps`: %v", tool, err)
		}
	}
}

// New builds the network, with A's interface called ifaceA and B's ifaceB,
// and deletes it when the test ends, whatever the outcome. The namespaces
// are named after prefix, this process and a random suffix, so parallel
// tests and test binaries never collide.
func New(t *testing.T, prefix, ifaceA, ifaceB string) *Net {
	t.Helper()
	RequireRoot(t)
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	name := fmt.Sprintf("%s-%d-%s", prefix, os.Getpid(), hex.EncodeToString(suffix))
	n := &Net{
		A: Host{Netns: name + "-a", Iface: ifaceA},
		B: Host{Netns: name + "-b", Iface: ifaceB},
	}
	// Registered before anything exists, so a failure halfway still cleans
	// up. Deleting a namespace deletes its veth end, and with it the pair.
	t.Cleanup(func() {
		for _, ns := range []string{n.A.Netns, n.B.Netns} {
			if out, err := Run(commandTimeout, "ip", "netns", "del", ns); err != nil && !strings.Contains(out, "No such file") {
				t.Errorf("deleting namespace %s: %v: %s", ns, err, out)
			}
		}
	})
	n.IP(t, "netns", "add", n.A.Netns)
	n.IP(t, "netns", "add", n.B.Netns)
	n.IP(t, "link", "add", ifaceA, "netns", n.A.Netns, "type", "veth", "peer", "name", ifaceB, "netns", n.B.Netns)
	for _, side := range []struct {
		Host
		v4, v6 string
	}{
		{n.A, A4 + "/24", A6 + "/64"},
		{n.B, B4 + "/24", B6 + "/64"},
	} {
		// No DAD, so the link-local address, and with it IPv6, is usable at
		// once: the kernel sends no solicitation while it is tentative.
		n.Sysctl(t, side.Netns, "net/ipv6/conf/"+side.Iface+"/dad_transmits", "0")
		n.IP(t, "-n", side.Netns, "addr", "add", side.v4, "dev", side.Iface)
		n.IP(t, "-n", side.Netns, "addr", "add", side.v6, "dev", side.Iface, "nodad")
		n.IP(t, "-n", side.Netns, "link", "set", side.Iface, "up")
	}
	for _, h := range []*Host{&n.A, &n.B} {
		n.waitIPv6(t, *h)
		h.MAC = n.mac(t, *h)
	}
	return n
}

// IP runs ip(8) in the test's own namespace (aim elsewhere with -n) and
// returns its output, failing the test on error.
func (n *Net) IP(t *testing.T, args ...string) string {
	t.Helper()
	out, err := Run(commandTimeout, "ip", args...)
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out
}

// Sysctl sets a sysctl in namespace ns, key in /proc/sys path form.
func (n *Net) Sysctl(t *testing.T, ns, key, value string) {
	t.Helper()
	n.IP(t, "netns", "exec", ns, "sh", "-c", "echo "+value+" > /proc/sys/"+key)
}

// NeighB returns B's neighbour entry for addr, for example
// "198.51.100.10 dev vb lladdr 02:... STALE", lower case.
func (n *Net) NeighB(t *testing.T, addr string) string {
	t.Helper()
	return strings.ToLower(strings.TrimSpace(n.IP(t, "-n", n.B.Netns, "neigh", "show", addr, "dev", n.B.Iface)))
}

// WaitNeighB waits until B's neighbour entry for addr satisfies ok, and
// returns how long that took. It fails the test after timeout, saying that it
// wanted what.
func (n *Net) WaitNeighB(t *testing.T, addr string, timeout time.Duration, what string, ok func(entry string) bool) time.Duration {
	t.Helper()
	start := time.Now()
	var entry string
	for time.Since(start) < timeout {
		if entry = n.NeighB(t, addr); ok(entry) {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("B's neighbour entry for %s is %q after %v, want %s", addr, entry, timeout, what)
	return 0
}

// waitIPv6 waits until IPv6 is up on h's interface: until then sending to a
// multicast group fails with ENETUNREACH.
func (n *Net) waitIPv6(t *testing.T, h Host) {
	t.Helper()
	var routes string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		routes = n.IP(t, "-n", h.Netns, "-6", "route", "show", "table", "local", "dev", h.Iface)
		if strings.Contains(routes, "ff00::/8") {
			return
		}
	}
	t.Fatalf("IPv6 not up on %s in %s after 5s; local routes:\n%s", h.Iface, h.Netns, routes)
}

// mac reads the MAC of h's interface.
func (n *Net) mac(t *testing.T, h Host) string {
	t.Helper()
	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal([]byte(n.IP(t, "-j", "-n", h.Netns, "link", "show", h.Iface)), &links); err != nil || len(links) != 1 {
		t.Fatalf("reading %s's MAC: %v %v", h.Iface, links, err)
	}
	return strings.ToLower(links[0].Address)
}

// Run runs a command, killed after timeout, and returns its combined output.
// It needs no *testing.T, so cleanups may use it after the test's context
// has ended.
func Run(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// ParseAddrs turns a test's wanted set, address to interface, into the form
// the announcers take.
func ParseAddrs(want map[string]string) map[netip.Addr]string {
	m := make(map[netip.Addr]string, len(want))
	for addr, iface := range want {
		m[netip.MustParseAddr(addr)] = iface
	}
	return m
}
