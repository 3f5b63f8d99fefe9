// Package membership tells each speaker which other speakers are alive, and
// what they can announce, through hashicorp/memberlist. Failure detection is
// tuned for a LAN: a killed or cut-off speaker is noticed in about a second,
// where memberlist's defaults take five to six.
package membership

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"k8s.io/klog/v2"
)

// DefaultPort is memberlist's customary port.
const DefaultPort = 7946

// Timing tunes failure detection. A killed member is first missed by
// whichever member probes it next: every member probes each other once a
// round, at a random place in it, so that wait is about one probe interval
// on average and 4.6 at the 99th percentile. The prober then tries through
// others until the interval ends, suspects it, and memberlist declares it
// dead SuspicionMult × max(1, log10(n)) probe intervals later, once
// SuspicionMult−2 other members have confirmed the suspicion (when the
// cluster has that many).
type Timing struct {
	ProbeInterval  time.Duration
	ProbeTimeout   time.Duration
	GossipInterval time.Duration
	SuspicionMult  int
}

// DefaultTiming is tuned for a LAN with sub-millisecond round trips: a
// killed member is declared dead 0.5 s after its first missed probe on up
// to 10 nodes and 1.0 s at 100 (after three confirmations), and short probe
// intervals keep the wait for that first miss short. Dead is then gossiped
// every 50 ms. On 100 simulated speakers every address of a killed node had
// its new owner within 1.27 / 1.57 s (p50 / p99 over 40 kills), against
// 1.66 / 2.35 s with a probe of 200 ms, timeout 100 ms, gossip 100 ms and
// suspicion ×3 (docs/scale.md).
func DefaultTiming() Timing {
	return Timing{ProbeInterval: 100 * time.Millisecond, ProbeTimeout: 50 * time.Millisecond, GossipInterval: 50 * time.Millisecond, SuspicionMult: 5}
}

// timingReferenceMembers is the cluster size up to which ForMembers leaves
// the timing as it is.
const timingReferenceMembers = 100

// ForMembers is t for a cluster of n members. memberlist declares a
// suspected member dead after SuspicionMult × log10(n) probe intervals, so
// with fixed timers failover grows with the cluster: with the defaults
// 1.0 s at 100 members, 1.5 s at 1,000. Past 100 members the probe interval
// shrinks so that wait stays what it is at 100, down to 1.25 probe
// timeouts (after a direct probe times out, the rest of the interval is
// the indirect probes'). Each member then probes more often (15 probes a
// second at 1,000 members rather than 10), a cost per member that stops
// growing there. A member that only missed a probe is not declared dead
// sooner for it: memberlist's suspicion starts at six times that wait and
// shortens only as other members confirm it.
func (t Timing) ForMembers(n int) Timing {
	if n <= timingReferenceMembers {
		return t
	}
	scaled := time.Duration(float64(t.ProbeInterval) * math.Log10(timingReferenceMembers) / math.Log10(float64(n)))
	t.ProbeInterval = min(t.ProbeInterval, max(scaled, t.ProbeTimeout*5/4))
	return t
}

// Config configures a member.
type Config struct {
	// NodeName identifies this member; the Kubernetes node name.
	NodeName string
	// BindAddr and Port are where memberlist listens (UDP and TCP).
	BindAddr string
	Port     int
	// AdvertiseAddr is the address others reach this member at; empty lets
	// memberlist pick from BindAddr.
	AdvertiseAddr string
	// SecretKey encrypts all gossip (16, 24 or 32 bytes).
	SecretKey []byte
	Timing    Timing
	// Meta is published to every member; see Member.Meta.
	Meta Meta
	// Transport carries the packets and streams; nil is UDP and TCP on
	// BindAddr:Port. The simulation (test/cmd/sim) gives an in-memory
	// network, to run hundreds of members in one process.
	Transport memberlist.NodeAwareTransport
	// pushPull, when set, replaces memberlist's push-pull interval (tests
	// that must not be rescued by one).
	pushPull time.Duration
	// noDeadNotices, in tests, keeps this member from telling the members
	// it declares dead (deadnotice.go).
	noDeadNotices bool
}

// Meta is what a member publishes about itself: its interfaces and the
// prefixes on them, so every speaker can tell which nodes may announce an
// address without asking them.
type Meta struct {
	Interfaces map[string][]string `json:"if"`
}

// encode returns meta's encoding within limit bytes: when the whole does
// not fit, interfaces are left out, the last by name first, and named.
func (meta Meta) encode(limit int) ([]byte, []string, error) {
	names := slices.Sorted(maps.Keys(meta.Interfaces))
	var dropped []string
	for {
		data, err := json.Marshal(meta)
		if err != nil || len(data) <= limit || len(names) == 0 {
			if err == nil && len(data) > limit {
				err = fmt.Errorf("membership: node meta is %d bytes, over memberlist's limit of %d", len(data), limit)
			}
			slices.Reverse(dropped)
			return data, dropped, err
		}
		last := names[len(names)-1]
		names = names[:len(names)-1]
		dropped = append(dropped, last)
		trimmed := make(map[string][]string, len(names))
		for _, n := range names {
			trimmed[n] = meta.Interfaces[n]
		}
		meta = Meta{Interfaces: trimmed}
	}
}

// Member is an alive member as others see it.
type Member struct {
	Name string
	Addr string
	Meta Meta
	// MetaKnown is false until the member's meta has reached this node.
	MetaKnown bool
	// encodedMeta is Meta as the member published it, to compare cheaply.
	encodedMeta string
}

// SameMeta reports whether m and o publish the same meta. Members that came
// through membership compare as published, others by content. Every
// speaker compares each member's meta on each membership change: by
// content that was a tenth of a thousand simulated speakers' CPU.
func (m Member) SameMeta(o Member) bool {
	if m.MetaKnown != o.MetaKnown {
		return false
	}
	if m.encodedMeta != "" && o.encodedMeta != "" {
		return m.encodedMeta == o.encodedMeta
	}
	return maps.EqualFunc(m.Meta.Interfaces, o.Meta.Interfaces, slices.Equal[[]string])
}

// Members is this node's view of the cluster of speakers.
type Members struct {
	list    *memberlist.Memberlist
	port    int
	changes chan struct{}

	mu   sync.Mutex
	meta []byte
	// alive is this node's own copy of the alive members (joinable
	// host:port → member by name), kept by the event delegate. memberlist's
	// Members() hands out its internal nodes, whose fields it keeps
	// rewriting after the call returns; the delegate runs under its lock.
	alive map[string]aliveMember
	// sorted is alive's members by name, kept as they change: every
	// speaker reads them on each membership change, and sorting a
	// thousand each time was a tenth of a simulated cluster's CPU.
	sorted []Member
	// refutedAt is when this member last refuted a dead notice.
	refutedAt time.Time
	// deadNoticeWaits are the waits before each dead notice
	// (deadNoticeBackoff on memberlist's clock); none when it sends none.
	deadNoticeWaits []time.Duration
	// stopped is closed once this member leaves or shuts down.
	stopped  chan struct{}
	stopOnce sync.Once
}

type aliveMember struct {
	Member
	hostPort string
}

// Start joins nothing yet: it listens, and reports changes on Changes.
func Start(cfg Config) (*Members, error) {
	if cfg.NodeName == "" {
		return nil, fmt.Errorf("membership: a node name is required")
	}
	switch len(cfg.SecretKey) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("membership: the secret key must be 16, 24 or 32 bytes, not %d", len(cfg.SecretKey))
	}
	m := &Members{port: cfg.Port, changes: make(chan struct{}, 1), alive: map[string]aliveMember{}, stopped: make(chan struct{})}
	if !cfg.noDeadNotices {
		for _, intervals := range deadNoticeBackoff {
			m.deadNoticeWaits = append(m.deadNoticeWaits, intervals*cfg.Timing.ProbeInterval)
		}
	}
	if _, err := m.setMeta(cfg.Meta); err != nil {
		return nil, err
	}
	mlc := m.memberlistConfig(cfg)
	list, err := memberlist.Create(mlc)
	if err != nil {
		return nil, fmt.Errorf("membership: listening on %s: %w", net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.Port)), err)
	}
	m.list = list
	return m, nil
}

// memberlistConfig is memberlist's LAN configuration with this member's
// name, addresses, key and timing.
func (m *Members) memberlistConfig(cfg Config) *memberlist.Config {
	mlc := memberlist.DefaultLANConfig()
	mlc.Name = cfg.NodeName
	mlc.BindAddr = cfg.BindAddr
	mlc.BindPort = cfg.Port
	mlc.AdvertisePort = cfg.Port
	mlc.AdvertiseAddr = cfg.AdvertiseAddr
	mlc.SecretKey = cfg.SecretKey
	mlc.ProbeInterval = cfg.Timing.ProbeInterval
	mlc.ProbeTimeout = cfg.Timing.ProbeTimeout
	mlc.GossipInterval = cfg.Timing.GossipInterval
	mlc.SuspicionMult = cfg.Timing.SuspicionMult
	// Packets go uncompressed. memberlist compresses each with LZW, a
	// fresh 64 KB table per packet: it was 29 % of the CPU of 100
	// simulated speakers (docs/scale.md), to shrink packets of a few
	// hundred bytes on a LAN. Peers still read compressed packets, so
	// speakers of an older version and this one gossip alike.
	mlc.EnableCompression = false
	if cfg.Transport != nil {
		mlc.Transport = cfg.Transport
	}
	if cfg.pushPull > 0 {
		mlc.PushPullInterval = cfg.pushPull
	}
	mlc.Events = &eventDelegate{m}
	mlc.Delegate = &metaDelegate{m}
	mlc.Logger = nil
	mlc.LogOutput = klogWriter{}
	return mlc
}

// Join contacts the given addresses (host, or host:port when a member
// listens on another port) and returns how many answered. Members already
// known are skipped, so calling it on every node change is cheap.
func (m *Members) Join(addrs []string) (int, error) {
	known := map[string]bool{}
	m.mu.Lock()
	for _, a := range m.alive {
		known[a.hostPort] = true
	}
	m.mu.Unlock()
	var fresh []string
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			a = net.JoinHostPort(a, strconv.Itoa(m.port))
		}
		if !known[a] {
			fresh = append(fresh, a)
		}
	}
	if len(fresh) == 0 {
		return 0, nil
	}
	return m.list.Join(fresh)
}

// Alive returns the alive members, this one included, sorted by name.
func (m *Members) Alive() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.sorted)
}

// Has reports whether name is an alive member in this node's view.
func (m *Members) Has(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, found := m.position(name)
	return found
}

// record copies a member's current state; the delegate calls it while
// memberlist holds its node lock, so n is consistent.
func (m *Members) record(n *memberlist.Node) {
	var meta Meta
	known := json.Unmarshal(n.Meta, &meta) == nil // an unreadable meta reads as not yet known
	a := aliveMember{
		Member:   Member{Name: n.Name, Addr: n.Addr.String(), Meta: meta, MetaKnown: known, encodedMeta: string(n.Meta)},
		hostPort: net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))),
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.alive[n.Name] = a
	if i, found := m.position(n.Name); found {
		m.sorted[i] = a.Member
	} else {
		m.sorted = slices.Insert(m.sorted, i, a.Member)
	}
}

func (m *Members) forget(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.alive, name)
	if i, found := m.position(name); found {
		m.sorted = slices.Delete(m.sorted, i, i+1)
	}
}

// position is where name is, or would go, in sorted.
func (m *Members) position(name string) (int, bool) {
	return slices.BinarySearchFunc(m.sorted, name, func(a Member, name string) int { return strings.Compare(a.Name, name) })
}

// Changes receives a value after members join, leave or change their meta.
// Several changes may collapse into one notification.
func (m *Members) Changes() <-chan struct{} { return m.changes }

// UpdateMeta publishes new meta to every member. Meta as it is already is
// not sent again: each update is gossiped to every member, and a node's
// addresses change (and its speaker reads its interfaces again) far more
// often than what it publishes of them.
func (m *Members) UpdateMeta(meta Meta, timeout time.Duration) error {
	changed, err := m.setMeta(meta)
	if err != nil || !changed {
		return err
	}
	return m.list.UpdateNode(timeout)
}

// Refute tells every member that this one is alive, with a new
// incarnation that overrides any suspect or dead message about it. memberlist
// refutes such a message itself when it reaches this member, unless the
// message names an older incarnation than this member's own: a member that
// refuted a suspicion whose answer was lost ignores the dead message that
// follows, and stays dead to the others while it sees them all alive, until
// a push-pull merges the views (tens of seconds). The speaker calls this when
// the API says another speaker marked it Unreachable. It does not wait:
// memberlist queues the message at once, and then waits for it to be sent
// its full number of times, which only holds the caller (that wait's
// timeout is UpdateNode's only error).
func (m *Members) Refute() {
	_ = m.list.UpdateNode(time.Nanosecond)
}

// Leave tells the others this member is going, so they stop counting on it
// at once instead of waiting for failure detection, then stops.
func (m *Members) Leave(ctx context.Context) error {
	timeout := time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	// Stopped first: a dead notice that reaches a leaving member must not
	// make it refute, alive again to the others while it withdraws.
	m.stopOnce.Do(func() { close(m.stopped) })
	err := m.list.Leave(timeout)
	if shutdownErr := m.list.Shutdown(); err == nil {
		err = shutdownErr
	}
	return err
}

// Shutdown stops without leaving: to the others this member crashed, and
// they find it gone after their failure detection (a simulation's kill).
func (m *Members) Shutdown() error {
	m.stopOnce.Do(func() { close(m.stopped) })
	return m.list.Shutdown()
}

func (m *Members) notify() {
	select {
	case m.changes <- struct{}{}:
	default: // a notification is already pending
	}
}

func (m *Members) setMeta(meta Meta) (changed bool, err error) {
	data, dropped, err := meta.encode(memberlist.MetaMaxSize)
	if err != nil {
		return false, err
	}
	if len(dropped) > 0 {
		// Better a node that cannot announce on some interfaces, and says
		// so, than one that cannot start or update at all.
		klog.ErrorS(nil, "Interfaces left out of this node's published meta: it is over memberlist's limit; addresses on their subnets are announced by other nodes only",
			"limit", memberlist.MetaMaxSize, "interfaces", dropped)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	changed = !bytes.Equal(m.meta, data)
	m.meta = data
	return changed, nil
}

type eventDelegate struct{ m *Members }

func (d *eventDelegate) NotifyJoin(n *memberlist.Node) {
	klog.V(2).InfoS("Member joined", "member", n.Name, "addr", n.Addr)
	d.m.record(n)
	d.m.notify()
}

func (d *eventDelegate) NotifyLeave(n *memberlist.Node) {
	klog.V(2).InfoS("Member left or failed", "member", n.Name, "addr", n.Addr)
	d.m.forget(n.Name)
	d.m.notify()
	// memberlist does not say here whether n left or was declared dead
	// (it hands over its Node, whose State it does not keep): one that
	// left answers no notice.
	go d.m.tellDead(deadCopy(n))
}

func (d *eventDelegate) NotifyUpdate(n *memberlist.Node) {
	klog.V(2).InfoS("Member updated", "member", n.Name)
	d.m.record(n)
	d.m.notify()
}

// metaDelegate publishes Meta and hands user messages (dead notices) over;
// ironlb sends no other gossip.
type metaDelegate struct{ m *Members }

func (d *metaDelegate) NodeMeta(limit int) []byte {
	d.m.mu.Lock()
	defer d.m.mu.Unlock()
	if len(d.m.meta) > limit {
		return nil
	}
	return d.m.meta
}
func (d *metaDelegate) NotifyMsg(msg []byte)                       { d.m.noticed(msg) }
func (d *metaDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *metaDelegate) LocalState(join bool) []byte                { return nil }
func (d *metaDelegate) MergeRemoteState(buf []byte, join bool)     {}

// klogWriter sends memberlist's own log lines to klog at V(4): they are
// chatty, and membership changes are already logged above.
type klogWriter struct{}

func (klogWriter) Write(p []byte) (int, error) {
	klog.V(4).InfoS(string(trimNewline(p)), "component", "memberlist")
	return len(p), nil
}

func trimNewline(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}
