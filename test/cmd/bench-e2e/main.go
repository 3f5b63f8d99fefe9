// Command bench-e2e measures, end to end, how fast ironlb-ccm gives
// type: LoadBalancer Services their external IPs: against a real etcd and
// kube-apiserver on loopback, with the real ironlb-ccm binary.
//
//	go run ./test/cmd/bench-e2e [-n 1000] [-syncs 1,10] [-clients 8] [-out FILE]
//
// For each --concurrent-service-syncs value it starts a fresh control plane,
// applies a pool big enough for n services, starts ironlb-ccm, and proves the
// pipeline works with one warm-up Service outside the measurement. It then
// creates n Services from -clients goroutines, as fast as the apiserver
// accepts them, while a watch (a client-go informer, not polling) records when
// each Service first shows an ingress IP. Latency is that moment minus the
// moment its create call returned.
//
// Results go to stdout as a table (and, with -out, are appended to FILE as
// Markdown); progress goes to stderr. The exit status is 1 if any run failed
// to start, any Service never got an IP within -timeout, or any IP was handed
// out twice.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// maxServices keeps n inside both the /16 service CIDR and the /16 pool,
// with room for the kubernetes and warm-up Services.
const maxServices = 65000

type options struct {
	n       int
	syncs   []int
	clients int
	out     string
	timeout time.Duration
	logs    string
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
	opts := options{}
	fs := flag.NewFlagSet("bench-e2e", flag.ContinueOnError)
	fs.IntVar(&opts.n, "n", 1000, "number of LoadBalancer Services to create per run")
	syncs := fs.String("syncs", "1,10", "comma-separated --concurrent-service-syncs values; one fresh run each")
	fs.IntVar(&opts.clients, "clients", 8, "goroutines creating Services concurrently")
	fs.StringVar(&opts.out, "out", "", "append the results as a Markdown table to this file")
	fs.DurationVar(&opts.timeout, "timeout", 10*time.Minute, "per run: how long creating the Services and waiting for their IPs may take")
	fs.StringVar(&opts.logs, "logs", "", "keep each run's state and logs (etcd, kube-apiserver, ironlb-ccm) in DIR/syncs-N instead of a removed temporary directory")
	if err := fs.Parse(args); err != nil {
		return opts, err
	}
	if fs.NArg() > 0 {
		return opts, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if opts.syncs, err = parseSyncs(*syncs); err != nil {
		return opts, err
	}
	switch {
	case opts.n < 1 || opts.n > maxServices:
		return opts, fmt.Errorf("-n must be between 1 and %d, got %d", maxServices, opts.n)
	case opts.clients < 1:
		return opts, fmt.Errorf("-clients must be at least 1, got %d", opts.clients)
	case opts.timeout <= 0:
		return opts, fmt.Errorf("-timeout must be positive, got %v", opts.timeout)
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

// run does every requested run in turn and reports what completed, even when
// a later run fails or is interrupted.
func run(ctx context.Context, opts options) int {
	env := describeEnvironment(ctx)
	logf("bench-e2e: n=%d, syncs=%v, clients=%d, timeout=%v per run; %s", opts.n, opts.syncs, opts.clients, opts.timeout, env)

	var results []*result
	var runErr error
	for _, syncs := range opts.syncs {
		res, err := benchOnce(ctx, opts, syncs)
		if res != nil {
			results = append(results, res)
		}
		if err != nil {
			runErr = fmt.Errorf("run with --concurrent-service-syncs=%d: %w", syncs, err)
			break
		}
	}

	if len(results) > 0 {
		fmt.Print(textReport(results, env))
		if opts.out != "" {
			if err := appendMarkdown(opts.out, markdownReport(results, opts, env)); err != nil {
				logf("bench-e2e: writing %s: %v", opts.out, err)
				runErr = errors.Join(runErr, err)
			} else {
				logf("bench-e2e: results appended to %s", opts.out)
			}
		}
	}

	code := 0
	if runErr != nil {
		logf("bench-e2e: %v", runErr)
		code = 1
	}
	for _, r := range results {
		if len(r.duplicates) > 0 {
			logf("bench-e2e: FAIL: --concurrent-service-syncs=%d handed out %d address(es) more than once:\n  %s",
				r.syncs, len(r.duplicates), strings.Join(r.duplicates, "\n  "))
			code = 1
		}
		if r.failures > 0 {
			logf("bench-e2e: FAIL: --concurrent-service-syncs=%d: %d of %d Services never got an IP (%s)", r.syncs, r.failures, r.n, r.endedBy)
			code = 1
		}
	}
	return code
}

// logf writes a progress line to stderr, keeping stdout for the results.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}
