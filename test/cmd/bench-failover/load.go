package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/labenv"
)

// memoryLoad is what the memory figure adds to the lab's cluster before
// measuring the speakers again: the objects a large cluster's speakers
// cache, in the numbers asked of them.
type memoryLoad struct {
	services int     // LoadBalancer Services, IPv6
	slices   int     // EndpointSlices per Service, one ready endpoint each
	nodes    int     // Node objects of nodes that run no speaker here
	local    float64 // fraction of the Services with externalTrafficPolicy Local
	// heapProfiles, when set, is where ironlb's speakers' heap profiles
	// go, taken with the load.
	heapProfiles string
}

// profilingArgs are the speakers' extra flags: --profiling when ironlb's
// heap profiles are wanted.
func profilingArgs(im impl, l memoryLoad) []string {
	if l.heapProfiles == "" || im.impl != labenv.ImplIronLB {
		return nil
	}
	return []string{"--profiling"}
}

// saveHeapProfiles writes each speaker's heap profile to dir (none when dir
// is empty): go tool pprof -sample_index=inuse_space reads them.
func saveHeapProfiles(ctx context.Context, env *labenv.Env, dir string) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, n := range env.Lab.Nodes() {
		body, err := env.SpeakerHTTP(ctx, n.Name, "/debug/pprof/heap?gc=1")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, n.Name+".heap.pb.gz"), []byte(body), 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("heap profiles of the speakers in %s\n", dir)
	return nil
}

func (l memoryLoad) String() string {
	s := fmt.Sprintf("%d more services (IPv6, %d EndpointSlice(s) each", l.services, l.slices)
	if l.local > 0 {
		s += fmt.Sprintf(", %.0f %% Local", 100*l.local)
	}
	s += ")"
	if l.nodes > 0 {
		s += fmt.Sprintf(" and %d more Nodes", l.nodes)
	}
	return s
}

// memoryPrefix names the memory figure's Services.
const memoryPrefix = "mem-"

// silentNodes are the extra Nodes' addresses: documentation addresses on
// no link, so a speaker's join to them fails at once.
var silentNodes = netip.MustParsePrefix("2001:db8:77::/64")

// loadWorkers create objects at once: one client at a time would take
// minutes for the 31,000 objects.
const loadWorkers = 8

// createLoad creates l's Nodes, then its Services and their slices, and
// waits until every Service has its address. Endpoints are spread over the
// lab's nodes and the extra ones, so a Local Service is served by the nodes
// its endpoints are on, as in a cluster.
func createLoad(ctx context.Context, env *labenv.Env, l memoryLoad) error {
	var hosts []endpointAt
	for _, n := range env.Lab.Nodes() {
		hosts = append(hosts, endpointAt{node: n.Name, addr: n.IPv6})
	}
	addr := silentNodes.Addr()
	for i := range l.nodes {
		addr = addr.Next()
		name := fmt.Sprintf("mem-node-%05d", i)
		node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "node-role.kubernetes.io/worker": ""}},
			Status: v1.NodeStatus{Addresses: []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: addr.String()}, {Type: v1.NodeHostName, Address: name}}}}
		if _, err := env.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("node %s: %w", name, err)
		}
		hosts = append(hosts, endpointAt{node: name, addr: addr})
	}
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(loadWorkers)
	for i := range l.services {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			var at []endpointAt
			for k := range l.slices {
				at = append(at, hosts[(i*l.slices+k)%len(hosts)])
			}
			local := int(float64(i+1)*l.local) > int(float64(i)*l.local)
			shape := serviceShape{family: v1.IPv6Protocol, local: local, endpoints: at}
			return createServiceWith(gctx, env, fmt.Sprintf("%s%d", memoryPrefix, i), shape)
		})
		if (i+1)%1000 == 0 {
			fmt.Printf("  %d of %d services created (%v)\n", i+1, l.services, time.Since(start).Round(time.Second))
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Allocation goes at the service controller's pace: allow 20 ms each.
	timeout := 5*time.Minute + time.Duration(l.services)*20*time.Millisecond
	return framework.WaitFor(ctx, timeout, 2*time.Second, func(ctx context.Context) (bool, error) {
		list, err := env.Client.CoreV1().Services("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		with := 0
		for _, s := range list.Items {
			if strings.HasPrefix(s.Name, memoryPrefix) && len(s.Status.LoadBalancer.Ingress) > 0 {
				with++
			}
		}
		return with >= l.services, nil
	})
}
