package main

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	servicehelpers "k8s.io/cloud-provider/service/helpers"

	"github.com/ironlb/ironlb/config"
)

// serviceTimes is what the benchmark saw of one Service. For ironlb, the
// middle two marks split the latency into stages: the service controller
// adds its finalizer before it calls ironlb, and ironlb writes its annotation
// right after allocating, before the service controller writes the status.
type serviceTimes struct {
	created   time.Time // the create call returned
	finalizer time.Time // the service controller picked it up
	allocated time.Time // ironlb allocated its address
	ingress   time.Time // it first showed an address
	ips       []string
}

// tracker records, from the create calls and the watch, when each Service
// reached each stage. Only first sightings count.
type tracker struct {
	mu       sync.Mutex
	services map[string]*serviceTimes
	nWithIP  int
	// ipChanges lists Services whose address changed after it was first
	// seen; ironlb's addresses are sticky, so any entry is a bug.
	ipChanges []string
	// changed gets a token whenever nWithIP grows, to wake waitForIPs.
	changed chan struct{}
	// addresses reads a Service's addresses where the contestant writes
	// them.
	addresses func(*v1.Service) []string
}

func newTracker(addresses func(*v1.Service) []string) *tracker {
	return &tracker{services: map[string]*serviceTimes{}, changed: make(chan struct{}, 1), addresses: addresses}
}

func (t *tracker) get(name string) *serviceTimes {
	st := t.services[name]
	if st == nil {
		st = &serviceTimes{}
		t.services[name] = st
	}
	return st
}

func (t *tracker) created(name string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.get(name).created = at
}

// observe is the informer's add and update handler.
func (t *tracker) observe(obj any) {
	now := time.Now()
	svc, ok := obj.(*v1.Service)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.get(svc.Name)
	if st.finalizer.IsZero() && slices.Contains(svc.Finalizers, servicehelpers.LoadBalancerCleanupFinalizer) {
		st.finalizer = now
	}
	if st.allocated.IsZero() && svc.Annotations[config.AnnotationAllocatedFrom] != "" {
		st.allocated = now
	}
	ips := t.addresses(svc)
	switch {
	case len(ips) == 0:
	case st.ingress.IsZero():
		st.ingress, st.ips = now, ips
		t.nWithIP++
		select {
		case t.changed <- struct{}{}:
		default: // a wake-up is already pending
		}
	case !slices.Equal(ips, st.ips):
		t.ipChanges = append(t.ipChanges, fmt.Sprintf("%s/%s: %v -> %v", svc.Namespace, svc.Name, st.ips, ips))
		st.ips = ips
	}
}

func (t *tracker) withIP() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nWithIP
}

// summarize fills in res's latency figures. A Service counts as served only
// if its create call succeeded and its IP was seen.
func (t *tracker) summarize(res *result, start time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var latencies, pickup, allocate, publish []time.Duration
	var last time.Time
	for _, st := range t.services {
		if st.created.IsZero() || st.ingress.IsZero() {
			continue
		}
		latencies = append(latencies, st.ingress.Sub(st.created))
		if st.ingress.After(last) {
			last = st.ingress
		}
		if !st.finalizer.IsZero() && !st.allocated.IsZero() {
			pickup = append(pickup, st.finalizer.Sub(st.created))
			allocate = append(allocate, st.allocated.Sub(st.finalizer))
			publish = append(publish, st.ingress.Sub(st.allocated))
		}
	}
	res.failures = res.n - len(latencies)
	res.p50, res.p99, res.max = percentile(latencies, 0.50), percentile(latencies, 0.99), percentile(latencies, 1)
	if !last.IsZero() {
		res.lastIP = last
		res.total = last.Sub(start)
		res.perSecond = float64(len(latencies)) / res.total.Seconds()
	}
	if len(pickup) > 0 {
		res.stages = []stage{
			newStage("create→picked up", pickup),
			newStage("picked up→allocated", allocate),
			newStage("allocated→IP in status", publish),
		}
	}
	res.ipChanges = append([]string(nil), t.ipChanges...)
}

// stage is the spread of one step of the latency.
type stage struct {
	name     string
	p50, p99 time.Duration
	count    int
}

func newStage(name string, d []time.Duration) stage {
	return stage{name: name, p50: percentile(d, 0.50), p99: percentile(d, 0.99), count: len(d)}
}

// percentile returns the nearest-rank p-quantile of d (0 < p <= 1), sorting d
// in place; 0 for no samples.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(math.Ceil(p*float64(len(d)))) - 1
	return d[min(max(i, 0), len(d)-1)]
}
