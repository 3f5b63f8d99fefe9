package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/ironlb/ironlb/test/framework"
)

const (
	// serviceCIDR leaves room for ~65k ClusterIPs. 198.18.0.0/15 is the
	// RFC 2544 benchmarking range: this half holds ClusterIPs, the other
	// half (poolCIDR) the load-balancer pool.
	serviceCIDR = "198.18.0.0/16"
	poolCIDR    = "198.19.0.0/16"
	// smallPoolMax is the largest n served from the two documentation
	// /24s (512 addresses, one of them taken by the warm-up Service).
	smallPoolMax = 500

	benchNamespace  = metav1.NamespaceDefault
	warmupNamespace = "bench-e2e-warmup"
	// benchLabel marks the measured Services, so the watch sees only them.
	benchLabel = "app.kubernetes.io/managed-by"
	benchValue = "bench-e2e"

	warmupTimeout  = 90 * time.Second
	syncTimeout    = 30 * time.Second
	collectTimeout = 30 * time.Second
	ccmStopGrace   = 10 * time.Second
	progressEvery  = 100
	heartbeatEvery = 10 * time.Second
)

// poolPrefixes returns the pool addresses for n services: the two IPv4
// documentation /24s while they suffice, else the benchmarking /16.
func poolPrefixes(n int) []netip.Prefix {
	if n <= smallPoolMax {
		return []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("203.0.113.0/24")}
	}
	return []netip.Prefix{netip.MustParsePrefix(poolCIDR)}
}

func poolConfig(prefixes []netip.Prefix) string {
	s := make([]string, len(prefixes))
	for i, p := range prefixes {
		s[i] = p.String()
	}
	return fmt.Sprintf("pools:\n- name: bench\n  addresses: [%s]\n", strings.Join(s, ", "))
}

// benchOnce does one run of contestant c with a fresh control plane, and
// always tears both down. It returns a result whenever Services were
// measured, even if the run then failed.
func benchOnce(ctx context.Context, opts options, c contestant, setup setup) (_ *result, err error) {
	load := loadAverage()
	logf("=== %s: starting etcd + kube-apiserver (service CIDR %s)", c.name, serviceCIDR)
	cp, err := startControlPlane(ctx, opts, c)
	if err != nil {
		return nil, err
	}
	defer cp.Stop()
	defer func() {
		if err != nil && opts.logs != "" {
			logf("logs kept in %s", cp.Dir)
		}
	}()

	pool := poolPrefixes(opts.n)
	logf("pool %v; starting %s", pool, c.label())
	inst, err := startContestant(ctx, c, cp, pool, setup.installed, setup.bins[c.kind])
	if err != nil {
		return nil, err
	}
	// Deferred after cp.Stop, so it runs first: the contestant goes before
	// the apiserver it talks to.
	defer inst.stop()
	rss := startRSSSampler(ctx, inst.main.Pid())
	defer rss.stop()

	client, err := benchClient(cp)
	if err != nil {
		return nil, err
	}
	// One Service through the whole pipeline first, so start-up (leader
	// election, informer sync, config load) is not measured, and a broken
	// setup fails in a minute instead of after -timeout.
	if err := warmUp(ctx, client, c); err != nil {
		return nil, fmt.Errorf("%w\n--- %s log tail ---\n%s", err, inst.main.Name, inst.main.LogTail(30))
	}

	tr := newTracker(c.addresses)
	stopWatch, err := watchServices(ctx, client, tr)
	if err != nil {
		return nil, err
	}
	defer stopWatch()

	res := &result{c: c, label: c.label(), n: opts.n, loadAvg: load, cmdline: commandLine(inst.main, cp.Dir)}
	runCtx, cancel := context.WithTimeout(ctx, opts.timeout)
	defer cancel()
	start := time.Now()
	created := createServices(runCtx, client, opts.n, opts.clients, tr)
	stopped := waitForIPs(runCtx, tr, created, start, opts.n, inst.main.Done(), cp.Apiserver.Done())
	res.waited = time.Since(start)
	cancel()
	<-created.done // the creators see the cancel at once
	switch {
	case ctx.Err() != nil:
		// Interrupted: report nothing half-measured.
		return nil, context.Cause(ctx)
	case inst.main.Exited():
		return nil, fmt.Errorf("%s exited during the run (%v)\n--- %s log tail ---\n%s", inst.main.Name, inst.main.Wait(), inst.main.Name, inst.main.LogTail(30))
	case cp.Apiserver.Exited():
		return nil, fmt.Errorf("kube-apiserver exited during the run (%v)\n%s", cp.Apiserver.Wait(), cp.LogTails(30))
	case stopped:
		res.endedBy = fmt.Sprintf("gave up after %v", opts.timeout)
	default:
		res.endedBy = "all created Services got an IP"
	}

	// Read everything the contestant's metrics say before it is stopped,
	// once it has finished the work the run gave it (a contestant that gave
	// up would keep writing: one reading then).
	if inst.metrics != nil {
		if stopped {
			res.ccm = scrapeCCM(ctx, inst.metrics)
		} else {
			res.ccm = waitCCMQuiet(ctx, inst.metrics)
		}
		res.hasMetrics = true
	}
	res.hwm = rss.hwm()
	res.peakRSS = rss.stop()

	tr.summarize(res, start)
	res.createErrors = created.errors.Load()
	res.createErrorSamples = created.samples()
	listCtx, cancelList := context.WithTimeout(ctx, collectTimeout)
	defer cancelList()
	if c.kind == kindIronLB {
		if events, err := countEvents(listCtx, client); err != nil {
			logf("counting Events: %v", err) // a diagnostic only
		} else {
			res.events = events
		}
	}
	if err := checkAddresses(listCtx, client, c, pool, res); err != nil {
		return res, fmt.Errorf("checking the handed-out addresses: %w", err)
	}
	logf("%s done: %d/%d Services got an IP in %v (%s)",
		c.name, res.n-res.failures, res.n, res.total.Round(time.Millisecond), res.endedBy)
	return res, nil
}

// startControlPlane starts a fresh etcd + kube-apiserver for one run, its
// state under -logs if given.
func startControlPlane(ctx context.Context, opts options, c contestant) (*framework.ControlPlane, error) {
	dir := ""
	if opts.logs != "" {
		dir = filepath.Join(opts.logs, c.dirName())
	}
	return framework.StartControlPlane(ctx, framework.Options{ServiceCIDR: serviceCIDR, Dir: dir, Logf: logf})
}

// benchClient is the benchmark's own client. It is not rate limited:
// creates should go as fast as the apiserver takes them, and the watch must
// not lag.
func benchClient(cp *framework.ControlPlane) (kubernetes.Interface, error) {
	cfg := rest.CopyConfig(cp.RESTConfig)
	cfg.QPS, cfg.Burst = -1, 0
	cfg.UserAgent = "ironlb-bench-e2e"
	return kubernetes.NewForConfig(cfg)
}

// warmUp creates one LoadBalancer Service outside the measured namespace and
// waits until c has given it an address. It keeps its address for the whole
// run (the uniqueness check includes it), so no release happens
// mid-measurement.
func warmUp(ctx context.Context, client kubernetes.Interface, c contestant) error {
	ns := &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: warmupNamespace}}
	if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", warmupNamespace, err)
	}
	begin := time.Now()
	if _, err := client.CoreV1().Services(warmupNamespace).Create(ctx, loadBalancerService("warmup"), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create warm-up Service: %w", err)
	}
	var ips []string
	err := framework.WaitFor(ctx, warmupTimeout, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		svc, err := client.CoreV1().Services(warmupNamespace).Get(ctx, "warmup", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		ips = c.addresses(svc)
		return len(ips) > 0, nil
	})
	if err != nil {
		return fmt.Errorf("warm-up: %s did not serve its first Service: %w", c.name, err)
	}
	logf("warm-up Service got %v after %v; %s is serving", ips, time.Since(begin).Round(time.Millisecond), c.name)
	return nil
}

// commandLine returns how p was started, from the line the framework writes
// at the head of its log, with the run's folder shown as $DIR.
func commandLine(p *framework.Process, dir string) string {
	data, err := os.ReadFile(p.LogPath)
	if err != nil {
		return "?"
	}
	marker := " starting " + p.Name + ": "
	line := ""
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "=== ") {
			if _, after, ok := strings.Cut(l, marker); ok {
				line = after
			}
		}
	}
	if line == "" {
		return "?"
	}
	return strings.ReplaceAll(line, dir, "$DIR")
}

func loadBalancerService(name string) *v1.Service {
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{benchLabel: benchValue}},
		Spec: v1.ServiceSpec{
			Type:  v1.ServiceTypeLoadBalancer,
			Ports: []v1.ServicePort{{Name: "http", Protocol: v1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(80)}},
		},
	}
}

const namePrefix = "bench-"

func serviceName(i int) string { return fmt.Sprintf("%s%05d", namePrefix, i) }

// watchServices starts an informer on the benchmark's Services that feeds tr,
// and waits for its initial list. The returned func stops it.
func watchServices(ctx context.Context, client kubernetes.Interface, tr *tracker) (func(), error) {
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace(benchNamespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = benchLabel + "=" + benchValue }))
	informer := factory.Core().V1().Services().Informer()
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    tr.observe,
		UpdateFunc: func(_, obj any) { tr.observe(obj) },
	}); err != nil {
		return nil, err
	}
	watchCtx, cancel := context.WithCancel(ctx)
	stop := func() {
		cancel()
		factory.Shutdown()
	}
	factory.StartWithContext(watchCtx)
	syncCtx, cancelSync := context.WithTimeout(watchCtx, syncTimeout)
	defer cancelSync()
	if err := factory.WaitForCacheSyncWithContext(syncCtx).AsError(); err != nil {
		stop()
		return nil, fmt.Errorf("Service informer: %w", err)
	}
	return stop, nil
}

// creation tracks the create calls in flight.
type creation struct {
	done   chan struct{} // closed once every create call has returned
	ok     atomic.Int64
	errors atomic.Int64

	mu         sync.Mutex
	errSamples []string
}

const maxErrSamples = 3

func (c *creation) fail(name string, err error) {
	c.errors.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.errSamples) < maxErrSamples {
		c.errSamples = append(c.errSamples, fmt.Sprintf("%s: %v", name, err))
	}
}

func (c *creation) samples() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.errSamples...)
}

// createServices creates n Services from clients goroutines in the
// background. Each records when its create call returned; a failed create is
// not retried (it counts as a Service that never got an IP).
func createServices(ctx context.Context, client kubernetes.Interface, n, clients int, tr *tracker) *creation {
	c := &creation{done: make(chan struct{})}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(clients, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				name := serviceName(i)
				if _, err := client.CoreV1().Services(benchNamespace).Create(ctx, loadBalancerService(name), metav1.CreateOptions{}); err != nil {
					c.fail(name, err)
					continue
				}
				tr.created(name, time.Now())
				c.ok.Add(1)
			}
		})
	}
	go func() {
		wg.Wait()
		close(c.done)
	}()
	return c
}

// waitForIPs waits until every successfully created Service has an IP, and
// reports whether it stopped short: ctx ended, or a channel in died closed
// (a process the run needs exited). It logs progress every progressEvery Services (and a heartbeat when
// nothing moves) so a person can see the run is alive.
func waitForIPs(ctx context.Context, tr *tracker, c *creation, start time.Time, n int, died ...<-chan struct{}) (stopped bool) {
	// Either process dying ends the wait: merge their channels into one.
	anyDied := make(chan struct{})
	var once sync.Once
	for _, ch := range died {
		go func() {
			select {
			case <-ch:
				once.Do(func() { close(anyDied) })
			case <-ctx.Done():
			}
		}()
	}
	heartbeat := time.NewTicker(heartbeatEvery)
	defer heartbeat.Stop()
	createsDone := c.done
	nextMilestone := min(progressEvery, n)
	lastLog := time.Now()
	for {
		withIP := tr.withIP()
		for withIP >= nextMilestone {
			logf("  %5d/%d Services have an IP (%v)", nextMilestone, n, time.Since(start).Round(time.Millisecond))
			lastLog = time.Now()
			if nextMilestone == n {
				nextMilestone = n + 1 // withIP never exceeds n: no more lines
				break
			}
			nextMilestone = min(nextMilestone+progressEvery, n)
		}
		if createsDone == nil && int64(withIP) >= c.ok.Load() {
			return false
		}
		select {
		case <-ctx.Done():
			return true
		case <-anyDied:
			return true
		case <-createsDone:
			createsDone = nil
			took := time.Since(start)
			logf("  created %d Services in %v (%.0f/s), %d create errors",
				c.ok.Load(), took.Round(time.Millisecond), float64(c.ok.Load())/took.Seconds(), c.errors.Load())
		case <-tr.changed:
		case <-heartbeat.C:
			if time.Since(lastLog) >= heartbeatEvery {
				logf("  %5d/%d Services have an IP, %d created (%v)", withIP, n, c.ok.Load(), time.Since(start).Round(time.Second))
				lastLog = time.Now()
			}
		}
	}
}

// checkAddresses lists every Service (the warm-up one too) and records in res
// each address c gave more than one Service, and each outside the pool.
func checkAddresses(ctx context.Context, client kubernetes.Interface, c contestant, pool []netip.Prefix, res *result) error {
	list, err := client.CoreV1().Services(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	holders := map[string][]string{}
	for i := range list.Items {
		svc := &list.Items[i]
		for _, ip := range c.addresses(svc) {
			holders[ip] = append(holders[ip], svc.Namespace+"/"+svc.Name)
			res.addresses++
			if a, err := netip.ParseAddr(ip); err != nil || !inAny(pool, a) {
				res.outsidePool = append(res.outsidePool, fmt.Sprintf("%s (%s/%s)", ip, svc.Namespace, svc.Name))
			}
		}
	}
	for ip, svcs := range holders {
		if len(svcs) > 1 {
			res.duplicates = append(res.duplicates, fmt.Sprintf("%s held by %s", ip, strings.Join(svcs, ", ")))
		}
	}
	sort.Strings(res.duplicates)
	if len(res.outsidePool) > 0 {
		return fmt.Errorf("%d address(es) outside pool %v, e.g. %s", len(res.outsidePool), pool, res.outsidePool[0])
	}
	return nil
}

// eventReasons are the Events each Service should get: one series of each per
// Service, from the service controller and from ironlb.
var eventReasons = []string{"EnsuringLoadBalancer", "IPAllocated", "EnsuredLoadBalancer"}

// countEvents counts, per reason in eventReasons, the benchmark Services that
// have an Event with it. Event recorders drop what they cannot write fast
// enough, so short counts show the CCM's event pipeline saturating.
func countEvents(ctx context.Context, client kubernetes.Interface) (map[string]int, error) {
	list, err := client.CoreV1().Events(benchNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	seen := map[string]map[string]bool{}
	for _, e := range list.Items {
		if e.InvolvedObject.Kind != "Service" || !strings.HasPrefix(e.InvolvedObject.Name, namePrefix) {
			continue
		}
		if seen[e.Reason] == nil {
			seen[e.Reason] = map[string]bool{}
		}
		seen[e.Reason][e.InvolvedObject.Name] = true
	}
	counts := map[string]int{}
	for _, r := range eventReasons {
		counts[r] = len(seen[r])
	}
	return counts, nil
}

func inAny(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
