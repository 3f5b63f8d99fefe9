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
	c contestant
	// label names the contestant in reports (peers with their versions);
	// cmdline is how its binary was started, the run's folder shown as $DIR.
	label, cmdline string
	n              int
	p50, p99, max  time.Duration
	// total runs from the first create call to the last address seen, at
	// lastIP; waited from the first create call to the end of the wait.
	total, waited time.Duration
	lastIP        time.Time
	perSecond     float64
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
	// addresses counts the addresses of every Service at the end.
	addresses   int
	duplicates  []string
	outsidePool []string
	ipChanges   []string
	stages      []stage
	// ccm is what the contestant's cloud-provider /metrics said, if
	// hasMetrics.
	ccm        ccmStats
	hasMetrics bool
	// events counts, per reason, the Services that got such an Event.
	events map[string]int
	// kill is set in the leader-kill mode.
	kill *killReport
}

func (r *result) assigned() int { return r.n - r.failures }

func (r *result) complete() bool { return r.failures == 0 }

var columns = []string{"contestant", "n", "assigned", "p50", "p99", "max", "all assigned after", "services/s", "peak RSS MiB", "VmHWM MiB", "duplicate IPs", "load avg"}

func (r *result) row() []string {
	all := dur(r.total)
	if !r.complete() {
		all = "not within " + dur(r.waited.Round(100*time.Millisecond))
	}
	name := r.label
	if r.kill != nil {
		name += " ×2, leader killed"
	}
	return []string{
		name, fmt.Sprint(r.n), fmt.Sprint(r.assigned()),
		dur(r.p50), dur(r.p99), dur(r.max), all,
		fmt.Sprintf("%.1f", r.perSecond),
		mib(r.peakRSS), mib(r.hwm),
		fmt.Sprint(len(r.duplicates)), r.loadAvg,
	}
}

// details are the figures behind the row: how the contestant ran, where the
// latency went, and what its metrics say about its queue and API client.
func (r *result) details() []string {
	out := []string{"command: " + r.cmdline}
	if k := r.kill; k != nil {
		out = append(out, k.lines(r)...)
	}
	if len(r.stages) > 0 {
		var st []string
		for _, s := range r.stages {
			st = append(st, fmt.Sprintf("%s p50 %s / p99 %s", s.name, stageDur(s.p50), stageDur(s.p99)))
		}
		out = append(out, "stages: "+strings.Join(st, "; "))
	}
	if r.hasMetrics {
		name := r.c.name
		if c := r.ccm; c.err != nil {
			out = append(out, fmt.Sprintf("%s metrics unavailable: %v", name, c.err))
		} else {
			switch {
			case !r.complete():
				out = append(out, fmt.Sprintf("%s metrics read once when the run gave up", name))
			case c.unsettled:
				out = append(out, fmt.Sprintf("%s was still writing %s after the last address; counts are partial", name, dur(c.settled)))
			default:
				out = append(out, fmt.Sprintf("%s kept writing (Events) for %s after the last address", name, dur(c.settled)))
			}
			queue := "no workqueue named service in its metrics"
			if c.serviceSyncs > 0 {
				queue = fmt.Sprintf("%.0f service syncs (%.2f per Service), mean queue wait %s, mean sync %s",
					c.serviceSyncs, c.serviceSyncs/float64(r.n), secs(c.queueWait), secs(c.syncTime))
			}
			out = append(out, fmt.Sprintf("%s: %s; %.0f API requests (%.1f per Service; %s), mean %s; client-side rate limiter waits %s total, mean %s per request",
				name, queue, c.requests, c.requests/float64(r.n), strings.Join(c.byMethod, " "), secs(c.requestTime), secs(c.throttled), secs(c.throttledMean)))
		}
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

// baseline is the run the peers are compared with: ironlb as installed if
// it ran, else the first ironlb run.
func baseline(results []*result) *result {
	var first *result
	for _, r := range results {
		if r.c.kind != kindIronLB {
			continue
		}
		if r.c.syncs == 0 {
			return r
		}
		if first == nil {
			first = r
		}
	}
	return first
}

// ratio is a/b as "18.8x" ("3337x" from 100 on), "n/a" when either is
// unknown.
func ratio(a, b time.Duration) string {
	if a <= 0 || b <= 0 {
		return "n/a"
	}
	r := float64(a) / float64(b)
	if r >= 100 {
		return fmt.Sprintf("%.0fx", r)
	}
	return fmt.Sprintf("%.1fx", r)
}

// stageDur is dur for a stage, where zero is a measured value (two marks
// seen in the same watch event), not a missing one.
func stageDur(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	return dur(d)
}

// comparisons returns one line per peer run: its figures next to the
// baseline's, and their ratio (peer ÷ ironlb: above 1, ironlb was faster).
func comparisons(results []*result) []string {
	base := baseline(results)
	if base == nil {
		return nil
	}
	var out []string
	for _, r := range results {
		if r.c.kind != kindIronLB {
			out = append(out, compare(r, base))
		}
	}
	return out
}

func compare(peer, base *result) string {
	bn := base.c.name
	var all string
	switch {
	case !base.complete():
		p := assignedWithin(peer)
		if peer.complete() {
			p = "all assigned " + human(peer.total)
		}
		all = fmt.Sprintf("%s vs %s %s (no ratio: %s did not assign all)", p, bn, assignedWithin(base), bn)
	case peer.complete():
		all = fmt.Sprintf("all assigned %s vs %s %s (%s)", human(peer.total), bn, human(base.total), ratio(peer.total, base.total))
	default:
		all = fmt.Sprintf("%s vs %s all in %s (more than %s)", assignedWithin(peer), bn, human(base.total), ratio(peer.waited, base.total))
	}
	of := ""
	if !peer.complete() {
		of = " of those assigned"
	}
	return fmt.Sprintf("%s: %s; p50%s %s vs %s (%s); p99%s %s vs %s (%s)", peer.label, all,
		of, human(peer.p50), human(base.p50), ratio(peer.p50, base.p50),
		of, human(peer.p99), human(base.p99), ratio(peer.p99, base.p99))
}

func assignedWithin(r *result) string {
	return fmt.Sprintf("assigned %d of %d within %s", r.assigned(), r.n, human(r.waited))
}

// human writes a duration for prose: "85 ms", "3.1 s".
func human(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Round(time.Millisecond).Milliseconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

// preamble says what was measured and how; the same for text and Markdown.
func preamble(opts options, setup setup) []string {
	out := []string{
		fmt.Sprintf("%d LoadBalancer Services created by %d concurrent clients per run; every contestant on a fresh etcd + kube-apiserver with the same pool %s",
			opts.n, opts.clients, joinPrefixes(poolPrefixes(opts.n), ", ")),
		"latency = address first seen by a watch − create call returned (ironlb, MetalLB: status.loadBalancer.ingress; kube-vip-cloud-provider: annotation " + kubeVIPAnnotation + "); all assigned after = first create call → last address seen",
	}
	for _, c := range opts.contestants {
		if c.kind == kindIronLB {
			dropped := "none"
			if len(setup.dropped) > 0 {
				dropped = strings.Join(setup.dropped, " ")
			}
			out = append(out, fmt.Sprintf("ironlb as installed: the args of %s (%s; left out as meaningless outside the pod: %s), after the flags framework.StartCCM adds",
				ccmManifest, strings.Join(setup.installed, " "), dropped))
			break
		}
	}
	if opts.leaderKill > 0 {
		out = append(out, fmt.Sprintf("leader kill: two replicas, binary leader-election defaults; the Lease holder is killed with SIGKILL %v after the first create", opts.leaderKill))
	}
	return out
}

func textReport(results []*result, failures []failure, setup setup, opts options, env string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nbench-e2e: %s\n", env)
	for _, l := range preamble(opts, setup) {
		fmt.Fprintln(&b, l)
	}
	b.WriteString("\n")
	if len(results) > 0 {
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, strings.Join(columns, "\t")+"\t")
		for _, r := range results {
			fmt.Fprintln(tw, strings.Join(r.row(), "\t")+"\t")
		}
		_ = tw.Flush()
	}
	if cmp := comparisons(results); len(cmp) > 0 {
		fmt.Fprintf(&b, "\npeers vs ironlb (ratio = peer ÷ ironlb):\n")
		for _, l := range cmp {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	for _, r := range results {
		fmt.Fprintf(&b, "\n%s:\n", r.c.name)
		for _, d := range r.details() {
			fmt.Fprintf(&b, "  %s\n", d)
		}
	}
	for _, f := range failures {
		fmt.Fprintf(&b, "\n%s FAILED: %v\n", f.c.name, f.err)
	}
	return b.String()
}

func markdownReport(results []*result, failures []failure, setup setup, opts options, env string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n### bench-e2e, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "`go run ./test/cmd/bench-e2e %s` · %s\n\n", strings.Join(opts.args, " "), env)
	for _, l := range preamble(opts, setup) {
		fmt.Fprintf(&b, "- %s\n", l)
	}
	b.WriteString("\n")
	if len(results) > 0 {
		fmt.Fprintf(&b, "| %s |\n|%s\n", strings.Join(columns, " | "), ":---|"+strings.Repeat("---:|", len(columns)-1))
		for _, r := range results {
			fmt.Fprintf(&b, "| %s |\n", strings.Join(r.row(), " | "))
		}
		b.WriteString("\n")
	}
	for _, l := range comparisons(results) {
		fmt.Fprintf(&b, "- %s\n", l)
	}
	for _, r := range results {
		fmt.Fprintf(&b, "- %s: %s\n", r.c.name, strings.Join(r.details(), "; "))
	}
	for _, f := range failures {
		fmt.Fprintf(&b, "- %s FAILED: %s\n", f.c.name, strings.ReplaceAll(f.err.Error(), "\n", " "))
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

// loadAverage returns the 1-minute load average, "?" if unknown.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}
