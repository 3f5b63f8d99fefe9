package membership

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func freeUDPPort(t *testing.T) int {
	t.Helper()
	// memberlist needs the same port free for TCP and UDP.
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

func startMember(t *testing.T, name string, meta Meta) (*Members, string) {
	t.Helper()
	port := freeUDPPort(t)
	m, err := Start(Config{NodeName: name, BindAddr: "127.0.0.1", Port: port, SecretKey: testKey, Timing: DefaultTiming(), Meta: meta})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.list.Shutdown() })
	return m, fmt.Sprintf("127.0.0.1:%d", port)
}

func names(ms []Member) string {
	var n []string
	for _, m := range ms {
		n = append(n, m.Name)
	}
	return strings.Join(n, ",")
}

// waitMembers waits (bounded) until m sees exactly want.
func waitMembers(t *testing.T, m *Members, want string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if names(m.Alive()) == want {
			return time.Since(start)
		}
		select {
		case <-m.Changes():
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("members = %s, want %s within %v", names(m.Alive()), want, within)
	return 0
}

func TestJoinMetaFailureAndLeave(t *testing.T) {
	a, addrA := startMember(t, "node-a", Meta{Interfaces: map[string][]string{"eth0": {"198.51.100.11/24"}}})
	b, _ := startMember(t, "node-b", Meta{})
	c, _ := startMember(t, "node-c", Meta{})
	for _, m := range []*Members{b, c} {
		if _, err := m.Join([]string{addrA}); err != nil {
			t.Fatal(err)
		}
	}
	waitMembers(t, a, "node-a,node-b,node-c", 10*time.Second)
	waitMembers(t, c, "node-a,node-b,node-c", 10*time.Second)
	if got := c.Alive()[0].Meta.Interfaces["eth0"]; len(got) != 1 || got[0] != "198.51.100.11/24" {
		t.Errorf("node-c sees node-a's meta as %v", got)
	}

	// Meta updates propagate.
	if err := b.UpdateMeta(Meta{Interfaces: map[string][]string{"eth1": {"203.0.113.0/24"}}}, time.Second); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(a.Alive()[1].Meta.Interfaces["eth1"]) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("meta update not seen")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The same meta again is not gossiped: UpdateMeta does not wait for a
	// broadcast, which a nanosecond would not see through (a gossip round
	// is 100 ms).
	if err := b.UpdateMeta(Meta{Interfaces: map[string][]string{"eth1": {"203.0.113.0/24"}}}, time.Nanosecond); err != nil {
		t.Errorf("publishing unchanged meta: %v", err)
	}
	if err := b.UpdateMeta(Meta{Interfaces: map[string][]string{"eth1": {"203.0.113.0/25"}}}, time.Nanosecond); err == nil {
		t.Errorf("publishing changed meta did not wait for its broadcast")
	}

	// A crash (no leave) is detected by failure detection.
	_ = c.list.Shutdown()
	took := waitMembers(t, a, "node-a,node-b", 10*time.Second)
	t.Logf("crash detected in %v", took)

	// A graceful leave is seen at once.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	if err := b.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	took = waitMembers(t, a, "node-a", 5*time.Second)
	t.Logf("leave seen %v after Leave returned (%v in all)", took, time.Since(start))
}

func TestWrongKeyCannotJoin(t *testing.T) {
	a, addrA := startMember(t, "node-a", Meta{})
	port := freeUDPPort(t)
	other, err := Start(Config{NodeName: "intruder", BindAddr: "127.0.0.1", Port: port, SecretKey: []byte("ffffffffffffffffffffffffffffffff"), Timing: DefaultTiming()})
	if err != nil {
		t.Fatal(err)
	}
	defer other.list.Shutdown()
	if _, err := other.Join([]string{addrA}); err == nil {
		t.Error("a member with another key joined")
	}
	if got := names(a.Alive()); got != "node-a" {
		t.Errorf("members = %s", got)
	}
}

func TestStartValidates(t *testing.T) {
	if _, err := Start(Config{NodeName: "x", SecretKey: []byte("short")}); err == nil || !strings.Contains(err.Error(), "16, 24 or 32 bytes") {
		t.Errorf("err = %v", err)
	}
	if _, err := Start(Config{SecretKey: testKey}); err == nil {
		t.Error("no error without a node name")
	}
}

// TestMetaFitsTheLimit: a node with more interfaces and prefixes than fit
// in memberlist's meta publishes what fits and names what it left out,
// instead of failing to start.
func TestMetaFitsTheLimit(t *testing.T) {
	small := Meta{Interfaces: map[string][]string{"eth0": {"198.51.100.0/25"}}}
	if data, dropped, err := small.encode(memberlist.MetaMaxSize); err != nil || len(dropped) != 0 || len(data) == 0 {
		t.Errorf("small meta: %d bytes, dropped %v, %v", len(data), dropped, err)
	}
	big := Meta{Interfaces: map[string][]string{}}
	for i := range 40 {
		big.Interfaces[fmt.Sprintf("vlan%02d", i)] = []string{fmt.Sprintf("198.51.100.%d/30", 4*i)}
	}
	data, dropped, err := big.encode(memberlist.MetaMaxSize)
	if err != nil || len(data) > memberlist.MetaMaxSize {
		t.Fatalf("big meta: %d bytes, %v", len(data), err)
	}
	if len(dropped) == 0 || dropped[len(dropped)-1] != "vlan39" || slices.Contains(dropped, "vlan00") {
		t.Errorf("dropped %v, want the last interfaces by name", dropped)
	}
	var back Meta
	if err := json.Unmarshal(data, &back); err != nil || len(back.Interfaces)+len(dropped) != 40 {
		t.Errorf("published %d interfaces and dropped %d of 40 (%v)", len(back.Interfaces), len(dropped), err)
	}
	// And a member starts with it.
	m, _ := startMember(t, "big", big)
	_ = m.Leave(context.Background())
}

// A speaker of the version before sends compressed packets; this one sends
// them plain. During a rolling upgrade both must still see each other, each
// other's meta, and a crash.
func TestGossipsWithACompressingPeer(t *testing.T) {
	a, addrA := startMember(t, "node-a", Meta{Interfaces: map[string][]string{"eth0": {"198.51.100.11/24"}}})
	if a.memberlistConfig(Config{Timing: DefaultTiming()}).EnableCompression {
		t.Fatal("this version compresses its packets")
	}
	old := &Members{changes: make(chan struct{}, 1), alive: map[string]aliveMember{}}
	if _, err := old.setMeta(Meta{Interfaces: map[string][]string{"eth0": {"198.51.100.12/24"}}}); err != nil {
		t.Fatal(err)
	}
	port := freeUDPPort(t)
	mlc := old.memberlistConfig(Config{NodeName: "node-old", BindAddr: "127.0.0.1", Port: port, SecretKey: testKey, Timing: DefaultTiming()})
	mlc.EnableCompression = true // as before
	list, err := memberlist.Create(mlc)
	if err != nil {
		t.Fatal(err)
	}
	old.list = list
	t.Cleanup(func() { _ = list.Shutdown() })
	if _, err := old.Join([]string{addrA}); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, a, "node-a,node-old", 10*time.Second)
	waitMembers(t, old, "node-a,node-old", 10*time.Second)
	if got := a.Alive()[1].Meta.Interfaces["eth0"]; !slices.Equal(got, []string{"198.51.100.12/24"}) {
		t.Errorf("node-a sees node-old's meta as %v", got)
	}
	if got := old.Alive()[0].Meta.Interfaces["eth0"]; !slices.Equal(got, []string{"198.51.100.11/24"}) {
		t.Errorf("node-old sees node-a's meta as %v", got)
	}
	// Failure detection (probes and their acks) works across the two.
	_ = list.Shutdown()
	waitMembers(t, a, "node-a", 10*time.Second)
}

// Alive stays sorted by name as members come, change and go.
func TestAliveStaysSorted(t *testing.T) {
	m := &Members{alive: map[string]aliveMember{}}
	node := func(name, prefix string) *memberlist.Node {
		meta, _ := json.Marshal(Meta{Interfaces: map[string][]string{"eth0": {prefix}}})
		return &memberlist.Node{Name: name, Addr: net.IPv4(127, 0, 0, 1), Port: 7946, Meta: meta}
	}
	for _, step := range []struct {
		do   func()
		want string
	}{
		{func() { m.record(node("n3", "198.51.100.0/24")) }, "n3"},
		{func() { m.record(node("n1", "198.51.100.0/24")) }, "n1,n3"},
		{func() { m.record(node("n2", "198.51.100.0/24")) }, "n1,n2,n3"},
		{func() { m.record(node("n2", "203.0.113.0/24")) }, "n1,n2,n3"},
		{func() { m.forget("n1") }, "n2,n3"},
		{func() { m.forget("n9") }, "n2,n3"},
		{func() { m.record(node("n0", "198.51.100.0/24")) }, "n0,n2,n3"},
	} {
		step.do()
		if got := names(m.Alive()); got != step.want {
			t.Fatalf("members = %s, want %s", got, step.want)
		}
		for _, n := range []string{"n0", "n1", "n2", "n3", "n9"} {
			if want := slices.Contains(strings.Split(step.want, ","), n); m.Has(n) != want {
				t.Fatalf("members %s: Has(%s) = %v", step.want, n, !want)
			}
		}
	}
	if got := m.Alive()[1].Meta.Interfaces["eth0"]; !slices.Equal(got, []string{"203.0.113.0/24"}) {
		t.Errorf("n2's meta after its update: %v", got)
	}
	alive := m.Alive()
	alive[0].Name = "changed by a caller"
	if names(m.Alive()) != "n0,n2,n3" {
		t.Error("a caller's change to Alive's result reached the members")
	}
}

// TestTimingForMembers: past 100 members the probe interval shortens so
// that memberlist's least suspicion timeout, SuspicionMult × log10(n)
// intervals, stays what it is at 100, down to 1.25 probe timeouts.
func TestTimingForMembers(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name    string
		timing  Timing
		members int
		want    time.Duration
	}{
		{"a small cluster", DefaultTiming(), 3, 100 * ms},
		{"100 members", DefaultTiming(), 100, 100 * ms},
		{"1,000 members", DefaultTiming(), 1000, 66666666},
		{"10,000 members: the floor", DefaultTiming(), 10000, 62500 * time.Microsecond},
		{"never longer than given", Timing{ProbeInterval: 100 * ms, ProbeTimeout: 90 * ms, SuspicionMult: 3}, 10000, 100 * ms},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.timing.ForMembers(tc.members)
			if got.ProbeInterval != tc.want {
				t.Errorf("probe interval %v, want %v", got.ProbeInterval, tc.want)
			}
			if got.ProbeTimeout != tc.timing.ProbeTimeout || got.GossipInterval != tc.timing.GossipInterval || got.SuspicionMult != tc.timing.SuspicionMult {
				t.Errorf("changed more than the probe interval: %+v from %+v", got, tc.timing)
			}
			if tc.members > 100 && got.ProbeInterval > tc.timing.ProbeTimeout*5/4 {
				least := func(tm Timing, n int) float64 {
					return float64(tm.SuspicionMult) * math.Log10(float64(n)) * tm.ProbeInterval.Seconds()
				}
				if a, b := least(got, tc.members), least(tc.timing, 100); math.Abs(a-b) > 1e-6 {
					t.Errorf("least suspicion timeout %.3fs at %d members, want %.3fs as at 100", a, tc.members, b)
				}
			}
		})
	}
}

func TestMemberSameMeta(t *testing.T) {
	eth0 := Meta{Interfaces: map[string][]string{"eth0": {"198.51.100.0/24"}}}
	eth1 := Meta{Interfaces: map[string][]string{"eth1": {"198.51.100.0/24"}}}
	published := func(meta Meta) Member {
		data, _ := json.Marshal(meta)
		return Member{Name: "n", Meta: meta, MetaKnown: true, encodedMeta: string(data)}
	}
	for _, tc := range []struct {
		name string
		a, b Member
		want bool
	}{
		{"published alike", published(eth0), published(eth0), true},
		{"published otherwise", published(eth0), published(eth1), false},
		{"not published: by content, alike", Member{Meta: eth0, MetaKnown: true}, Member{Meta: eth0, MetaKnown: true}, true},
		{"not published: by content, otherwise", Member{Meta: eth0, MetaKnown: true}, Member{Meta: eth1, MetaKnown: true}, false},
		{"one published", published(eth0), Member{Meta: eth1, MetaKnown: true}, false},
		{"known and not", published(Meta{}), Member{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.a.SameMeta(tc.b); got != tc.want {
				t.Errorf("SameMeta = %v, want %v", got, tc.want)
			}
		})
	}
}

// mutedTransport is UDP and TCP on loopback whose outgoing packets and
// streams can be dropped, as on a node whose sends are lost for a while.
// Streams others open are closed unread meanwhile: an answer on one would
// be a send (memberlist falls back to a ping over TCP).
type mutedTransport struct {
	*memberlist.NetTransport
	muted   atomic.Bool
	streams chan net.Conn
}

func newMutedTransport(t *testing.T, port int) *mutedTransport {
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}, BindPort: port})
	if err != nil {
		t.Fatal(err)
	}
	mt := &mutedTransport{NetTransport: nt, streams: make(chan net.Conn)}
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		for {
			select {
			case <-done:
				return
			case conn := <-nt.StreamCh():
				if mt.muted.Load() {
					conn.Close()
					continue
				}
				select {
				case mt.streams <- conn:
				case <-done:
					conn.Close()
					return
				}
			}
		}
	}()
	return mt
}

func (t *mutedTransport) StreamCh() <-chan net.Conn { return t.streams }

func (t *mutedTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.muted.Load() {
		return time.Now(), nil
	}
	return t.NetTransport.WriteTo(b, addr)
}

func (t *mutedTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.muted.Load() {
		return time.Now(), nil
	}
	return t.NetTransport.WriteToAddress(b, a)
}

func (t *mutedTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.muted.Load() {
		return nil, fmt.Errorf("muted")
	}
	return t.NetTransport.DialAddressTimeout(a, timeout)
}

// stuckMember makes the state a dead notice or a refutation ends: x sees
// every member alive, while the four others declared it dead (its sends
// were lost for a while) and, as nothing rescues it but a refutation (no
// push-pull in the test's time), do not see it.
// With notices false, no member sends dead notices.
func stuckMember(t *testing.T, notices bool) (others []*Members, x *Members) {
	t.Helper()
	// The four others confirm each other's suspicion of x and declare it
	// dead after the least wait (0.5 s), while x's suspicion of them,
	// which no one confirms, runs six times as long.
	var join string
	for _, name := range []string{"a", "b", "c", "d"} {
		port := freeUDPPort(t)
		m, err := Start(Config{NodeName: name, BindAddr: "127.0.0.1", Port: port, SecretKey: testKey, Timing: DefaultTiming(), pushPull: time.Hour, noDeadNotices: !notices})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Shutdown() })
		others = append(others, m)
		join = cmp.Or(join, fmt.Sprintf("127.0.0.1:%d", port))
	}
	port := freeUDPPort(t)
	transport := newMutedTransport(t, port)
	x, err := Start(Config{NodeName: "x", BindAddr: "127.0.0.1", Port: port, SecretKey: testKey, Timing: DefaultTiming(), Transport: transport, pushPull: time.Hour, noDeadNotices: !notices})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = x.Shutdown() })
	for _, m := range append(others[1:], x) {
		if _, err := m.Join([]string{join}); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range append(others, x) {
		waitMembers(t, m, "a,b,c,d,x", 5*time.Second)
	}
	transport.muted.Store(true)
	for _, m := range others {
		waitMembers(t, m, "a,b,c,d", 5*time.Second)
	}
	transport.muted.Store(false)
	if got := names(x.Alive()); got != "a,b,c,d,x" {
		t.Fatalf("x sees %s; the test needs it to see everyone", got)
	}
	return others, x
}

// TestRefuteRevivesAMemberTheOthersThinkDead: a member whose sends are lost
// while the others suspect it refutes the suspicion into the void, then
// ignores the dead message that follows (it names the incarnation before its
// refutation), and stays dead to the others while it sees them all alive.
// Refute brings it back at once.
func TestRefuteRevivesAMemberTheOthersThinkDead(t *testing.T) {
	others, x := stuckMember(t, false) // no notices: the refutation alone
	time.Sleep(2 * time.Second)
	if got := names(others[0].Alive()); got != "a,b,c,d" {
		t.Fatalf("a sees %s without a refutation: the state this test is about did not arise", got)
	}
	start := time.Now()
	x.Refute()
	for _, m := range others {
		waitMembers(t, m, "a,b,c,d,x", 2*time.Second)
	}
	t.Logf("every other member saw x alive again %v after it refuted", time.Since(start))
}

// TestADeclaredDeadMemberIsToldAndRefutes: the members that declared x
// dead tell it so; alive, it refutes, and they see it again within
// seconds, where nothing else would have brought it back.
func TestADeclaredDeadMemberIsToldAndRefutes(t *testing.T) {
	others, _ := stuckMember(t, true)
	start := time.Now()
	for _, m := range others {
		waitMembers(t, m, "a,b,c,d,x", 10*time.Second)
	}
	t.Logf("every other member saw x alive again %v after its sends came through", time.Since(start))
}
