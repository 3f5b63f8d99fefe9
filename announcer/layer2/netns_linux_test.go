package layer2

import (
	"testing"
	"time"

	"github.com/ironlb/ironlb/announcer/internal/netnstest"
)

// Interface names inside the test namespaces. They can't clash with the
// host's: each namespace has its own.
const (
	ifaceA = "l2a"
	ifaceB = "l2b"
)

// testNet is the network of netnstest: A runs the Announcer, B is a
// neighbour.
type testNet struct {
	*netnstest.Net
	// inA and inB run Go code inside the namespaces.
	inA, inB *netnstest.Thread
}

// newTestNet builds the topology and removes it when the test ends, whatever
// the outcome.
func newTestNet(t *testing.T) *testNet {
	t.Helper()
	netnstest.RequireRoot(t, "arping", "ndisc6")
	n := &testNet{Net: netnstest.New(t, "ilbl2", ifaceA, ifaceB)}
	n.inA = netnstest.StartThread(t, n.A.Netns)
	n.inB = netnstest.StartThread(t, n.B.Netns)
	return n
}

// execB runs a command in namespace B, killed after timeout.
func (n *testNet) execB(t *testing.T, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	return netnstest.Run(timeout, "ip", append([]string{"netns", "exec", n.B.Netns, name}, args...)...)
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
	var err error
	n.inA.Do(func() { err = a.SetAnnounced(t.Context(), netnstest.ParseAddrs(want)) })
	return err
}
