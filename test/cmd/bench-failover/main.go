// Command bench-failover measures layer2 failover on the network lab: the
// time from a fault on the announcing node (kill -9 of its speaker, its link
// going down, SIGTERM) to the first successful HTTP request from the client
// answered by another node. It also reports the speakers' memory idle and
// with many services, and what the API is written when the node that
// announces the most of those services dies (-trials 0: those two alone).
//
// With -impl ironlb-pods it measures ironlb as users run it: installed from
// manifests/kubeadm onto real nodes (test/nodelab: containerd, kubelet,
// kube-proxy), the client served by real pods, and the faults hit the
// speaker's container (kill -9, which the kubelet restarts), the node's link,
// or the whole node (a power cut: every process and pod of it at once).
//
// It measures ironlb and, for comparison, MetalLB (its own controller and
// speaker, layer2 with its defaults, built by hack/ensure-peers.sh from the
// version test/peers/metallb requires) under the same faults, one after the
// other, each on a fresh lab of the same network, and prints the ratio
// MetalLB/ironlb.
//
//	go run ./test/cmd/bench-failover [-impl ironlb,ironlb-pods,metallb] [-trials 20] [-services 1000] [-out docs/benchmarks.md]
//
// The memory figure's load scales to a large cluster's with -services,
// -slices, -nodes and -local, e.g. -services 10000 -slices 2 -nodes 1000
// -local 0.5 (with -trials 1 to keep the run short).
//
// Needs root (network namespaces); make bench-failover runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/labenv"
)

// The one pool both implementations allocate from, announced on the lab's
// interface.
var (
	poolAddresses  = []string{"203.0.113.10-203.0.113.250", "2001:db8:200::/64"}
	poolInterfaces = []string{"eth0"}
)

// benchConfig is ironlb's config for that pool.
var benchConfig = fmt.Sprintf(`
pools:
- name: l2
  addresses: ["%s"]
  interfaces: ["%s"]
`, strings.Join(poolAddresses, `", "`), strings.Join(poolInterfaces, `", "`))

// An implementation under test.
type impl struct {
	name  string // as -impl names it
	title string // in the report
	notes string // its failure detection, for the report
	impl  labenv.Impl
	// pods: the speakers run as pods on real nodes (test/nodelab), with
	// faults of their own (podFaults).
	pods bool
}

var impls = []impl{
	{name: "ironlb", title: "ironlb", impl: labenv.ImplIronLB,
		notes: "memberlist probe 100 ms, timeout 50 ms, gossip 50 ms, suspicion ×5 (ironlb-speaker's defaults)"},
	{name: "ironlb-pods", title: "ironlb, speakers as pods on real nodes", pods: true,
		notes: "the same defaults; ironlb installed with kubectl apply -k manifests/kubeadm onto three nodes running containerd, kubelet and kube-proxy (test/nodelab), the client served by a real Deployment (one pod per node) through kube-proxy"},
	{name: "metallb", title: "MetalLB", impl: labenv.ImplMetalLB,
		notes: "layer2 with its defaults: memberlist on (its LAN defaults: probe 1 s, timeout 500 ms, gossip 200 ms, suspicion ×4), key from its Secret; its own controller assigns the addresses"},
}

// result is one implementation's figures.
type result struct {
	impl     impl
	faults   []faultResult
	memory   string
	takeover *takeover
}

type faultResult struct {
	name          string
	p50, p99, max time.Duration
	n, failed     int
}

// A fault and its repair.
type fault struct {
	name   string
	inject func(ctx context.Context, env *labenv.Env, node string) error
	repair func(ctx context.Context, env *labenv.Env, node string) error
}

var faults = []fault{
	{"kill -9",
		func(_ context.Context, env *labenv.Env, node string) error { _ = env.Speaker(node).Kill(); return nil },
		restart},
	{"link down",
		func(ctx context.Context, env *labenv.Env, node string) error {
			return host(env, node).SetLink(ctx, false)
		},
		func(ctx context.Context, env *labenv.Env, node string) error {
			if err := host(env, node).SetLink(ctx, true); err != nil {
				return err
			}
			return restart(ctx, env, node)
		}},
	{"SIGTERM",
		func(_ context.Context, env *labenv.Env, node string) error {
			return env.Speaker(node).Signal(syscall.SIGTERM)
		},
		restart},
}

func main() {
	implFlag := flag.String("impl", "ironlb,metallb", "implementations to measure, in this order (ironlb, ironlb-pods, metallb)")
	trials := flag.Int("trials", 20, "trials per fault")
	var load memoryLoad
	flag.IntVar(&load.services, "services", 1000, "services for the memory figure (IPv6 VIPs)")
	flag.IntVar(&load.slices, "slices", 1, "EndpointSlices per service of the memory figure")
	flag.IntVar(&load.nodes, "nodes", 0, "Node objects added for the memory figure (nodes without a speaker, as in a larger cluster)")
	flag.Float64Var(&load.local, "local", 0, "fraction of the memory figure's services with externalTrafficPolicy Local")
	out := flag.String("out", "", "append a markdown table to this file")
	flag.StringVar(&load.heapProfiles, "heap-profiles", "", "run ironlb's speakers with --profiling and save each one's heap profile, with the memory figure's load, in this folder")
	flag.Parse()
	selected, err := parseImpls(*implFlag)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-failover:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, selected, *trials, load, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench-failover:", err)
		os.Exit(1)
	}
}

func parseImpls(list string) ([]impl, error) {
	var out []impl
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		i := slices.IndexFunc(impls, func(im impl) bool { return im.name == name })
		if i < 0 {
			return nil, fmt.Errorf("-impl: unknown implementation %q (want ironlb, ironlb-pods, metallb)", name)
		}
		if slices.ContainsFunc(out, func(im impl) bool { return im.name == name }) {
			return nil, fmt.Errorf("-impl: %s named twice", name)
		}
		im := impls[i]
		if im.impl == labenv.ImplMetalLB {
			v, err := framework.PeerMetalLB.Version()
			if err != nil {
				return nil, err
			}
			im.title += " " + v
		}
		out = append(out, im)
	}
	return out, nil
}

// run measures each implementation on a fresh lab of its own: the same
// network (addresses, MACs, the client) and faults, and nothing of the
// previous run (finalizers, neighbour caches, API objects) left to bias the
// next.
func run(ctx context.Context, selected []impl, trials int, load memoryLoad, out string) error {
	var results []result
	var runErr error
	for _, im := range selected {
		measureIt := func() (result, error) { return measure(ctx, im, trials, load) }
		if im.pods {
			measureIt = func() (result, error) { return measurePods(ctx, im, trials) }
		}
		r, err := measureIt()
		if err != nil {
			runErr = fmt.Errorf("%s: %w", im.title, err)
			break
		}
		results = append(results, r)
	}
	if len(results) == 0 {
		return runErr
	}
	report := markdown(results, trials)
	fmt.Print(report)
	if runErr != nil {
		// What was measured is printed, but a partial run is not recorded.
		return runErr
	}
	if out != "" {
		f, err := os.OpenFile(out, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = f.WriteString(report)
		return err
	}
	return nil
}

// measure starts a lab running im, runs every fault's trials and the memory
// figure, and tears the lab down.
func measure(ctx context.Context, im impl, trials int, load memoryLoad) (result, error) {
	r := result{impl: im}
	fmt.Printf("starting the lab for %s (3 nodes, control plane, load balancer)...\n", im.title)
	env, err := labenv.Start(ctx, labenv.Options{Nodes: 3, DualStack: true, Config: benchConfig,
		Impl: im.impl, MetalLB: labenv.MetalLBOptions{Addresses: poolAddresses, Interfaces: poolInterfaces},
		Logf: func(f string, a ...any) { fmt.Printf("  "+f+"\n", a...) },
		// Each Local Service takes a health check NodePort: thousands of
		// them need more than the default 2,768.
		ApiserverArgs: []string{"--service-node-port-range=10000-62000"},
		SpeakerArgs:   profilingArgs(im, load)})
	if err != nil {
		return r, err
	}
	defer env.Close()
	if err := env.WaitConverged(ctx, time.Minute); err != nil {
		return r, err
	}

	injected := faults
	if trials == 0 {
		injected = nil // the memory and takeover figures alone
	}
	for fi, f := range injected {
		fr, err := runFault(ctx, im, f.name, trials, func(i int) (time.Duration, error) {
			return trial(ctx, env, fmt.Sprintf("bench-%d-%d", fi, i), f)
		})
		if err != nil {
			return r, err
		}
		r.faults = append(r.faults, fr)
	}

	idle, err := speakerRSS(env)
	if err != nil {
		return r, err
	}
	cpuBefore, err := speakersCPU(env)
	if err != nil {
		return r, err
	}
	fmt.Printf("creating %s for the memory figure...\n", load)
	if err := createLoad(ctx, env, load); err != nil {
		return r, err
	}
	// Let every speaker sync: at least 3 s, then until each is idle.
	time.Sleep(3 * time.Second)
	if err := waitIdle(ctx, env, 2*time.Minute); err != nil {
		return r, err
	}
	loaded, err := speakerRSS(env)
	if err != nil {
		return r, err
	}
	cpuAfter, err := speakersCPU(env)
	if err != nil {
		return r, err
	}
	r.memory = fmt.Sprintf("Speaker memory (VmRSS, per speaker): idle %s; with %s %s. CPU each speaker used while the load was created and synced: %s.",
		idle, load, loaded, cpuUsed(env, cpuBefore, cpuAfter))
	if im.impl == labenv.ImplIronLB {
		r.memory += " Go heap in use / next GC target: " + speakerHeap(ctx, env) + "."
		if err := saveHeapProfiles(ctx, env, load.heapProfiles); err != nil {
			return r, err
		}
	}
	// The figure above is taken as the last sync ends; a Go runtime hands
	// freed pages back over the next minutes. Both are the speaker's.
	select {
	case <-ctx.Done():
		return r, ctx.Err()
	case <-time.After(settledAfter):
	}
	settled, err := speakerRSS(env)
	if err != nil {
		return r, err
	}
	r.memory += fmt.Sprintf(" %v later, with nothing changing: %s.", settledAfter, settled)
	if im.impl == labenv.ImplIronLB {
		r.memory += " Go heap then: " + speakerHeap(ctx, env) + "."
	}
	t, err := measureTakeover(ctx, env, im)
	if err != nil {
		return r, fmt.Errorf("API writes of a takeover: %w", err)
	}
	r.takeover = &t
	return r, nil
}

// runFault runs a fault's trials one after another and sums them up. A
// failed trial is counted and reported; only an interrupt ends the run.
func runFault(ctx context.Context, im impl, fault string, trials int, trial func(i int) (time.Duration, error)) (faultResult, error) {
	var samples []time.Duration
	failed := 0
	for i := range trials {
		d, err := trial(i)
		if err != nil {
			failed++
			fmt.Printf("  %s %s trial %d: %v\n", im.name, fault, i, err)
			if ctx.Err() != nil {
				return faultResult{}, ctx.Err()
			}
			continue
		}
		samples = append(samples, d)
		fmt.Printf("  %s %s trial %d: %v\n", im.name, fault, i, d.Round(time.Millisecond))
	}
	p50, p99, max := percentiles(samples)
	fr := faultResult{name: fault, p50: p50, p99: p99, max: max, n: len(samples), failed: failed}
	fmt.Println(im.name, fr.row())
	return fr, nil
}

func (f faultResult) row() string {
	return fmt.Sprintf("| %s | %v | %v | %v | %d |", f.name, f.p50, f.p99, f.max, f.failed)
}

// markdown renders the results: a table per implementation and, with both,
// the ratio MetalLB/ironlb.
func markdown(results []result, trials int) string {
	var b strings.Builder
	date := time.Now().UTC().Format("2006-01-02")
	if trials > 0 {
		fmt.Fprintf(&b, "\n## Layer2 failover (`make bench-failover`, %s)\n\n", date)
		fmt.Fprintf(&b, "Fault on the announcing node → first successful HTTP request from the client answered by another node (as pods on real nodes: the longest time the client went without an answer, since a restarted speaker may keep the address); %d trials each, 3 nodes, requests started every 10 ms.", trials)
	} else {
		fmt.Fprintf(&b, "\n## Speaker memory and the API writes of a takeover (`make bench-failover`, -trials 0, %s)\n\n", date)
		fmt.Fprint(&b, "3 nodes, layer2.")
	}
	if len(results) > 1 {
		fmt.Fprint(&b, " Each implementation ran alone on a fresh lab of the same network, under the same load and faults.")
	}
	fmt.Fprintln(&b)
	for _, r := range results {
		fmt.Fprintf(&b, "\n### %s\n", r.impl.title)
		fmt.Fprintf(&b, "\n%s.\n", upperFirst(r.impl.notes))
		if len(r.faults) > 0 {
			fmt.Fprintln(&b, "\n| fault | p50 | p99 | max | failed |")
			fmt.Fprintln(&b, "|---|---|---|---|---|")
			for _, f := range r.faults {
				fmt.Fprintln(&b, f.row())
			}
		}
		if r.memory != "" {
			fmt.Fprintf(&b, "\n%s\n", r.memory)
		}
		if r.takeover != nil {
			fmt.Fprintf(&b, "\n%s", r.takeover)
		}
	}
	base := slices.IndexFunc(results, func(r result) bool { return r.impl.name == "ironlb" })
	peer := slices.IndexFunc(results, func(r result) bool { return r.impl.name == "metallb" })
	if base < 0 || peer < 0 {
		return b.String()
	}
	fmt.Fprintf(&b, "\n### %s / %s\n\n", results[peer].impl.title, results[base].impl.title)
	if len(results[base].faults) > 0 {
		fmt.Fprintln(&b, "| fault | p50 | p99 | max |")
		fmt.Fprintln(&b, "|---|---|---|---|")
		for i, f := range results[base].faults {
			if i >= len(results[peer].faults) {
				break
			}
			m := results[peer].faults[i]
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", f.name, ratio(m.p50, f.p50), ratio(m.p99, f.p99), ratio(m.max, f.max))
		}
		fmt.Fprintln(&b)
	}
	if t, m := results[base].takeover, results[peer].takeover; t != nil && m != nil && t.totalBytes() > 0 {
		perMoved := func(t *takeover) float64 { return t.totalBytes() / float64(t.moved) }
		fmt.Fprintf(&b, "API bytes written per moved address when a node dies: %.1f× (%.0f / %.0f).\n", perMoved(m)/perMoved(t), perMoved(m), perMoved(t))
	}
	return b.String()
}

func ratio(a, b time.Duration) string {
	if a <= 0 || b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f×", float64(a)/float64(b))
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// trial creates a service, injects the fault on its announcer, measures the
// takeover, repairs, and deletes the service.
func trial(ctx context.Context, env *labenv.Env, name string, f fault) (time.Duration, error) {
	if err := createService(ctx, env, name, v1.IPv4Protocol); err != nil {
		return 0, err
	}
	defer deleteService(env, name)
	vip, err := env.WaitForIP(ctx, "default", name, time.Minute)
	if err != nil {
		return 0, err
	}
	var owner string
	var last error
	err = framework.WaitFor(ctx, 30*time.Second, 50*time.Millisecond, func(ctx context.Context) (bool, error) {
		owner, last = announcer(ctx, env, vip)
		return last == nil, nil
	})
	if err != nil {
		return 0, fmt.Errorf("%s never answered: %w (last: %v)", vip, err, last)
	}
	// Let the takeover burst finish so each trial starts from a settled
	// neighbour cache.
	time.Sleep(5 * time.Second)
	start := time.Now()
	if err := f.inject(ctx, env, owner); err != nil {
		return 0, err
	}
	took, err := firstAnswerFromOther(ctx, env, vip, owner, start)
	if repairErr := f.repair(ctx, env, owner); repairErr != nil {
		return 0, repairErr
	}
	return took, err
}

// announcer returns the node announcing vip, seen from the client alone:
// the node that answers HTTP for it, which must be the node owning the MAC
// the client's neighbour cache holds for it (whoever assigned the address,
// whichever implementation announces it).
func announcer(ctx context.Context, env *labenv.Env, vip netip.Addr) (string, error) {
	node, err := env.Answering(ctx, vip, 300*time.Millisecond)
	if err != nil {
		return "", err
	}
	mac, err := env.ClientNeighbor(ctx, vip)
	if err != nil {
		return "", err
	}
	if byMAC := env.NodeByMAC(mac); byMAC != node {
		return "", fmt.Errorf("%s answered for %s but the client's neighbour cache has %q (%s)", node, vip, mac, byMAC)
	}
	return node, nil
}

// createService creates a LoadBalancer service with one ready endpoint (an
// EndpointSlice, as the endpoint controller would write for a backend pod
// on n1): MetalLB announces only services with a ready endpoint; ironlb,
// with externalTrafficPolicy Cluster, does not look. Both get the same.
func createService(ctx context.Context, env *labenv.Env, name string, family v1.IPFamily) error {
	backend := env.Lab.Node(1)
	at := endpointAt{node: backend.Name, addr: backend.IPv4}
	if family == v1.IPv6Protocol {
		at.addr = backend.IPv6
	}
	return createServiceWith(ctx, env, name, serviceShape{family: family, nodePorts: true, endpoints: []endpointAt{at}})
}

// serviceShape is what createServiceWith makes.
type serviceShape struct {
	family v1.IPFamily
	local  bool // externalTrafficPolicy Local
	// nodePorts: a NodePort per port, as by default; thousands of Services
	// go without (a Local one still gets its health check port).
	nodePorts bool
	endpoints []endpointAt
}

// endpointAt is one ready endpoint: its node and address.
type endpointAt struct {
	node string
	addr netip.Addr
}

// createServiceWith creates a LoadBalancer service and one EndpointSlice
// per endpoint, named NAME-backend, NAME-backend-1, ...
func createServiceWith(ctx context.Context, env *labenv.Env, name string, shape serviceShape) error {
	family := shape.family
	svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, Ports: []v1.ServicePort{{Port: labenv.HTTPPort, Protocol: v1.ProtocolTCP}}}}
	if family == v1.IPv6Protocol {
		svc.Spec.IPFamilies, svc.Spec.IPFamilyPolicy = []v1.IPFamily{v1.IPv6Protocol}, ptr.To(v1.IPFamilyPolicySingleStack)
	}
	if shape.local {
		svc.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	}
	if !shape.nodePorts {
		svc.Spec.AllocateLoadBalancerNodePorts = ptr.To(false)
	}
	if _, err := env.Client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return err
	}
	addrType := discoveryv1.AddressTypeIPv4
	if family == v1.IPv6Protocol {
		addrType = discoveryv1.AddressTypeIPv6
	}
	for i, at := range shape.endpoints {
		sliceName := name + "-backend"
		if i > 0 {
			sliceName = fmt.Sprintf("%s-%d", sliceName, i)
		}
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: sliceName, Labels: map[string]string{
				discoveryv1.LabelServiceName: name,
				discoveryv1.LabelManagedBy:   "bench-failover",
			}},
			AddressType: addrType,
			Endpoints: []discoveryv1.Endpoint{{
				Addresses:  []string{at.addr.String()},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
				NodeName:   ptr.To(at.node),
			}},
			Ports: []discoveryv1.EndpointPort{{Port: ptr.To(int32(labenv.HTTPPort)), Protocol: ptr.To(v1.ProtocolTCP)}},
		}
		if _, err := env.Client.DiscoveryV1().EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	return nil
}

// deleteService deletes a service and its EndpointSlice (bounded: the
// service controller's finalizer goes with ironlb-ccm's next sync).
func deleteService(env *labenv.Env, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = env.Client.CoreV1().Services("default").Delete(ctx, name, metav1.DeleteOptions{})
	_ = env.Client.DiscoveryV1().EndpointSlices("default").Delete(ctx, name+"-backend", metav1.DeleteOptions{})
}

// firstAnswerFromOther starts a request every 10 ms and returns when the
// first one answered by a node other than old completes.
func firstAnswerFromOther(ctx context.Context, env *labenv.Env, vip netip.Addr, old string, start time.Time) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	done := make(chan time.Duration, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case d := <-done:
			cancel()
			return d, nil
		case <-ctx.Done():
			return 0, fmt.Errorf("no other node answered for %s within 30 s", vip)
		case <-tick.C:
			wg.Add(1)
			go func() {
				defer wg.Done()
				node, err := env.Answering(ctx, vip, 500*time.Millisecond)
				if err == nil && node != old {
					select {
					case done <- time.Since(start):
					default:
					}
				}
			}()
		}
	}
}

func restart(ctx context.Context, env *labenv.Env, node string) error {
	_ = env.Speaker(node).Kill()
	if err := env.StartSpeaker(ctx, node); err != nil {
		return err
	}
	return env.WaitConverged(ctx, 30*time.Second)
}

func host(env *labenv.Env, node string) interface {
	SetLink(context.Context, bool) error
} {
	for _, n := range env.Lab.Nodes() {
		if n.Name == node {
			return n
		}
	}
	panic("no node " + node)
}

// waitIdle waits until every speaker used less than 2 % of a CPU over a
// second: done with what it was given, whatever its implementation.
func waitIdle(ctx context.Context, env *labenv.Env, timeout time.Duration) error {
	prev := map[string]uint64{}
	return framework.WaitFor(ctx, timeout, time.Second, func(context.Context) (bool, error) {
		idle := true
		for _, n := range env.Lab.Nodes() {
			ticks, err := cpuTicks(env.Speaker(n.Name).Pid())
			if err != nil {
				return false, err
			}
			last, seen := prev[n.Name]
			if !seen || ticks-last >= 2 { // USER_HZ is 100: 2 ticks = 20 ms
				idle = false
			}
			prev[n.Name] = ticks
		}
		return idle, nil
	})
}

// cpuTicks returns a process's user + system time in clock ticks.
func cpuTicks(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command (which may hold spaces) end with ')'.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	return utime + stime, nil
}

// settledAfter is how long after the memory figure's load has synced its
// RSS is read again.
const settledAfter = time.Minute

// speakerRSS reads every speaker's resident memory, and how much of it is
// anonymous (the Go runtime's) and how much pages of the binary.
func speakerRSS(env *labenv.Env) (string, error) {
	var parts []string
	for _, n := range env.Lab.Nodes() {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", env.Speaker(n.Name).Pid()))
		if err != nil {
			return "", err
		}
		field := map[string]string{}
		for _, line := range strings.Split(string(data), "\n") {
			if name, value, ok := strings.Cut(line, ":"); ok {
				field[name] = strings.TrimSpace(value)
			}
		}
		parts = append(parts, fmt.Sprintf("%s %s (anon %s, file %s)", n.Name, field["VmRSS"], field["RssAnon"], field["RssFile"]))
	}
	return strings.Join(parts, ", "), nil
}

// speakersCPU reads each speaker's CPU time so far, in clock ticks.
func speakersCPU(env *labenv.Env) (map[string]uint64, error) {
	ticks := map[string]uint64{}
	for _, n := range env.Lab.Nodes() {
		t, err := cpuTicks(env.Speaker(n.Name).Pid())
		if err != nil {
			return nil, err
		}
		ticks[n.Name] = t
	}
	return ticks, nil
}

// cpuUsed formats each speaker's CPU time between two readings (USER_HZ is
// 100: a tick is 10 ms).
func cpuUsed(env *labenv.Env, before, after map[string]uint64) string {
	var parts []string
	for _, n := range env.Lab.Nodes() {
		parts = append(parts, fmt.Sprintf("%s %.1f s", n.Name, float64(after[n.Name]-before[n.Name])/100))
	}
	return strings.Join(parts, ", ")
}

// speakerHeap reads from each ironlb speaker's metrics, in MiB, where its
// anonymous memory goes: the Go heap in use and the next GC target, the
// heap's free pages not yet handed back to the kernel, goroutine stacks and
// the runtime's own structures.
func speakerHeap(ctx context.Context, env *labenv.Env) string {
	var parts []string
	for _, n := range env.Lab.Nodes() {
		body, err := env.SpeakerMetrics(ctx, n.Name)
		if err != nil {
			parts = append(parts, n.Name+" "+err.Error())
			continue
		}
		value := func(names ...string) string {
			sum, found := 0.0, 0
			for line := range strings.Lines(body) {
				if f := strings.Fields(line); len(f) == 2 && slices.Contains(names, f[0]) {
					if v, err := strconv.ParseFloat(f[1], 64); err == nil {
						sum, found = sum+v, found+1
					}
				}
			}
			if found != len(names) {
				return "?"
			}
			return fmt.Sprintf("%.1f", sum/(1<<20))
		}
		idle, released := value("go_memstats_heap_idle_bytes"), value("go_memstats_heap_released_bytes")
		unreturned := "?"
		if i, err1 := strconv.ParseFloat(idle, 64); err1 == nil {
			if r, err2 := strconv.ParseFloat(released, 64); err2 == nil {
				unreturned = fmt.Sprintf("%.1f", i-r)
			}
		}
		parts = append(parts, fmt.Sprintf("%s %s / %s MiB (free, not returned %s; stacks %s; runtime %s)", n.Name,
			value("go_memstats_heap_inuse_bytes"), value("go_memstats_next_gc_bytes"), unreturned,
			value("go_memstats_stack_sys_bytes"),
			value("go_memstats_mspan_sys_bytes", "go_memstats_mcache_sys_bytes", "go_memstats_buck_hash_sys_bytes", "go_memstats_gc_sys_bytes", "go_memstats_other_sys_bytes")))
	}
	return strings.Join(parts, ", ")
}

func percentiles(d []time.Duration) (p50, p99, max time.Duration) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	slices.Sort(d)
	at := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))].Round(time.Millisecond) }
	return at(0.50), at(0.99), d[len(d)-1].Round(time.Millisecond)
}
