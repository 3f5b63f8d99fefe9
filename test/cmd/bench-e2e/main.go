// Command bench-e2e measures, end to end, how fast ironlb-ccm gives
// type: LoadBalancer Services their external IPs, side by side with the real
// binaries of its peers, in one run, on the same machine, under the same
// load: against a real etcd and kube-apiserver on loopback.
//
//	go run ./test/cmd/bench-e2e [-n 300] [-clients 6] [-contestants ironlb,kube-vip,metallb] [-out FILE]
//	go run ./test/cmd/bench-e2e -leader-kill 3s [-contestants ironlb]
//
// The contestants:
//   - ironlb: ironlb-ccm as installed, with the arguments of its container in
//     manifests/base/ccm.yaml (read at run time); ironlb:syncs=N is the same
//     with --concurrent-service-syncs=N (-syncs 1,10 is shorthand for these).
//   - kube-vip: kube-vip-cloud-provider, as its own manifest runs it, with
//     the pool as cidr-global in its ConfigMap kube-system/kubevip. It writes
//     the address into the annotation kube-vip.io/loadbalancerIPs, not into
//     the status, so that annotation is what is watched for.
//   - metallb: MetalLB's controller, with its CRDs and one IPAddressPool.
//
// The peers are built by exact version from their own tools modules under
// test/peers (hack/ensure-peers.sh, cached in .cache/bin), never from
// ironlb's go.mod.
//
// For each contestant it starts a fresh control plane, configures the same
// pool, starts the contestant, and proves the pipeline works with one
// warm-up Service outside the measurement. It then creates n Services from
// -clients goroutines, as fast as the apiserver accepts them, while a watch
// (a client-go informer, not polling) records when each Service first shows
// an address. Latency is that moment minus the moment its create call
// returned; "all assigned after" runs from the first create call to the last
// address seen.
//
// With -leader-kill D it runs two ironlb-ccm replicas as installed (binary
// leader-election defaults), finds the leader from the holder of the Lease
// ironlb-system/ironlb-cloud-controller-manager, kills it with SIGKILL D
// after the first create, and reports how long after the kill every Service
// had an address, and whether any address was handed out twice.
//
// Results go to stdout as a table with each peer's ratio to ironlb (and,
// with -out, are appended to FILE as Markdown); progress goes to stderr. The
// exit status is 1 if any run failed to start, any address was handed out
// twice, or an ironlb contestant did not give every Service an address
// within -timeout. A peer that does not finish in time is reported with how
// many it assigned: that is a figure, not a failure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ironlb/ironlb/test/framework"
)

// maxServices keeps n inside both the /16 service CIDR and the /16 pool,
// with room for the kubernetes and warm-up Services.
const maxServices = 65000

type options struct {
	n           int
	contestants []contestant
	clients     int
	out         string
	timeout     time.Duration
	logs        string
	// leaderKill, if positive, selects the leader-kill mode: the leader of
	// two ironlb-ccm replicas is killed this long after the first create.
	leaderKill time.Duration
	// args are the command-line arguments, for the Markdown report.
	args []string
}

func main() {
	opts, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench-e2e: %v\n", err)
		os.Exit(2)
	}
	// Children run in their own process groups, so ^C reaches only us; the
	// context's end tears them down. A second ^C, after stop, kills us
	// outright and the kernel (Pdeathsig) takes the children with us.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, opts)
	stop()
	os.Exit(code)
}

func parseFlags(args []string) (options, error) {
	opts := options{args: args}
	fs := flag.NewFlagSet("bench-e2e", flag.ContinueOnError)
	fs.IntVar(&opts.n, "n", 300, "number of LoadBalancer Services to create per run")
	names := fs.String("contestants", defaultContestants, "comma-separated contestants, one fresh run each: ironlb (as installed), ironlb:syncs=N, kube-vip, metallb")
	syncs := fs.String("syncs", "", "comma-separated --concurrent-service-syncs values: adds ironlb:syncs=N for each (alone, without -contestants: only these run)")
	fs.IntVar(&opts.clients, "clients", 6, "goroutines creating Services concurrently")
	fs.StringVar(&opts.out, "out", "", "append the results as Markdown to this file")
	fs.DurationVar(&opts.timeout, "timeout", 120*time.Second, "per run: how long creating the Services and waiting for their addresses may take")
	fs.DurationVar(&opts.leaderKill, "leader-kill", 0, "run two ironlb-ccm replicas and kill the leader with SIGKILL this long after the first create (ironlb contestants only)")
	fs.StringVar(&opts.logs, "logs", "", "keep each run's state and logs (etcd, kube-apiserver, the contestant) in DIR/<contestant> instead of a removed temporary directory")
	if err := fs.Parse(args); err != nil {
		return opts, err
	}
	if fs.NArg() > 0 {
		return opts, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var err error
	if opts.contestants, err = parseContestants(*names); err != nil {
		return opts, fmt.Errorf("-contestants: %w", err)
	}
	if set["syncs"] {
		values, err := parseSyncs(*syncs)
		if err != nil {
			return opts, err
		}
		if !set["contestants"] {
			opts.contestants = nil
		}
		for _, v := range values {
			c := contestant{name: fmt.Sprintf("%s:syncs=%d", nameIronLB, v), kind: kindIronLB, syncs: v}
			if slices.ContainsFunc(opts.contestants, func(o contestant) bool { return o.name == c.name }) {
				return opts, fmt.Errorf("-syncs %d: contestant %q given twice", v, c.name)
			}
			opts.contestants = append(opts.contestants, c)
		}
	}
	if opts.leaderKill > 0 {
		var ironlb []contestant
		for _, c := range opts.contestants {
			if c.kind != kindIronLB {
				if set["contestants"] {
					return opts, fmt.Errorf("-leader-kill runs ironlb only, not %q", c.name)
				}
				continue // the default list: the peers sit this mode out
			}
			ironlb = append(ironlb, c)
		}
		opts.contestants = ironlb
	}
	switch {
	case opts.n < 1 || opts.n > maxServices:
		return opts, fmt.Errorf("-n must be between 1 and %d, got %d", maxServices, opts.n)
	case opts.clients < 1:
		return opts, fmt.Errorf("-clients must be at least 1, got %d", opts.clients)
	case opts.timeout <= 0:
		return opts, fmt.Errorf("-timeout must be positive, got %v", opts.timeout)
	case opts.leaderKill < 0:
		return opts, fmt.Errorf("-leader-kill must not be negative, got %v", opts.leaderKill)
	case opts.leaderKill >= opts.timeout:
		return opts, fmt.Errorf("-leader-kill %v must be shorter than -timeout %v", opts.leaderKill, opts.timeout)
	case len(opts.contestants) == 0:
		return opts, errors.New("no contestant to run")
	}
	return opts, nil
}

func parseSyncs(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("-syncs: %q is not a positive integer", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// failure is a contestant that produced no figures, and why.
type failure struct {
	c   contestant
	err error
}

// run does every requested run in turn and reports what completed, even when
// a run fails or is interrupted.
func run(ctx context.Context, opts options) int {
	env := describeEnvironment(ctx)
	names := make([]string, len(opts.contestants))
	for i, c := range opts.contestants {
		names[i] = c.name
	}
	mode := ""
	if opts.leaderKill > 0 {
		mode = fmt.Sprintf(", leader kill after %v", opts.leaderKill)
	}
	logf("bench-e2e: n=%d, clients=%d, contestants=%s, timeout=%v per run%s; %s", opts.n, opts.clients, strings.Join(names, ","), opts.timeout, mode, env)

	setup, failures := prepare(ctx, opts)
	var results []*result
	for _, c := range opts.contestants {
		if ctx.Err() != nil {
			break
		}
		if slices.ContainsFunc(failures, func(f failure) bool { return f.c.name == c.name }) {
			continue // its setup failed; already reported
		}
		var res *result
		var err error
		if opts.leaderKill > 0 {
			res, err = benchLeaderKill(ctx, opts, c, setup)
		} else {
			res, err = benchOnce(ctx, opts, c, setup)
		}
		if res != nil {
			results = append(results, res)
		}
		if err != nil {
			logf("bench-e2e: %s: %v", c.name, err)
			failures = append(failures, failure{c, err})
		}
	}

	var runErr error
	if len(results) > 0 || len(failures) > 0 {
		fmt.Print(textReport(results, failures, setup, opts, env))
		if opts.out != "" {
			if err := appendMarkdown(opts.out, markdownReport(results, failures, setup, opts, env)); err != nil {
				logf("bench-e2e: writing %s: %v", opts.out, err)
				runErr = err
			} else {
				logf("bench-e2e: results appended to %s", opts.out)
			}
		}
	}
	code := 0
	if runErr != nil || len(failures) > 0 || ctx.Err() != nil {
		code = 1
	}
	for _, r := range results {
		if len(r.duplicates) > 0 {
			logf("bench-e2e: FAIL: %s handed out %d address(es) more than once:\n  %s",
				r.c.name, len(r.duplicates), strings.Join(r.duplicates, "\n  "))
			code = 1
		}
		if r.failures > 0 && r.c.kind == kindIronLB {
			logf("bench-e2e: FAIL: %s: %d of %d Services never got an IP (%s)", r.c.name, r.failures, r.n, r.endedBy)
			code = 1
		}
	}
	return code
}

// setup is what every run shares, found before the first one.
type setup struct {
	// installed are ironlb-ccm's arguments from its manifest, dropped those
	// left out (see keepOutsidePod).
	installed, dropped []string
	// bins are the peers' binaries.
	bins map[kind]string
}

// prepare reads ironlb's install manifest and builds (or finds) the peers'
// binaries before any run, so no build shares the machine with a
// measurement. A contestant whose preparation fails is returned as a
// failure; the others still run.
func prepare(ctx context.Context, opts options) (setup, []failure) {
	s := setup{bins: map[kind]string{}}
	var failures []failure
	var manifestErr error
	manifestRead := false
	for _, c := range opts.contestants {
		if p, ok := c.peer(); ok {
			if _, done := s.bins[c.kind]; done {
				continue
			}
			bin, err := p.Binary(ctx)
			if err != nil {
				failures = append(failures, failure{c, err})
				continue
			}
			s.bins[c.kind] = bin
			continue
		}
		if !manifestRead {
			manifestRead = true
			root, err := framework.RepoRoot()
			if err == nil {
				s.installed, s.dropped, err = installedArgs(root)
			}
			manifestErr = err
		}
		if manifestErr != nil {
			failures = append(failures, failure{c, fmt.Errorf("reading ironlb-ccm's arguments: %w", manifestErr)})
		}
	}
	for _, f := range failures {
		logf("bench-e2e: %s cannot run: %v", f.c.name, f.err)
	}
	return s, failures
}

// logf writes a progress line to stderr, keeping stdout for the results.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}
