package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"

	"github.com/ironlb/ironlb/announcer"
	"github.com/ironlb/ironlb/announcer/membership"
	"github.com/ironlb/ironlb/announcer/report"
	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/test/framework"
)

// simulation is the running speakers.
type simulation struct {
	tracker *tracker
	mu      sync.Mutex
	running map[string]*simSpeaker
	// bgpAdvertised counts, per node, the bgp addresses its speaker
	// advertises: every node advertises each one, so there is no owner to
	// track, only whether each has caught up.
	bgpAdvertised sync.Map // node → int
	// network carries the memberlists' packets with -transport memory;
	// nil over loopback UDP.
	network *memoryNetwork
}

type simSpeaker struct {
	speaker    *announcer.Speaker
	members    *membership.Members
	cancel     context.CancelFunc
	stopStatus func()
	done       chan struct{}
}

// startSpeakers starts one speaker per node, o.startBatch at a time, each
// batch once the previous one has joined. In a cluster every speaker starts
// on a CPU of its own; here they share two, and a hundred starting at once
// (each electing, writing its status and Events) starve every memberlist's
// probes into false failures that feed on themselves.
func startSpeakers(ctx context.Context, o options, client kubernetes.Interface, dyn dynamic.Interface, meta metadata.Interface, w *world, progress func(format string, args ...any)) (*simulation, error) {
	sim := &simulation{tracker: newTracker(), running: map[string]*simSpeaker{}}
	sim.tracker.explain = sim.views
	shared := announcer.NewInformers(client, config.DefaultNamespace, config.DefaultConfigMapName)
	key := []byte("ironlb-simulation-key-32-bytes!!")
	timing := o.timing()
	var network *memoryNetwork
	if o.transport == "memory" {
		network = newMemoryNetwork()
		sim.network = network
	}
	meta0 := membership.Meta{Interfaces: map[string][]string{"eth0": {netip.PrefixFrom(servicePrefix.Addr(), 64).String()}}}
	// A batch joins within a minute of the speakers' clock.
	joinBound := time.Duration(float64(time.Minute) * o.dilate)
	for i, name := range w.nodes {
		if i > 0 && i%o.startBatch == 0 {
			if err := sim.waitReady(ctx, joinBound); err != nil {
				sim.stopAll()
				return nil, err
			}
			progress("%d speakers joined", i)
		}
		mc := membership.Config{
			NodeName: name, BindAddr: w.ips[name].String(), Port: o.port, AdvertiseAddr: w.ips[name].String(),
			SecretKey: key, Timing: dilated(timing, o.dilate), Meta: meta0,
		}
		if network != nil {
			mc.Transport = network.transport(net.UDPAddrFromAddrPort(netip.AddrPortFrom(w.ips[name], uint16(o.port))))
		}
		members, err := membership.Start(mc)
		if err != nil {
			sim.stopAll()
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		var speaker *announcer.Speaker
		opts := announcer.SpeakerOptions{
			NodeName: name, ConfigNamespace: config.DefaultNamespace, ConfigName: config.DefaultConfigMapName,
			Protocols: map[config.Mode]announcer.Protocol{
				config.ModeLayer2: recorder{node: name, tracker: sim.tracker},
				config.ModeBGP:    bgpCounter{node: name, counts: &sim.bgpAdvertised},
			},
			Informers: shared,
			LocalMeta: func() (membership.Meta, error) { return meta0, nil },
		}
		var status *report.Reporter
		if o.status {
			status = report.New(dyn, meta, report.Options{
				NodeName: name,
				NodeUID:  func() types.UID { return speaker.NodeUID() },
				OnMarked: func(by string) { speaker.MarkedUnreachable(by) },
				Leases:   client.CoordinationV1().Leases(config.DefaultNamespace),
			})
			opts.Status = status
		}
		speaker = announcer.NewSpeaker(client, members, opts)
		if i == 0 {
			// Started with the run's context once the first speaker has
			// set them up: its Run would start them with its own, and its
			// kill would stop every speaker's caches.
			shared.Start(ctx.Done())
		}
		sctx, cancel := context.WithCancel(ctx)
		s := &simSpeaker{speaker: speaker, members: members, cancel: cancel, stopStatus: func() {}, done: make(chan struct{})}
		if status != nil {
			s.stopStatus = status.Start(sctx)
		}
		go func() {
			defer close(s.done)
			_ = speaker.Run(sctx)
		}()
		sim.mu.Lock() // views reads it from the tracker's goroutines
		sim.running[name] = s
		sim.mu.Unlock()
	}
	return sim, sim.waitReady(ctx, joinBound)
}

// undilated is d, measured on a clock run factor times slower, in the
// speakers' own time.
func undilated(d time.Duration, factor float64) time.Duration {
	return time.Duration(float64(d) / factor)
}

// dilated is timing run factor times slower. memberlist's push-pull (every
// member swaps its whole view with another every 30 s, stretched past 32
// members) keeps its pace: it is what repairs a view that lost a message,
// and here, where the members share two cores, messages do get lost.
func dilated(timing membership.Timing, factor float64) membership.Timing {
	scale := func(d time.Duration) time.Duration { return time.Duration(float64(d) * factor) }
	timing.ProbeInterval, timing.ProbeTimeout, timing.GossipInterval = scale(timing.ProbeInterval), scale(timing.ProbeTimeout), scale(timing.GossipInterval)
	return timing
}

// waitReady waits until every running speaker has joined.
func (sim *simulation) waitReady(ctx context.Context, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	for {
		sim.mu.Lock()
		waiting := 0
		for _, s := range sim.running {
			if !s.speaker.Ready() {
				waiting++
			}
		}
		sim.mu.Unlock()
		if waiting == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d speakers had not joined after %v", waiting, bound)
		}
		if err := framework.Sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// kill crashes a speaker: what it announced is gone at once, its memberlist
// stops without a word, its controller and reporter stop.
func (sim *simulation) kill(name string) {
	sim.mu.Lock()
	s := sim.running[name]
	delete(sim.running, name)
	sim.mu.Unlock()
	sim.tracker.kill(name)
	_ = s.members.Shutdown()
	s.cancel()
	s.stopStatus()
	<-s.done
}

func (sim *simulation) randomAlive(rng *rand.Rand) string {
	names := nodesOf(sim.alive())
	return names[rng.IntN(len(names))]
}

// alive are the speakers not killed.
func (sim *simulation) alive() map[string]bool {
	sim.mu.Lock()
	defer sim.mu.Unlock()
	m := make(map[string]bool, len(sim.running))
	for n := range sim.running {
		m[n] = true
	}
	return m
}

// views says, for two owners of one address, how each sees the members:
// how many alive, and whom the one sees that the other does not. Two owners
// with the same view would be a bug of the election; different views point
// at membership (a member falsely declared dead by some).
func (sim *simulation) views(nodes []string) string {
	sim.mu.Lock()
	seen := map[string]map[string]bool{}
	for _, n := range nodes {
		if s := sim.running[n]; s != nil {
			seen[n] = map[string]bool{}
			for _, m := range s.members.Alive() {
				seen[n][m.Name] = true
			}
		}
	}
	sim.mu.Unlock()
	var parts []string
	for _, n := range nodes {
		var only []string
		for m := range seen[n] {
			for _, o := range nodes {
				if o != n && seen[o] != nil && !seen[o][m] {
					only = append(only, m)
					break
				}
			}
		}
		slices.Sort(only)
		parts = append(parts, fmt.Sprintf("%s sees %d members (others do not see %v)", n, len(seen[n]), only))
	}
	return strings.Join(parts, "; ")
}

// memberCounts tells how many speakers saw how many members, for a report
// when the elections do not settle.
func (sim *simulation) memberCounts() map[int]int {
	sim.mu.Lock()
	defer sim.mu.Unlock()
	out := map[int]int{}
	for _, s := range sim.running {
		out[len(s.members.Alive())]++
	}
	return out
}

func (sim *simulation) stopAll() {
	sim.mu.Lock()
	names := make([]string, 0, len(sim.running))
	for n := range sim.running {
		names = append(names, n)
	}
	sim.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sim.kill(n)
		}()
	}
	wg.Wait()
}

// recorder is a speaker's protocol: it tells the tracker what the speaker
// announces.
type recorder struct {
	node    string
	tracker *tracker
}

func (r recorder) SetAnnounced(_ context.Context, want map[netip.Addr]string) error {
	r.tracker.set(r.node, want)
	return nil
}

// bgpCounter is a speaker's bgp protocol: it counts what the speaker
// advertises.
type bgpCounter struct {
	node   string
	counts *sync.Map
}

func (c bgpCounter) SetAnnounced(_ context.Context, want map[netip.Addr]string) error {
	c.counts.Store(c.node, len(want))
	return nil
}

// waitBGP waits until every running speaker advertises n bgp addresses.
func (sim *simulation) waitBGP(ctx context.Context, n int, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	for {
		behind := 0
		for name := range sim.alive() {
			if got, _ := sim.bgpAdvertised.Load(name); got != n {
				behind++
			}
		}
		if behind == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d speakers did not advertise the %d bgp addresses within %v", behind, n, bound)
		}
		if err := framework.Sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// tracker knows who announces each address, and how long any address had
// two owners.
type tracker struct {
	mu          sync.Mutex
	announced   map[string]map[netip.Addr]bool // by node
	owners      map[netip.Addr]map[string]bool
	dead        map[string]bool
	doubleSince map[netip.Addr]time.Time
	doubleWho   map[netip.Addr][]string
	doubleMax   time.Duration
	// doubles are the spells of two owners longer than doubleReport.
	doubles []string
	// explain, when set, describes the owners' views as a double starts;
	// the description goes with the spell's report.
	explain func(nodes []string) string
	why     map[netip.Addr]string
}

// doubleReport is how long two owners must last to be named.
const doubleReport = 500 * time.Millisecond

func newTracker() *tracker {
	return &tracker{announced: map[string]map[netip.Addr]bool{}, owners: map[netip.Addr]map[string]bool{},
		dead: map[string]bool{}, doubleSince: map[netip.Addr]time.Time{}, doubleWho: map[netip.Addr][]string{}, why: map[netip.Addr]string{}}
}

func (t *tracker) set(node string, want map[netip.Addr]string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dead[node] {
		return // a dead node answers nothing, whatever its goroutines still do
	}
	now := time.Now()
	prev := t.announced[node]
	for ip := range prev {
		if _, still := want[ip]; !still {
			t.remove(ip, node, now)
		}
	}
	next := make(map[netip.Addr]bool, len(want))
	for ip := range want {
		next[ip] = true
		if !prev[ip] {
			t.add(ip, node, now)
		}
	}
	t.announced[node] = next
}

func (t *tracker) kill(node string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dead[node] = true
	now := time.Now()
	for ip := range t.announced[node] {
		t.remove(ip, node, now)
	}
	delete(t.announced, node)
}

func (t *tracker) add(ip netip.Addr, node string, now time.Time) {
	if t.owners[ip] == nil {
		t.owners[ip] = map[string]bool{}
	}
	t.owners[ip][node] = true
	if len(t.owners[ip]) == 2 {
		t.doubleSince[ip] = now
		t.doubleWho[ip] = nodesOf(t.owners[ip])
		if t.explain != nil {
			// Outside the tracker's lock: the views take the simulation's.
			go func(who []string) {
				time.Sleep(200 * time.Millisecond) // a spell worth explaining lasts longer
				why := t.explain(who)
				t.mu.Lock()
				defer t.mu.Unlock()
				if _, still := t.doubleSince[ip]; still {
					t.why[ip] = why
				}
			}(t.doubleWho[ip])
		}
	}
}

func (t *tracker) remove(ip netip.Addr, node string, now time.Time) {
	delete(t.owners[ip], node)
	if since, ok := t.doubleSince[ip]; ok && len(t.owners[ip]) < 2 {
		t.doubleMax = max(t.doubleMax, now.Sub(since))
		if d := now.Sub(since); d > doubleReport {
			t.doubles = append(t.doubles, fmt.Sprintf("%s owned by %v from %s for %v (200 ms in: %s)", ip, t.doubleWho[ip], since.Format("15:04:05.000"), d.Round(time.Millisecond), t.why[ip]))
		}
		delete(t.doubleSince, ip)
		delete(t.why, ip)
	}
}

// resetDoubles starts measuring double owners afresh (after the start).
func (t *tracker) resetDoubles() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.doubleMax, t.doubles = 0, nil
	now := time.Now()
	for ip := range t.doubleSince {
		t.doubleSince[ip] = now
	}
}

// longDoubles names the spells of two owners longer than doubleReport,
// those still going included.
func (t *tracker) longDoubles() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := slices.Clone(t.doubles)
	now := time.Now()
	for ip, since := range t.doubleSince {
		if d := now.Sub(since); d > doubleReport {
			out = append(out, fmt.Sprintf("%s owned by %v from %s, still after %v (200 ms in: %s)", ip, nodesOf(t.owners[ip]), since.Format("15:04:05.000"), d.Round(time.Millisecond), t.why[ip]))
		}
	}
	return out
}

// maxDouble is the longest any address had two owners, one still going
// included.
func (t *tracker) maxDouble() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	longest := t.doubleMax
	for _, since := range t.doubleSince {
		longest = max(longest, time.Since(since))
	}
	return longest
}

// ownerOf returns each address's owner: "" for none, "*" for several.
func (t *tracker) ownerOf() map[netip.Addr]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[netip.Addr]string, len(t.owners))
	for ip, nodes := range t.owners {
		switch len(nodes) {
		case 0:
			out[ip] = ""
		case 1:
			for n := range nodes {
				out[ip] = n
			}
		default:
			out[ip] = "*"
		}
	}
	return out
}

// unsettled names the addresses of addrs without exactly one owner.
func (t *tracker) unsettled(addrs []netip.Addr) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var bad []string
	for _, ip := range addrs {
		if len(t.owners[ip]) != 1 {
			bad = append(bad, fmt.Sprintf("%s (%d owners)", ip, len(t.owners[ip])))
		}
	}
	return bad
}

// waitSettled waits until every address of addrs has exactly one owner,
// telling report every waitReportEvery how many do not yet: a thousand
// speakers can take many minutes.
func (t *tracker) waitSettled(ctx context.Context, addrs []netip.Addr, bound time.Duration, report func(unsettled int)) error {
	start := time.Now()
	deadline := start.Add(bound)
	nextReport := start.Add(waitReportEvery)
	for {
		bad := t.unsettled(addrs)
		if len(bad) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v, %d addresses without exactly one owner, e.g. %s", bound, len(bad), bad[0])
		}
		if time.Now().After(nextReport) {
			nextReport = nextReport.Add(waitReportEvery)
			report(len(bad))
		}
		if err := framework.Sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

const waitReportEvery = time.Minute

// waitOwned waits until every address of addrs has exactly one owner and
// returns how long after start that was.
func (t *tracker) waitOwned(ctx context.Context, addrs []netip.Addr, start time.Time, bound time.Duration) (time.Duration, error) {
	for {
		if len(t.unsettled(addrs)) == 0 {
			return time.Since(start), nil
		}
		if time.Since(start) > bound {
			return 0, fmt.Errorf("not every address had one owner again after %v: %v", bound, t.unsettled(addrs)[:1])
		}
		if err := framework.Sleep(ctx, 5*time.Millisecond); err != nil {
			return 0, err
		}
	}
}
