package main

import (
	"math"
	"net/http"
	"runtime"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	gometrics "github.com/hashicorp/go-metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

// apiCounter counts the bytes of every write request's body (create,
// update, patch, delete) the speakers send.
type apiCounter struct {
	bytes atomic.Int64
}

func (c *apiCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		switch req.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
			if req.ContentLength > 0 {
				c.bytes.Add(req.ContentLength)
			}
		}
		return rt.RoundTrip(req)
	})
}

func (c *apiCounter) written() int64 { return c.bytes.Load() }

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
