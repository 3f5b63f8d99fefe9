package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ironlb/ironlb/test/framework"
)

// result is one run's outcome.
type result struct {
	syncs, n      int
	p50, p99, max time.Duration
	// total runs from the first create call to the last IP seen.
	total     time.Duration
	perSecond float64
	// peakRSS is the highest sampled VmRSS, hwm the kernel's VmHWM; bytes.
	peakRSS, hwm uint64
	// failures are Services that never got an IP (or whose create failed).
	failures           int
	createErrors       int64
	createErrorSamples []string
	endedBy            string
	// loadAvg is the machine's 1-minute load average when the run began:
	// other work on the box skews every figure.
	loadAvg string
	// addresses counts the ingress IPs of every Service at the end.
	addresses   int
	duplicates  []string
	outsidePool []string
	ipChanges   []string
	stages      []stage
	ccm         ccmStats
	// events counts, per reason, the Services that got such an Event.
	events map[string]int
}

var columns = []string{"syncs", "n", "p50", "p99", "max", "total", "services/s", "CCM peak RSS MiB", "VmHWM MiB", "failures", "duplicate IPs"}

func (r *result) row() []string {
	return []string{
		fmt.Sprint(r.syncs), fmt.Sprint(r.n),
		dur(r.p50), dur(r.p99), dur(r.max), dur(r.total),
		fmt.Sprintf("%.1f", r.perSecond),
		mib(r.peakRSS), mib(r.hwm),
		fmt.Sprint(r.failures), fmt.Sprint(len(r.duplicates)),
	}
}

// details are the figures behind the row: where the latency went, and what
// the CCM's metrics say about its queue and its API client.
func (r *result) details() []string {
	var out []string
	var st []string
	for _, s := range r.stages {
		st = append(st, fmt.Sprintf("%s p50 %s / p99 %s", s.name, dur(s.p50), dur(s.p99)))
	}
	out = append(out, "stages: "+strings.Join(st, "; "))
	if c := r.ccm; c.err != nil {
		out = append(out, fmt.Sprintf("ironlb-ccm metrics unavailable: %v", c.err))
	} else {
		settled := fmt.Sprintf("ironlb-ccm kept writing (Events) for %s after the last IP", dur(c.settled))
		if c.unsettled {
			settled = fmt.Sprintf("ironlb-ccm was still writing %s after the last IP; counts are partial", dur(c.settled))
		}
		out = append(out, settled)
		out = append(out, fmt.Sprintf("ironlb-ccm: %.0f service syncs (%.2f per Service), mean queue wait %s, mean sync %s; %.0f API requests (%.1f per Service; %s), mean %s; client-side rate limiter waits %s total, mean %s per request",
			c.serviceSyncs, c.serviceSyncs/float64(r.n), secs(c.queueWait), secs(c.syncTime),
			c.requests, c.requests/float64(r.n), strings.Join(c.byMethod, " "), secs(c.requestTime), secs(c.throttled), secs(c.throttledMean)))
	}
	if r.events != nil {
		var ev []string
		for _, reason := range eventReasons {
			ev = append(ev, fmt.Sprintf("%s %d", reason, r.events[reason]))
		}
		out = append(out, fmt.Sprintf("Services with an Event, of %d: %s", r.n, strings.Join(ev, ", ")))
	}
	out = append(out, fmt.Sprintf("load average at start %s; ended: %s; %d create errors; %d addresses held at the end, %d duplicated, %d outside the pool, %d changed after first seen",
		r.loadAvg, r.endedBy, r.createErrors, r.addresses, len(r.duplicates), len(r.outsidePool), len(r.ipChanges)))
	for _, e := range r.createErrorSamples {
		out = append(out, "create error: "+e)
	}
	for _, c := range r.ipChanges {
		out = append(out, "IP CHANGED: "+c)
	}
	for _, d := range r.duplicates {
		out = append(out, "DUPLICATE IP: "+d)
	}
	return out
}

func textReport(results []*result, env string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nbench-e2e: %s\n", env)
	fmt.Fprintf(&b, "ironlb-ccm runs with %s (framework.StartCCM's defaults) and --concurrent-service-syncs=<syncs>\n", ccmFlags)
	fmt.Fprintf(&b, "latency = first ingress IP seen by a watch − create call returned\n\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(columns, "\t")+"\t")
	for _, r := range results {
		fmt.Fprintln(tw, strings.Join(r.row(), "\t")+"\t")
	}
	_ = tw.Flush()
	for _, r := range results {
		fmt.Fprintf(&b, "\nsyncs=%d:\n", r.syncs)
		for _, d := range r.details() {
			fmt.Fprintf(&b, "  %s\n", d)
		}
	}
	return b.String()
}

func markdownReport(results []*result, opts options, env string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n### bench-e2e, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "`go run ./test/cmd/bench-e2e -n %d -syncs %s -clients %d -timeout %v` · %s · ironlb-ccm `%s --concurrent-service-syncs=<syncs>` · latency = first ingress IP seen by a watch − create call returned\n\n",
		opts.n, joinInts(opts.syncs), opts.clients, opts.timeout, env, ccmFlags)
	fmt.Fprintf(&b, "| %s |\n|%s\n", strings.Join(columns, " | "), strings.Repeat("---:|", len(columns)))
	for _, r := range results {
		fmt.Fprintf(&b, "| %s |\n", strings.Join(r.row(), " | "))
	}
	b.WriteString("\n")
	for _, r := range results {
		fmt.Fprintf(&b, "- syncs=%d: %s\n", r.syncs, strings.Join(r.details(), "; "))
	}
	return b.String()
}

func appendMarkdown(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// describeEnvironment names what the figures depend on: the machine (the
// apiserver, etcd, the CCM and this client all share its CPUs) and versions.
func describeEnvironment(ctx context.Context) string {
	parts := []string{fmt.Sprintf("%d CPUs", runtime.NumCPU()), runtime.Version()}
	if root, err := framework.RepoRoot(); err == nil {
		if v, err := framework.KubernetesVersion(root); err == nil {
			parts = append(parts, "kube-apiserver "+v)
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty")
		cmd.Dir = root
		if out, err := cmd.Output(); err == nil {
			parts = append(parts, "ironlb "+strings.TrimSpace(string(out)))
		}
	}
	return strings.Join(parts, ", ")
}

func dur(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d > -time.Millisecond && d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func secs(s float64) string { return dur(time.Duration(s * float64(time.Second))) }

func mib(b uint64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(b)/(1<<20))
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ",")
}

// loadAverage returns the 1-minute load average, "?" if unknown.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}
