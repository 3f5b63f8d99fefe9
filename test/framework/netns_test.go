package framework_test

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/ironlb/ironlb/test/framework"
)

func TestNetnsDialerAndListener(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("creating a network namespace needs root")
	}
	ns := "ironlb-fw-netns-" + strconv.Itoa(os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}

	// The caller's thread stays where it was.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()

	l, err := framework.ListenInNetns(ns, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, "hello from "+ns)
			c.Close()
		}
	}()
	addr := l.Addr().String()

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	c, err := framework.NetnsDialer(ns)(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || string(got) != "hello from "+ns {
		t.Errorf("read %q, %v", got, err)
	}
	// The namespace's loopback is its own: the same address from here
	// reaches nothing of the listener's.
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		b, _ := io.ReadAll(c)
		c.Close()
		if strings.Contains(string(b), ns) {
			t.Errorf("dialled %s from the test's namespace and reached the listener in %s", addr, ns)
		}
	}

	after, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	if !after.Equal(before) {
		t.Errorf("caller's thread moved from %s to %s", before, after)
	}

	if _, err := framework.NetnsDialer(ns)(ctx, "tcp", "localhost:80"); err == nil || !strings.Contains(err.Error(), "IP addresses") {
		t.Errorf("dialling a host name = %v, want a refusal", err)
	}
	if err := framework.InNetns("", func() error { return nil }); err == nil {
		t.Error("InNetns with an empty name ran")
	}
}

func TestBindAddressNeedsNetns(t *testing.T) {
	_, err := framework.StartControlPlane(t.Context(), framework.Options{BindAddress: "198.51.100.2"})
	if err == nil || !strings.Contains(err.Error(), "needs Netns") {
		t.Fatalf("StartControlPlane with a non-loopback BindAddress and no Netns = %v, want a refusal", err)
	}
}
