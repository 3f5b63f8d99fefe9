package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ironlb/ironlb/test/framework"
)

const (
	rssInterval   = 100 * time.Millisecond
	quietInterval = time.Second
	quietTimeout  = 2 * time.Minute
)

// rssSampler polls a process's resident set size. A poll can miss a short
// spike; the kernel's VmHWM (read at the end, see hwm) cannot.
type rssSampler struct {
	pid    int
	cancel context.CancelFunc
	done   chan struct{}
	peak   uint64 // bytes; written only by the sampling goroutine until done
}

func startRSSSampler(ctx context.Context, pid int) *rssSampler {
	ctx, cancel := context.WithCancel(ctx)
	s := &rssSampler{pid: pid, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(rssInterval)
		defer tick.Stop()
		for {
			if v, err := procStatusBytes(pid, "VmRSS"); err == nil {
				s.peak = max(s.peak, v)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// stop ends sampling and returns the peak seen. It is safe to call again.
func (s *rssSampler) stop() uint64 {
	s.cancel()
	<-s.done
	return s.peak
}

// hwm returns the process's peak RSS as the kernel counted it, 0 if unknown.
// It must be read while the process still runs.
func (s *rssSampler) hwm() uint64 {
	v, _ := procStatusBytes(s.pid, "VmHWM")
	return v
}

// procStatusBytes reads a "Field:  1234 kB" line of /proc/<pid>/status.
func procStatusBytes(pid int, field string) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), field+":")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("/proc/%d/status: unexpected %s line %q", pid, field, sc.Text())
		}
		kb, err := strconv.ParseUint(fields[0], 10, 64)
		return kb * 1024, err
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s (process exited?)", pid, field)
}

// ccmStats are what ironlb-ccm's own /metrics say about the run; they show
// where its time went. The counters cover the CCM's whole life, warm-up
// included.
type ccmStats struct {
	err error
	// serviceSyncs is how often the service controller dequeued a Service.
	serviceSyncs float64
	// queueWait and syncTime are mean seconds a Service waited in the
	// service controller's queue and spent being synced.
	queueWait, syncTime float64
	// requests is the CCM's API calls; requestTime their mean seconds.
	requests, requestTime float64
	// byMethod splits requests by HTTP method, e.g. "PATCH=2003".
	byMethod []string
	// writes counts POSTs and PATCHes: Events and Service updates.
	writes float64
	// settled is how long after the last IP the CCM kept writing; it is
	// set by waitCCMQuiet, unsettled if it never stopped within its bound.
	settled   time.Duration
	unsettled bool
	// throttled is the total seconds the CCM's clients waited for their own
	// rate limiters (--kube-api-qps/--kube-api-burst); throttledMean per call.
	throttled, throttledMean float64
}

func scrapeCCM(ctx context.Context, ccm *framework.CCM) ccmStats {
	ctx, cancel := context.WithTimeout(ctx, collectTimeout)
	defer cancel()
	code, body, err := ccm.Get(ctx, "/metrics")
	if err == nil && code != 200 {
		err = fmt.Errorf("GET /metrics: status %d", code)
	}
	if err != nil {
		return ccmStats{err: err}
	}
	m := parseMetrics(body)
	svc := `name="service"`
	var byMethod []string
	var writes float64
	for _, method := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		v := m.sum("rest_client_requests_total", `method="`+method+`"`)
		if v > 0 {
			byMethod = append(byMethod, fmt.Sprintf("%s=%.0f", method, v))
		}
		if method == "POST" || method == "PATCH" {
			writes += v
		}
	}
	return ccmStats{
		byMethod:      byMethod,
		writes:        writes,
		serviceSyncs:  m.sum("workqueue_adds_total", svc),
		queueWait:     m.mean("workqueue_queue_duration_seconds", svc),
		syncTime:      m.mean("workqueue_work_duration_seconds", svc),
		requests:      m.sum("rest_client_requests_total"),
		requestTime:   m.mean("rest_client_request_duration_seconds"),
		throttled:     m.sum("rest_client_rate_limiter_duration_seconds_sum"),
		throttledMean: m.mean("rest_client_rate_limiter_duration_seconds"),
	}
}

// waitCCMQuiet polls ironlb-ccm's metrics until it stops writing, and
// returns the final figures. Events are written by one serial goroutine per
// recorder, which can fall far behind a busy queue; waiting lets the request
// counts cover everything the run caused (and shows how far behind it was).
// Lease renewals are PUTs, so they do not keep it from settling.
func waitCCMQuiet(ctx context.Context, ccm *framework.CCM) ccmStats {
	begin := time.Now()
	ctx, cancel := context.WithTimeout(ctx, quietTimeout)
	defer cancel()
	prev := scrapeCCM(ctx, ccm)
	for prev.err == nil {
		select {
		case <-ctx.Done():
			prev.settled, prev.unsettled = time.Since(begin), true
			return prev
		case <-time.After(quietInterval):
		}
		cur := scrapeCCM(ctx, ccm)
		if cur.err == nil && cur.writes == prev.writes {
			// The CCM went quiet somewhere in the last interval.
			cur.settled = time.Since(begin) - quietInterval
			return cur
		}
		prev = cur
	}
	return prev
}

// metrics is a Prometheus text exposition: sample name → one entry per
// series, holding the label block ("{a="b",…}" or "") and the value.
type metrics map[string][]series

type series struct {
	labels string
	value  float64
}

// parseMetrics reads the text format well enough for the counters and
// histogram sums this command uses; lines it cannot read are skipped.
func parseMetrics(text string) metrics {
	m := metrics{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		name, labels := strings.TrimSpace(line[:sp]), ""
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name, labels = name[:i], name[i:]
		}
		m[name] = append(m[name], series{labels: labels, value: v})
	}
	return m
}

// sum adds up the series of name that carry every label pair in match
// (written as in the exposition, e.g. `name="service"`).
func (m metrics) sum(name string, match ...string) float64 {
	var total float64
	for _, s := range m[name] {
		if hasLabels(s.labels, match) {
			total += s.value
		}
	}
	return total
}

// mean is a histogram's or summary's _sum over its _count; 0 if empty.
func (m metrics) mean(name string, match ...string) float64 {
	count := m.sum(name+"_count", match...)
	if count == 0 {
		return 0
	}
	return m.sum(name+"_sum", match...) / count
}

func hasLabels(labels string, match []string) bool {
	for _, l := range match {
		if !strings.Contains(labels, "{"+l) && !strings.Contains(labels, ","+l) {
			return false
		}
	}
	return true
}
