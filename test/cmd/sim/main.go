// Command sim runs many ironlb speakers in one process against one real
// kube-apiserver, kills them one after another and measures how the others
// take over (`make sim`).
//
// Each simulated speaker is the real thing but for its protocols: its own
// real memberlist on its own loopback address (127.77.0.0/16), the real
// controller and election (announcer.Speaker), the real SpeakerStatus
// reporter, and a protocol that records what it announces. They share one
// set of informers, so the apiserver serves N speakers' API load but not N
// watch streams of every object. The apiserver holds N Node objects, S
// LoadBalancer Services with their addresses in status (no CCM runs: the
// simulation writes them) and an EndpointSlice with ready endpoints on three
// nodes for each Local one.
//
// A kill is a crash: the memberlist stops without leaving, the controller
// and reporter stop, and what the speaker announced is dropped at once (a
// dead node answers nothing). It ends with one line of figures and exits
// non-zero when an address ends with no owner or two, or a takeover did not
// end within its bound.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	_ "net/http/pprof" // -pprof
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/ironlb/ironlb/announcer"
	"github.com/ironlb/ironlb/announcer/membership"
	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/test/framework"
)

type options struct {
	nodes, services, kills int
	killOwners             bool
	bgpServices            int
	startBatch             int
	status                 bool
	local                  float64
	port                   int
	transport              string
	dilate                 float64
	// probeInterval is the speakers' --memberlist-probe-interval; 0 is
	// the speaker's default for a cluster of -nodes (o.timing).
	probeInterval time.Duration
	out           string
	settle, bound time.Duration
	seed          uint64
}

func main() {
	var o options
	flag.IntVar(&o.nodes, "nodes", 100, "simulated nodes, each with a speaker")
	flag.IntVar(&o.services, "services", 2000, "LoadBalancer Services, one address each")
	flag.Float64Var(&o.local, "local", 0.5, "fraction of the Services with externalTrafficPolicy Local")
	flag.IntVar(&o.kills, "kill", 10, "speakers killed one after another")
	flag.BoolVar(&o.killOwners, "kill-owners", false, "kill only speakers that announce an address, so that every kill times a takeover (with as many Services as nodes, a third of the nodes own none)")
	flag.IntVar(&o.bgpServices, "bgp-services", 20, "after the kills, a bgp pool is added and this many Cluster Services in it, one after another: the speakers' API writes per Service")
	flag.IntVar(&o.startBatch, "start-batch", 10, "speakers started at once, each batch once the previous has joined")
	flag.BoolVar(&o.status, "status", true, "run each speaker's SpeakerStatus reporter (its API writes count in api_bytes_per_change)")
	flag.IntVar(&o.port, "port", 17946, "memberlist port every simulated speaker listens on, on its own loopback address")
	flag.Float64Var(&o.dilate, "dilate", 1, "run memberlist's clock this many times slower (probe interval, probe timeout, gossip interval; -settle and -bound too) and divide the takeover and two-owner times by it: N speakers on a few cores then do in each probe interval the work N nodes do on N CPUs (docs/scale.md); the per-second figures (CPU, gossip) stay at the slower clock")
	flag.DurationVar(&o.probeInterval, "probe-interval", 0, "the speakers' --memberlist-probe-interval (before -dilate); by default theirs, which follows the number of nodes")
	flag.StringVar(&o.transport, "transport", "udp", "how the memberlists talk: udp (loopback UDP and TCP, each speaker on its own address) or memory (in the process, for hundreds of speakers on a few cores; memnet.go)")
	flag.StringVar(&o.out, "out", "", "also append the result line (and the machine's load) to this file")
	flag.DurationVar(&o.settle, "settle", 2*time.Second, "how long to watch for further moves after each takeover")
	flag.DurationVar(&o.bound, "bound", 30*time.Second, "a takeover not done within this fails the run")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the kill order and endpoint placement")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this loopback address (host:port) while the run goes on: the heap and goroutines of a large run that does not finish")
	logPath := flag.String("log", "", "write the speakers' logs (klog) to this file; by default they are dropped")
	memoryLimit := flag.Int64("memory-limit", defaultMemoryLimit(), "unless GOGC is set, collect garbage only when the heap nears this many bytes (0: Go's default collector); by default 6 GiB or half the available memory, the smaller")
	klog.InitFlags(nil)
	flag.Parse()
	klog.LogToStderr(false)
	klog.SetOutput(io.Discard)
	if *logPath != "" {
		f, err := os.Create(*logPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, "sim:", err)
			os.Exit(2)
		}
		defer f.Close()
		klog.SetOutput(f)
	}
	if o.nodes < 2 || o.startBatch < 1 || o.kills >= o.nodes || o.services < 1 || o.services > 65534 || o.nodes > 60000 || o.local < 0 || o.local > 1 ||
		o.bgpServices < 0 || o.bgpServices > 65534 || (o.transport != "udp" && o.transport != "memory") || o.dilate < 1 || o.dilate > 100 || (o.probeInterval != 0 && o.probeInterval <= membership.DefaultTiming().ProbeTimeout) {
		fmt.Fprintln(os.Stderr, "sim: need 2 to 60000 nodes, fewer kills than nodes, 1 to 65534 services, 0 to 65534 bgp services, a Local fraction from 0 to 1, -transport udp or memory, -dilate from 1 to 100 and a probe interval longer than the probe timeout")
		os.Exit(2)
	}
	if _, set := os.LookupEnv("GOGC"); !set && *memoryLimit > 0 {
		// N speakers share one heap here, where each node's speaker has
		// its own and a CPU of its own. Collected at Go's default pace,
		// that heap cost a third of the two cores at 100 speakers, and
		// the memberlists starved into false failures. The run's CPU per
		// speaker then leaves out most collection (docs/scale.md).
		debug.SetGCPercent(-1)
		debug.SetMemoryLimit(*memoryLimit)
		fmt.Fprintf(os.Stderr, "sim: garbage collected only near %d MiB (-memory-limit)\n", *memoryLimit>>20)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	if *pprofAddr != "" {
		if host, _, err := net.SplitHostPort(*pprofAddr); err != nil || !isLoopback(host) {
			fmt.Fprintln(os.Stderr, "sim: -pprof wants a loopback host:port")
			os.Exit(2)
		}
		go func() {
			// The default mux, where net/http/pprof registers.
			if err := http.ListenAndServe(*pprofAddr, nil); err != nil {
				fmt.Fprintln(os.Stderr, "sim: -pprof:", err)
			}
		}()
	}
	o.settle = time.Duration(float64(o.settle) * o.dilate)
	o.bound = time.Duration(float64(o.bound) * o.dilate)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, o)
	if res != nil {
		line := res.line()
		fmt.Println(line)
		fmt.Println(machineLine())
		if o.out != "" {
			appendLine(o.out, line+"\n"+machineLine())
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sim:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) (*result, error) {
	start := time.Now()
	progress := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "sim: %5.1fs "+format+"\n", append([]any{time.Since(start).Seconds()}, args...)...)
	}
	// Local Services need a health check node port each: widen the range
	// past the default 2,768.
	cp, err := framework.StartControlPlane(ctx, framework.Options{
		ExtraApiserverArgs: []string{"--service-node-port-range=10000-62000", "--max-requests-inflight=2000", "--max-mutating-requests-inflight=1000"},
		Logf:               progress,
	})
	if err != nil {
		return nil, err
	}
	defer cp.Stop()
	if err := framework.InstallCRDs(ctx, cp.RESTConfig); err != nil {
		return nil, err
	}
	api := &apiCounter{}
	cfg := rest.CopyConfig(cp.RESTConfig)
	cfg.QPS, cfg.Burst = 5000, 10000
	cfg.Wrap(api.wrap)
	// The speakers' clientset encodes as the real speaker's does.
	client, err := kubernetes.NewForConfig(announcer.BuiltinTypesConfig(cfg))
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	meta, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(o.seed, 42))
	progress("creating %d Nodes, %d Services (%.0f%% Local) and their EndpointSlices", o.nodes, o.services, 100*o.local)
	w := newWorld(o, rng)
	if err := w.populate(ctx, client, progress); err != nil {
		return nil, err
	}
	gossip := countGossip()
	progress("starting %d speakers, %d at a time", o.nodes, o.startBatch)
	sim, err := startSpeakers(ctx, o, client, dyn, meta, w, progress)
	if err != nil {
		return nil, err
	}
	defer sim.stopAll()
	progress("%d speakers started; waiting until every address has one owner", o.nodes)
	waiting := func(unsettled int) {
		progress("%d addresses without exactly one owner; %s", unsettled, memberSpread(sim.memberCounts()))
	}
	if err := sim.tracker.waitSettled(ctx, w.addrs, time.Duration(float64(5*time.Minute)*o.dilate), waiting); err != nil {
		progress("members seen by each speaker: %v", sim.memberCounts())
		return nil, fmt.Errorf("initial election: %w", err)
	}
	// The start's Events and status writes drain before the kills, so that
	// each kill's API bytes are its own.
	if err := api.waitQuiet(ctx, 2*time.Second, 3*time.Minute); err != nil {
		return nil, err
	}
	// The writes that go on whatever happens go on during each kill too,
	// for as long as it takes in wall time, which -dilate stretches: they
	// are measured first and taken off each kill's.
	quiet, err := api.quietRates(ctx, quietWindow)
	if err != nil {
		return nil, err
	}
	var quietTotal float64
	for _, key := range slices.Sorted(maps.Keys(quiet)) {
		quietTotal += quiet[key]
		progress("API writes while nothing changes: %s %.0f bytes/s", key, quiet[key])
	}
	progress("every address has one owner; killing %d speakers one after another", o.kills)

	res := &result{nodes: o.nodes, services: o.services, kills: o.kills, dilate: o.dilate, probeInterval: o.timing().ProbeInterval}
	cpu0, wall0, gossip0, sync0, api0, requests0 := processCPU(), time.Now(), gossip(), syncHistogram(), api.breakdown(), api.requests()
	// Speaker-seconds over the kills: the speakers alive, integrated over
	// time, for the CPU and gossip per speaker.
	speakerSeconds, last := 0.0, wall0
	account := func() {
		now := time.Now()
		speakerSeconds += float64(len(sim.alive())) * now.Sub(last).Seconds()
		last = now
	}
	sim.tracker.resetDoubles()
	var killWall time.Duration
	for k := range o.kills {
		before := sim.tracker.ownerOf()
		victim := sim.randomAlive(rng)
		if o.killOwners {
			victim = randomOwner(rng, before, sim.alive(), victim)
		}
		bytes0 := api.written()
		killedAt := time.Now()
		account()
		watch := sim.watchDeath(ctx, victim, killedAt, time.Duration(float64(time.Millisecond)*o.dilate), o.bound)
		sim.kill(victim)
		// A Local Service whose every ready endpoint was on killed nodes
		// is rightly announced by no one: the endpoints stay as the
		// simulation wrote them, no controller moves them.
		owned := w.servable(ownedBy(before, victim), sim.alive())
		took, err := sim.tracker.waitOwned(ctx, owned, killedAt, o.bound)
		if err != nil {
			watch.end()
			return res, fmt.Errorf("kill %d (%s, owner of %d): %w", k+1, victim, len(owned), err)
		}
		res.killed++
		phases := ""
		if len(owned) > 0 {
			// A node that owned nothing has no takeover to time.
			res.converge = append(res.converge, undilated(took, o.dilate))
			phases = res.addPhases(watch, newOwners(sim.tracker.ownerOf(), owned), took, o.dilate)
		}
		watch.end()
		res.moved += len(owned)
		if err := framework.Sleep(ctx, o.settle); err != nil {
			return res, err
		}
		after := sim.tracker.ownerOf()
		for _, ip := range w.servable(w.addrs, sim.alive()) {
			if owner := before[ip]; owner != victim && after[ip] != owner {
				res.movedForeign++
			}
		}
		window := time.Since(killedAt)
		killWall += window
		res.apiBytes += api.written() - bytes0 - int64(quietTotal*window.Seconds())
		progress("kill %d: %s owned %d addresses, each had one owner again after %v%s (%v since the kill, settled)",
			k+1, victim, len(owned), took.Round(time.Millisecond), phases, time.Since(killedAt).Round(time.Millisecond))
	}
	account()
	requests := api.requests()
	for key, n := range api.breakdown() {
		sent := requests[key] - requests0[key]
		if d := n - api0[key]; d > 0 && res.killed > 0 {
			size := d / max(sent, 1)
			if d -= int64(quiet[key] * killWall.Seconds()); d <= 0 {
				continue
			}
			progress("API writes per kill, less the quiet ones: %s %d bytes (%d per moved address; %.1f requests of %d bytes)",
				key, d/int64(res.killed), d/int64(max(res.moved, 1)), float64(d)/float64(size)/float64(res.killed), size)
		}
	}
	res.apiBytes = max(res.apiBytes, 0)
	res.cpuPerSpeakerPct = 100 * (processCPU() - cpu0).Seconds() / speakerSeconds
	res.gossipPerSpeaker = (gossip() - gossip0) / speakerSeconds
	res.syncP99 = syncHistogram().since(sync0).quantile(0.99)
	res.doubleMax = undilated(sim.tracker.maxDouble(), o.dilate)
	for _, d := range sim.tracker.longDoubles() {
		progress("two owners: %s", d)
	}
	if sim.network != nil {
		progress("in-memory network: %d packets lost to full queues", sim.network.dropped.Load())
	}
	res.unservable = len(w.addrs) - len(w.servable(w.addrs, sim.alive()))
	// Spells of two owners and foreign moves are figures of the run; the
	// run fails when the speakers do not agree in the end. On two shared
	// cores, false member failures can still be settling after the last
	// kill, so the end is given a bound.
	if err := sim.tracker.waitSettled(ctx, w.servable(w.addrs, sim.alive()), time.Duration(float64(time.Minute)*o.dilate), waiting); err != nil {
		return res, fmt.Errorf("after the kills: %w", err)
	}
	if o.bgpServices > 0 {
		// The Services are created by a client whose writes are not
		// counted: what is measured is what the speakers write for them.
		plain, err := kubernetes.NewForConfig(cp.RESTConfig)
		if err != nil {
			return res, err
		}
		if res.apiPerBGPService, err = measureBGPServices(ctx, o.bgpServices, plain, sim, api, progress); err != nil {
			return res, err
		}
	}
	return res, nil
}

// quietWindow is how long the writes of a cluster where nothing changes are
// measured before the kills: six of the side Lease's renewals.
const quietWindow = 30 * time.Second

// defaultMemoryLimit is 6 GiB, or half the memory available when that is
// less: the apiserver and etcd run beside the simulation.
func defaultMemoryLimit() int64 {
	limit := int64(6 << 30)
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return limit
	}
	for _, line := range strings.Split(string(data), "\n") {
		var kB int64
		if _, err := fmt.Sscanf(line, "MemAvailable: %d kB", &kB); err == nil {
			return min(limit, kB<<10/2)
		}
	}
	return limit
}

// measureBGPServices adds a bgp pool, then n Cluster Services in it one
// after another, each once every speaker advertises the previous one, and
// returns the bytes the speakers wrote per Service. Every node the pool
// selects advertises such an address alike, so this must not grow with the
// node count. The first Service is measured apart: it is the first of the
// pool each node advertises.
func measureBGPServices(ctx context.Context, n int, client kubernetes.Interface, sim *simulation, api *apiCounter, progress func(string, ...any)) (int64, error) {
	if _, err := client.CoreV1().ConfigMaps(config.DefaultNamespace).Update(ctx, simConfig(true), metav1.UpdateOptions{}); err != nil {
		return 0, err
	}
	if err := api.waitQuiet(ctx, 2*time.Second, time.Minute); err != nil {
		return 0, err
	}
	// What a Service can cost the speakers: SpeakerStatus writes and
	// Events. The side Lease's renewals go on whatever happens.
	forServices := func(b map[string]int64) int64 {
		var sum int64
		for key, n := range b {
			if strings.HasPrefix(key, "speakerstatuses ") || strings.HasPrefix(key, "events ") {
				sum += n
			}
		}
		return sum
	}
	owners0 := sim.tracker.ownerOf()
	var first int64
	api0 := api.breakdown()
	ip := bgpPrefix.Addr()
	for i := range n {
		ip = ip.Next()
		before := api.breakdown()
		if err := createLoadBalancer(ctx, client, fmt.Sprintf("bgp-%05d", i), ip, false); err != nil {
			return 0, err
		}
		if err := sim.waitBGP(ctx, i+1, time.Minute); err != nil {
			return 0, err
		}
		if i == 0 {
			if err := api.waitQuiet(ctx, time.Second, time.Minute); err != nil {
				return 0, err
			}
			first = forServices(api.breakdown()) - forServices(before)
			api0 = api.breakdown()
		}
	}
	if err := api.waitQuiet(ctx, time.Second, time.Minute); err != nil {
		return 0, err
	}
	perService := (forServices(api.breakdown()) - forServices(api0)) / int64(max(n-1, 1))
	progress("bgp: %d speakers wrote %d bytes for the pool's first Service, then %d per Service over %d more",
		len(sim.alive()), first, perService, n-1)
	for key, b := range api.breakdown() {
		if d := b - api0[key]; d > 0 {
			progress("bgp: API writes per Service: %s %d bytes", key, d/int64(max(n-1, 1)))
		}
	}
	// A layer2 address that moved meanwhile (a false member failure) wrote
	// too: say so rather than count it silently.
	if !maps.Equal(owners0, sim.tracker.ownerOf()) {
		progress("bgp: layer2 owners changed during the bgp phase; its figure includes their writes")
	}
	return perService, nil
}

// result is what the run measured.
type result struct {
	nodes, services, kills int
	startBatch             int
	status                 bool
	// killed counts the kills done; converge times the takeovers of
	// those whose node owned an address.
	killed   int
	converge []time.Duration
	// detect times, for the same takeovers, the kill until the first
	// speaker declared the node dead (memberlist's failure detection);
	// apply, from the last new owner knowing to every address owned (the
	// speakers' own part). Both already divided by dilate.
	detect, apply []time.Duration
	movedForeign  int
	doubleMax     time.Duration
	// dilate is -dilate: converge and doubleMax are already divided by it.
	dilate           float64
	probeInterval    time.Duration
	syncP99          time.Duration
	cpuPerSpeakerPct float64
	gossipPerSpeaker float64
	apiBytes         int64
	// apiPerBGPService is what the speakers wrote per Cluster Service
	// added to a bgp pool (measureBGPServices).
	apiPerBGPService int64
	// moved counts the killed nodes' addresses that took a new owner.
	moved int
	// unservable are the Local Services left with no ready endpoint on a
	// live node (not counted as unowned).
	unservable int
}

func (r *result) line() string {
	sorted := slices.Clone(r.converge)
	slices.Sort(sorted)
	apiPerChange, apiPerMoved := int64(0), int64(0)
	if r.killed > 0 {
		apiPerChange = r.apiBytes / int64(r.killed)
	}
	if r.moved > 0 {
		apiPerMoved = r.apiBytes / int64(r.moved)
	}
	detect, apply := slices.Clone(r.detect), slices.Clone(r.apply)
	slices.Sort(detect)
	slices.Sort(apply)
	return fmt.Sprintf("nodes=%d services=%d kills=%d converge_p50_ms=%d converge_p99_ms=%d moved_foreign=%d double_owner_max_ms=%d sync_p99_ms=%.2f cpu_per_speaker_pct=%.2f gossip_bytes_per_s_per_speaker=%.0f api_bytes_per_change=%d api_bytes_per_moved_address=%d api_bytes_per_bgp_service=%d unservable=%d dilation=%g probe_interval_ms=%d detect_p50_ms=%d detect_p99_ms=%d apply_p99_ms=%d",
		r.nodes, r.services, r.killed, quantile(sorted, 0.5).Milliseconds(), quantile(sorted, 0.99).Milliseconds(),
		r.movedForeign, r.doubleMax.Milliseconds(), float64(r.syncP99.Microseconds())/1000, r.cpuPerSpeakerPct, r.gossipPerSpeaker, apiPerChange, apiPerMoved, r.apiPerBGPService, r.unservable, r.dilate, r.probeInterval.Milliseconds(),
		quantile(detect, 0.5).Milliseconds(), quantile(detect, 0.99).Milliseconds(), quantile(apply, 0.99).Milliseconds())
}

// addPhases splits a takeover that took took (on the speakers' clock) as
// watch saw it: when the first speaker declared the node dead, when the last
// of the new owners did. It returns them for the kill's progress line.
func (r *result) addPhases(watch *deathWatch, owners map[string]bool, took time.Duration, dilate float64) string {
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	first, ok := watch.first()
	if !ok {
		return ""
	}
	r.detect = append(r.detect, undilated(first, dilate))
	known, ok := watch.allOf(owners)
	if !ok {
		// A new owner that did not count the node alive when it was
		// killed (its view disagreed), or still does: the takeover was not
		// this failure detection's.
		return fmt.Sprintf(": first declared dead after %v", ms(first))
	}
	// The tracker polls too: a takeover within its poll of the new owners
	// knowing reads as none.
	apply := max(0, took-known)
	r.apply = append(r.apply, undilated(apply, dilate))
	return fmt.Sprintf(": first declared dead after %v, by its %d new owners after %v, announced %v later",
		ms(first), len(owners), ms(known), ms(apply))
}

// newOwners are the nodes that own addrs in owners.
func newOwners(owners map[netip.Addr]string, addrs []netip.Addr) map[string]bool {
	out := map[string]bool{}
	for _, ip := range addrs {
		out[owners[ip]] = true
	}
	return out
}

// quantile of sorted durations (nearest rank); 0 for none.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ownedBy(owners map[netip.Addr]string, node string) []netip.Addr {
	var out []netip.Addr
	for ip, o := range owners {
		if o == node {
			out = append(out, ip)
		}
	}
	return out
}

func machineLine() string {
	load, _ := os.ReadFile("/proc/loadavg")
	return fmt.Sprintf("machine: cpus=%d loadavg=%s", numCPU(), strings.Join(strings.Fields(string(load))[:min(3, len(strings.Fields(string(load))))], " "))
}

func appendLine(path, line string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sim:", err)
		return
	}
	defer f.Close()
	fmt.Fprintln(f, line)
}

// isLoopback reports whether host is a loopback IP address.
func isLoopback(host string) bool {
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// timing is the speakers' memberlist timing, before -dilate: as a speaker
// in a cluster of o.nodes sets it, unless -probe-interval is given.
func (o options) timing() membership.Timing {
	timing := membership.DefaultTiming()
	if o.probeInterval != 0 {
		timing.ProbeInterval = o.probeInterval
		return timing
	}
	return timing.ForMembers(o.nodes)
}

// randomOwner is a random alive node that owns an address in owners
// (address → owner, "" or "*" for none or several), or otherwise when none
// does.
func randomOwner(rng *rand.Rand, owners map[netip.Addr]string, alive map[string]bool, otherwise string) string {
	var candidates []string
	for _, n := range owners {
		if alive[n] {
			candidates = append(candidates, n)
		}
	}
	if len(candidates) == 0 {
		return otherwise
	}
	slices.Sort(candidates)
	candidates = slices.Compact(candidates)
	return candidates[rng.IntN(len(candidates))]
}

// memberSpread summarizes how many members the speakers see (from
// memberCounts: speakers by the members they see).
func memberSpread(counts map[int]int) string {
	seen := slices.Sorted(maps.Keys(counts))
	if len(seen) == 0 {
		return "no speaker running"
	}
	most := seen[len(seen)-1]
	return fmt.Sprintf("the speakers see %d to %d members, %d of them %d", seen[0], most, counts[most], most)
}
