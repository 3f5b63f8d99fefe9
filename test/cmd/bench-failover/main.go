// Command bench-failover measures layer2 failover on the network lab: the
// time from a fault on the announcing node (kill -9 of its speaker, its link
// going down, SIGTERM) to the first successful HTTP request from the client
// answered by another node. It also reports the speakers' memory idle and
// with many services.
//
//	go run ./test/cmd/bench-failover [-trials 20] [-services 1000] [-out docs/benchmarks.md]
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
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/labenv"
)

const benchConfig = `
pools:
- name: l2
  addresses: [203.0.113.10-203.0.113.250, "2001:db8:200::/64"]
  interfaces: [eth0]
`

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
	trials := flag.Int("trials", 20, "trials per fault")
	services := flag.Int("services", 1000, "services for the memory figure (IPv6 VIPs)")
	out := flag.String("out", "", "append a markdown table to this file")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *trials, *services, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench-failover:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, trials, services int, out string) error {
	fmt.Println("starting the lab (3 nodes, control plane, ironlb-ccm, speakers)...")
	env, err := labenv.Start(ctx, labenv.Options{Nodes: 3, DualStack: true, Config: benchConfig,
		Logf: func(f string, a ...any) { fmt.Printf("  "+f+"\n", a...) }})
	if err != nil {
		return err
	}
	defer env.Close()

	var report strings.Builder
	fmt.Fprintf(&report, "\n## Layer2 failover (`make bench-failover`, %s)\n\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&report, "Fault on the announcing node → first successful HTTP request from the client answered by another node; %d trials each, 3 nodes, requests started every 10 ms.\n\n", trials)
	fmt.Fprintln(&report, "| fault | p50 | p99 | max | failed |")
	fmt.Fprintln(&report, "|---|---|---|---|---|")
	for fi, f := range faults {
		var samples []time.Duration
		failed := 0
		for i := range trials {
			d, err := trial(ctx, env, fmt.Sprintf("bench-%d-%d", fi, i), f)
			if err != nil {
				failed++
				fmt.Printf("  %s trial %d: %v\n", f.name, i, err)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				continue
			}
			samples = append(samples, d)
			fmt.Printf("  %s trial %d: %v\n", f.name, i, d.Round(time.Millisecond))
		}
		p50, p99, max := percentiles(samples)
		line := fmt.Sprintf("| %s | %v | %v | %v | %d |", f.name, p50, p99, max, failed)
		fmt.Println(line)
		fmt.Fprintln(&report, line)
	}

	idle, err := speakerRSS(env)
	if err != nil {
		return err
	}
	fmt.Printf("creating %d IPv6 services for the memory figure...\n", services)
	if err := createMany(ctx, env, services); err != nil {
		return err
	}
	time.Sleep(3 * time.Second) // let every speaker sync
	loaded, err := speakerRSS(env)
	if err != nil {
		return err
	}
	fmt.Fprintf(&report, "\nSpeaker memory (VmRSS, per speaker): idle %s; with %d more services %s.\n", idle, services, loaded)
	fmt.Print(report.String())
	if out != "" {
		f, err := os.OpenFile(out, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = f.WriteString(report.String())
		return err
	}
	return nil
}

// trial creates a service, injects the fault on its announcer, measures the
// takeover, repairs, and deletes the service.
func trial(ctx context.Context, env *labenv.Env, name string, f fault) (time.Duration, error) {
	svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, Ports: []v1.ServicePort{{Port: labenv.HTTPPort, Protocol: v1.ProtocolTCP}}}}
	if _, err := env.Client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return 0, err
	}
	defer func() {
		_ = env.Client.CoreV1().Services("default").Delete(context.Background(), name, metav1.DeleteOptions{})
	}()
	vip, err := env.WaitForIP(ctx, "default", name, time.Minute)
	if err != nil {
		return 0, err
	}
	var owner string
	err = framework.WaitFor(ctx, 30*time.Second, 50*time.Millisecond, func(ctx context.Context) (bool, error) {
		owner, err = env.Answering(ctx, vip, 300*time.Millisecond)
		return err == nil, nil
	})
	if err != nil {
		return 0, fmt.Errorf("%s never answered: %w", vip, err)
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

func createMany(ctx context.Context, env *labenv.Env, n int) error {
	for i := range n {
		svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("mem-%d", i)},
			Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, IPFamilies: []v1.IPFamily{v1.IPv6Protocol},
				IPFamilyPolicy: ptr.To(v1.IPFamilyPolicySingleStack), Ports: []v1.ServicePort{{Port: labenv.HTTPPort, Protocol: v1.ProtocolTCP}}}}
		if _, err := env.Client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	return framework.WaitFor(ctx, 5*time.Minute, time.Second, func(ctx context.Context) (bool, error) {
		list, err := env.Client.CoreV1().Services("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		with := 0
		for _, s := range list.Items {
			if strings.HasPrefix(s.Name, "mem-") && len(s.Status.LoadBalancer.Ingress) > 0 {
				with++
			}
		}
		return with >= n, nil
	})
}

// speakerRSS reads every speaker's resident memory.
func speakerRSS(env *labenv.Env) (string, error) {
	var parts []string
	for _, n := range env.Lab.Nodes() {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", env.Speaker(n.Name).Pid()))
		if err != nil {
			return "", err
		}
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "VmRSS:") {
				parts = append(parts, n.Name+" "+strings.Join(strings.Fields(line)[1:], " "))
			}
		}
	}
	return strings.Join(parts, ", "), nil
}

func percentiles(d []time.Duration) (p50, p99, max time.Duration) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	slices.Sort(d)
	at := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))].Round(time.Millisecond) }
	return at(0.50), at(0.99), d[len(d)-1].Round(time.Millisecond)
}
