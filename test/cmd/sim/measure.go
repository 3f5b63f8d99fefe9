package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gometrics "github.com/hashicorp/go-metrics"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/component-base/metrics/legacyregistry"

	"github.com/ironlb/ironlb/test/framework"
)

// apiCounter counts the bytes of every write request's body (create,
// update, patch, delete) the speakers send.
type apiCounter struct {
	bytes atomic.Int64
	mu    sync.Mutex
	// By resource and verb, for the breakdown: bytes and requests.
	byRes, requestsByRes map[string]int64
}

func (c *apiCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		switch req.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
			if req.ContentLength > 0 {
				c.bytes.Add(req.ContentLength)
				// Decoded outside the lock every speaker's writes take.
				key := resourceOf(req.URL.Path) + " " + req.Method
				if key == "events POST" && req.GetBody != nil {
					if reason, err := eventReason(req); err == nil {
						key += " " + reason
					}
				}
				c.mu.Lock()
				if c.byRes == nil {
					c.byRes, c.requestsByRes = map[string]int64{}, map[string]int64{}
				}
				c.byRes[key] += req.ContentLength
				c.requestsByRes[key]++
				c.mu.Unlock()
			}
		}
		return rt.RoundTrip(req)
	})
}

// eventReason is the reason of the Event a request creates, in either
// encoding the clientset may send.
func eventReason(req *http.Request) (string, error) {
	body, err := req.GetBody()
	if err != nil {
		return "", err
	}
	defer body.Close()
	raw, err := io.ReadAll(body)
	if err != nil {
		return "", err
	}
	obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(raw, nil, nil)
	if err != nil {
		return "", err
	}
	ev, ok := obj.(*corev1.Event)
	if !ok {
		return "", fmt.Errorf("an events POST sent a %T", obj)
	}
	return ev.Reason, nil
}

func (c *apiCounter) written() int64 { return c.bytes.Load() }

// waitQuiet waits until nothing has been written for quiet.
func (c *apiCounter) waitQuiet(ctx context.Context, quiet, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	last, since := c.written(), time.Now()
	for time.Since(since) < quiet {
		if time.Now().After(deadline) {
			return fmt.Errorf("the API writes did not stop for %v within %v", quiet, bound)
		}
		if err := framework.Sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
		if n := c.written(); n != last {
			last, since = n, time.Now()
		}
	}
	return nil
}

// quietRates is the bytes per second written by resource and verb over
// window, while nothing is changed: the writes that go on whatever happens
// (the sweeper's side Lease renewals).
func (c *apiCounter) quietRates(ctx context.Context, window time.Duration) (map[string]float64, error) {
	before, start := c.breakdown(), time.Now()
	if err := framework.Sleep(ctx, window); err != nil {
		return nil, err
	}
	rates := map[string]float64{}
	for key, n := range c.breakdown() {
		if d := n - before[key]; d > 0 {
			rates[key] = float64(d) / time.Since(start).Seconds()
		}
	}
	return rates, nil
}

// breakdown is the bytes written so far by resource and verb.
func (c *apiCounter) breakdown() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.byRes)
}

// requests is the number of write requests so far by resource and verb.
func (c *apiCounter) requests() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.requestsByRes)
}

// resourceOf is the resource a request path names: the segment after the
// namespace and its name, or after the version.
func resourceOf(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i, p := range parts {
		if p == "namespaces" && i+2 < len(parts) {
			return parts[i+2]
		}
	}
	if len(parts) >= 4 && parts[0] == "apis" {
		return parts[3]
	}
	if len(parts) >= 3 && parts[0] == "api" {
		return parts[2]
	}
	return path
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// gossipSink adds up the bytes every memberlist of the process sends (UDP
// and TCP), from memberlist's own metrics.
type gossipSink struct {
	gometrics.BlackholeSink
	sent atomic.Int64
}

func (s *gossipSink) IncrCounterWithLabels(key []string, val float32, _ []gometrics.Label) {
	if len(key) >= 3 && key[len(key)-3] == "memberlist" && key[len(key)-1] == "sent" {
		s.sent.Add(int64(val))
	}
}

func (s *gossipSink) IncrCounter(key []string, val float32) { s.IncrCounterWithLabels(key, val, nil) }

// countGossip installs the sink (before any memberlist starts) and returns
// a reader of the bytes sent so far.
func countGossip() func() float64 {
	sink := &gossipSink{}
	cfg := gometrics.DefaultConfig("")
	cfg.EnableHostname, cfg.EnableRuntimeMetrics, cfg.EnableServiceLabel = false, false, false
	_, _ = gometrics.NewGlobal(cfg, sink)
	return func() float64 { return float64(sink.sent.Load()) }
}

// processCPU is the CPU time this process used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func numCPU() int { return runtime.NumCPU() }

// histogram is ironlb_speaker_sync_duration_seconds summed over kinds and
// speakers: cumulative counts per upper bound.
type histogram struct {
	bounds []float64
	counts []uint64
}

func syncHistogram() histogram {
	families, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		return histogram{}
	}
	var h histogram
	for _, f := range families {
		if f.GetName() != "ironlb_speaker_sync_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			for i, b := range m.GetHistogram().GetBucket() {
				if len(h.bounds) <= i {
					h.bounds = append(h.bounds, b.GetUpperBound())
					h.counts = append(h.counts, 0)
				}
				h.counts[i] += b.GetCumulativeCount()
			}
		}
	}
	return h
}

// since is h minus an earlier snapshot.
func (h histogram) since(earlier histogram) histogram {
	out := histogram{bounds: h.bounds, counts: slices.Clone(h.counts)}
	for i := range out.counts {
		if i < len(earlier.counts) {
			out.counts[i] -= earlier.counts[i]
		}
	}
	return out
}

// quantile is the upper bound of the bucket holding quantile q: the
// histogram's resolution (a factor of 2).
func (h histogram) quantile(q float64) time.Duration {
	if len(h.counts) == 0 || h.counts[len(h.counts)-1] == 0 {
		return 0
	}
	total := float64(h.counts[len(h.counts)-1])
	for i, c := range h.counts {
		if float64(c) >= q*total {
			if math.IsInf(h.bounds[i], 1) {
				break
			}
			return time.Duration(h.bounds[i] * float64(time.Second))
		}
	}
	return time.Duration(math.MaxInt64)
}
