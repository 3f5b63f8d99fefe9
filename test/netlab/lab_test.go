package netlab_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/netlab"
)

// Every test here needs root and fails (never skips) without it: CI runs
// them as root, and a silently skipped data-plane test proves nothing.

func TestLANConnectivity(t *testing.T) {
	t.Parallel()
	lab := netlab.NewForTest(t, netlab.Options{Nodes: 3, Client: true, Routers: []string{"r1"}, Client2: true})
	ctx := t.Context()
	cl, c2 := lab.Client(), lab.Client2()

	for i, n := range lab.Nodes() {
		wantV4 := netip.AddrFrom4([4]byte{198, 51, 100, byte(11 + i)})
		if n != lab.Node(i+1) || n.IPv4 != wantV4 || n.Iface != "eth0" || n.Netns != lab.ID+"-"+n.Name {
			t.Errorf("node %d: %+v, want IPv4 %s on eth0 in %s-n%d", i+1, n, wantV4, lab.ID, i+1)
		}
		// The MAC the lab reports is the interface's.
		out, err := n.Exec(ctx, "ip", "-br", "link", "show", "dev", "eth0")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, n.MAC.String()) {
			t.Errorf("%s: eth0 is %q, want MAC %s", n.Name, out, n.MAC)
		}
		for _, dst := range []netip.Addr{n.IPv4, n.IPv6} {
			if err := cl.Ping(ctx, dst); err != nil {
				t.Errorf("client → %s: %v", n.Name, err)
			}
			// Across the router: LAN2 → LAN and back.
			if err := c2.Ping(ctx, dst); err != nil {
				t.Errorf("client2 → %s via r1: %v", n.Name, err)
			}
		}
	}
	for _, dst := range []netip.Addr{lab.ControlPlane().IPv4, lab.ControlPlane().IPv6, lab.Router("r1").IPv4} {
		if err := cl.Ping(ctx, dst); err != nil {
			t.Errorf("client → %s: %v", dst, err)
		}
	}
	// accept_dad=0 makes link-local addresses usable at once.
	ll, err := lab.Node(1).LinkLocal()
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Ping(ctx, ll.WithZone(cl.Iface)); err != nil {
		t.Errorf("client → n1's link-local %s: %v", ll, err)
	}
	if out, err := lab.Node(1).Exec(ctx, "cat", "/proc/sys/net/ipv6/conf/eth0/accept_dad"); err != nil || strings.TrimSpace(out) != "0" {
		t.Errorf("n1 eth0 accept_dad = %q (%v), want 0", out, err)
	}
}

func TestNodeDeath(t *testing.T) {
	t.Parallel()
	lab := netlab.NewForTest(t, netlab.Options{Nodes: 2, Client: true})
	ctx := t.Context()
	cl, n1 := lab.Client(), lab.Node(1)

	unreachable := func(what string) {
		t.Helper()
		pctx, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
		defer cancel()
		if err := cl.Ping(pctx, n1.IPv4); err == nil {
			t.Errorf("%s: n1 still answers", what)
		}
	}
	reachable := func(what string) {
		t.Helper()
		if err := cl.Ping(ctx, n1.IPv4); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	reachable("before")
	if err := n1.SetLink(ctx, false); err != nil {
		t.Fatal(err)
	}
	unreachable("eth0 down")
	if err := n1.SetLink(ctx, true); err != nil {
		t.Fatal(err)
	}
	reachable("eth0 up again")
	if err := n1.SetSwitchPort(ctx, false); err != nil {
		t.Fatal(err)
	}
	unreachable("switch port down")
	if err := n1.SetSwitchPort(ctx, true); err != nil {
		t.Fatal(err)
	}
	reachable("switch port up again")
	// The other node never noticed.
	if err := cl.Ping(ctx, lab.Node(2).IPv6); err != nil {
		t.Error(err)
	}
}

// TestNoNodeAnswersForVIPs is the baseline every speaker test builds on: with
// the kube-proxy stand-in in place and no speaker, the nodes accept VIP
// traffic but nobody claims a VIP on the LAN.
func TestNoNodeAnswersForVIPs(t *testing.T) {
	t.Parallel()
	lab := netlab.NewForTest(t, netlab.Options{Nodes: 3, Client: true})
	ctx := t.Context()
	if err := lab.ServeVIPs(ctx, netlab.VIPv4, netlab.VIPv6, 80); err != nil {
		t.Fatal(err)
	}
	cl := lab.Client()
	const vip4, vip6 = "203.0.113.10", "2001:db8:200::10"

	// The probes work: nodes answer for their own addresses.
	n1 := lab.Node(1)
	if out, ok := arping(ctx, t, cl, n1.IPv4.String()); !ok || !strings.Contains(out, n1.MAC.String()) {
		t.Errorf("arping %s: no answer from %s:\n%s", n1.IPv4, n1.MAC, out)
	}
	if mac := ndisc6(ctx, t, cl, n1.IPv6.String()); mac != n1.MAC.String() {
		t.Errorf("ndisc6 %s = %q, want %s", n1.IPv6, mac, n1.MAC)
	}
	// Nobody answers for a VIP.
	if out, ok := arping(ctx, t, cl, vip4); ok {
		t.Errorf("arping %s got an answer before any speaker runs:\n%s", vip4, out)
	}
	if mac := ndisc6(ctx, t, cl, vip6); mac != "" {
		t.Errorf("ndisc6 %s answered by %s before any speaker runs", vip6, mac)
	}

	// Each node serves its own address…
	for _, n := range lab.Nodes() {
		for _, addr := range []netip.Addr{n.IPv4, n.IPv6} {
			body, err := cl.HTTPGet(ctx, "http://"+netip.AddrPortFrom(addr, 80).String()+"/")
			if err != nil || body != netlab.NodeAnswer(n.Name) {
				t.Errorf("GET %s = %q, %v; want %q", addr, body, err, netlab.NodeAnswer(n.Name))
			}
		}
	}
	// …and accepts VIP traffic once something points the client at it, as
	// an ARP/NDP answer from a speaker will.
	for _, tc := range []struct {
		vip  string
		node *netlab.Host
	}{
		{vip4, lab.Node(2)},
		{vip6, lab.Node(3)},
	} {
		if _, err := cl.Exec(ctx, "ip", "neigh", "replace", tc.vip, "lladdr", tc.node.MAC.String(), "dev", cl.Iface, "nud", "permanent"); err != nil {
			t.Fatal(err)
		}
		url := "http://" + netip.AddrPortFrom(netip.MustParseAddr(tc.vip), 80).String() + "/"
		if body, err := cl.HTTPGet(ctx, url); err != nil || body != netlab.NodeAnswer(tc.node.Name) {
			t.Errorf("GET %s with the neighbour entry on %s = %q, %v", url, tc.node.Name, body, err)
		}
		if _, err := cl.Exec(ctx, "ip", "neigh", "del", tc.vip, "dev", cl.Iface); err != nil {
			t.Fatal(err)
		}
	}
	// Without it, the VIP is unreachable.
	gctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	if body, err := cl.HTTPGet(gctx, "http://"+vip4+"/"); err == nil {
		t.Errorf("GET %s without any announcement answered %q", vip4, body)
	}

	if err := lab.ServeVIPs(ctx, netip.MustParsePrefix("198.51.100.0/25"), netip.Prefix{}, 81); err == nil {
		t.Error("ServeVIPs accepted a range outside the VIP ranges")
	}
}

// arping asks for addr from h; it returns arping's output and whether any
// reply came.
func arping(ctx context.Context, t *testing.T, h *netlab.Host, addr string) (string, bool) {
	t.Helper()
	out, err := h.Exec(ctx, "arping", "-c", "3", "-W", "0.3", "-w", "1", "-i", h.Iface, addr)
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return strings.ToLower(out), true
	case errors.As(err, &exitErr) && exitErr.ExitCode() == 1:
		return strings.ToLower(out), false
	default:
		t.Fatalf("arping: %v", err)
		return "", false
	}
}

// ndisc6 solicits addr from h; it returns the advertised MAC, or "".
func ndisc6(ctx context.Context, t *testing.T, h *netlab.Host, addr string) string {
	t.Helper()
	out, err := h.Exec(ctx, "ndisc6", "-1", "-q", "-r", "2", "-w", "400", addr, h.Iface)
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return strings.ToLower(strings.TrimSpace(out))
	case errors.As(err, &exitErr) && exitErr.ExitCode() == 2:
		return ""
	default:
		t.Fatalf("ndisc6: %v", err)
		return ""
	}
}

func TestCloseRemovesEverything(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	lab, err := netlab.New(ctx, netlab.Options{Nodes: 2, Client: true, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = lab.Close()
		}
	})
	if err := lab.ServeVIPs(ctx, netlab.VIPv4, netlab.VIPv6, 80); err != nil {
		t.Fatal(err)
	}
	// A stray process in a node, neither stopped by the test nor tied to its
	// lifetime: Close must end it, or the namespace would outlive its name.
	stray := exec.Command("ip", "netns", "exec", lab.Node(1).Netns, "sleep", "300")
	if err := stray.Start(); err != nil {
		t.Fatal(err)
	}
	strayDone := make(chan error, 1)
	go func() { strayDone <- stray.Wait() }()
	t.Cleanup(func() { _ = stray.Process.Kill() })
	// Until ip has switched namespace and exec'd sleep, nothing is in n1.
	if err := framework.WaitFor(ctx, 10*time.Second, 10*time.Millisecond, func(context.Context) (bool, error) {
		comm, err := os.ReadFile("/proc/" + strconv.Itoa(stray.Process.Pid) + "/comm")
		return err == nil && strings.TrimSpace(string(comm)) == "sleep", nil
	}); err != nil {
		t.Fatalf("stray process never became sleep: %v", err)
	}
	if _, err := lab.Client().HTTPGet(ctx, "http://198.51.100.11/"); err != nil {
		t.Fatal(err)
	}

	if err := lab.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	closed = true
	if err := lab.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	select {
	case <-strayDone:
	case <-time.After(10 * time.Second):
		t.Error("stray process in n1 survived Close")
	}
	if left := namespacesWithPrefix(t, lab.ID+"-"); len(left) > 0 {
		t.Errorf("namespaces left after Close: %v", left)
	}
	for _, path := range []string{lab.Dir, "/run/ironlb-netlab/" + lab.ID + ".pid"} {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists after Close (%v)", path, err)
		}
	}
	if err := lab.ServeVIPs(ctx, netlab.VIPv4, netlab.VIPv6, 80); err == nil {
		t.Error("ServeVIPs on a closed lab succeeded")
	}
}

// namespacesWithPrefix lists the named network namespaces starting with
// prefix, as `ip netns list` shows them.
func namespacesWithPrefix(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	var found []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			found = append(found, f[0])
		}
	}
	return found
}

func TestOptionsValidation(t *testing.T) {
	for _, opts := range []netlab.Options{
		{Nodes: -1},
		{Nodes: netlab.MaxNodes + 1},
		{Routers: []string{"R1"}},
		{Routers: []string{"n2"}},
		{Routers: []string{"cp"}},
		{Routers: []string{"r1", "r1"}},
		{Routers: []string{"toolongname"}},
		{Client2: true},
	} {
		if lab, err := netlab.New(t.Context(), opts); err == nil {
			_ = lab.Close()
			t.Errorf("New(%+v) succeeded", opts)
		}
	}
}
