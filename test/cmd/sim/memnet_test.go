package main

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/ironlb/ironlb/announcer/membership"
)

// Two memberlists on a memoryNetwork join, see each other's meta and a
// crash; what goes to a stopped member is lost or refused, as over UDP and
// TCP.
func TestMemoryNetwork(t *testing.T) {
	network := newMemoryNetwork()
	key := []byte("ironlb-simulation-key-32-bytes!!")
	start := func(name, ip string) (*membership.Members, string) {
		addr := net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), 17946))
		m, err := membership.Start(membership.Config{NodeName: name, Port: 17946, SecretKey: key, Timing: membership.DefaultTiming(),
			Meta: membership.Meta{Interfaces: map[string][]string{"eth0": {ip + "/32"}}}, Transport: network.transport(addr)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Shutdown() })
		return m, addr.String()
	}
	a, addrA := start("a", "127.77.0.1")
	b, addrB := start("b", "127.77.0.2")
	if _, err := b.Join([]string{addrA}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to see b", func() bool { return len(a.Alive()) == 2 })
	if got := a.Alive()[1].Meta.Interfaces["eth0"]; len(got) != 1 || got[0] != "127.77.0.2/32" {
		t.Errorf("a sees b's meta as %v", got)
	}

	_ = b.Shutdown()
	waitFor(t, "a to see b fail", func() bool { return len(a.Alive()) == 1 })
	from := network.peer(addrA)
	if from == nil {
		t.Fatal("a left the network")
	}
	if _, err := from.DialAddressTimeout(memberlist.Address{Addr: addrB}, time.Second); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("a dial to a stopped member: %v", err)
	}
	if _, err := from.WriteToAddress([]byte("x"), memberlist.Address{Addr: addrB}); err != nil {
		t.Errorf("a packet to a stopped member: %v, want it lost silently", err)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10 s for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
