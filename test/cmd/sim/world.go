package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/config"
)

// The simulation's addresses: Services get theirs from a documentation
// prefix, speakers listen on loopback addresses of their own.
var (
	servicePrefix = netip.MustParsePrefix("2001:db8:5::/112")
	bgpPrefix     = netip.MustParsePrefix("2001:db8:6::/112")
	speakerBase   = netip.MustParseAddr("127.77.0.1")
)

const namespace = "sim"

// world is what the apiserver holds for the simulation.
type world struct {
	nodes []string
	ips   map[string]netip.Addr // each node's speaker address
	addrs []netip.Addr          // every Service's address
	local []bool                // per Service: externalTrafficPolicy Local
	ready [][]string            // per Local Service: its nodes with a ready endpoint
}

func newWorld(o options, rng *rand.Rand) *world {
	w := &world{ips: map[string]netip.Addr{}}
	ip := speakerBase
	for i := range o.nodes {
		name := fmt.Sprintf("sim-%05d", i)
		w.nodes = append(w.nodes, name)
		w.ips[name] = ip
		ip = ip.Next()
	}
	addr := servicePrefix.Addr()
	for i := range o.services {
		addr = addr.Next()
		w.addrs = append(w.addrs, addr)
		// Spread evenly: Service i is Local when the running count of
		// Local ones steps up there.
		isLocal := int(float64(i+1)*o.local) > int(float64(i)*o.local)
		w.local = append(w.local, isLocal)
		var ready []string
		if isLocal {
			for _, n := range rng.Perm(o.nodes)[:min(3, o.nodes)] {
				ready = append(ready, w.nodes[n])
			}
		}
		w.ready = append(w.ready, ready)
	}
	return w
}

// servable are the addresses of addrs some live node may announce: every
// Cluster Service's, and a Local one's while one of its ready endpoints is
// on a live node.
func (w *world) servable(addrs []netip.Addr, alive map[string]bool) []netip.Addr {
	var out []netip.Addr
	for _, ip := range addrs {
		i := w.index(ip)
		if !w.local[i] || slices.ContainsFunc(w.ready[i], func(n string) bool { return alive[n] }) {
			out = append(out, ip)
		}
	}
	return out
}

// index is the Service number of ip.
func (w *world) index(ip netip.Addr) int {
	a, b := ip.As16(), servicePrefix.Addr().As16()
	return (int(a[14])-int(b[14]))<<8 + int(a[15]) - int(b[15]) - 1
}

// populate creates the config, the Nodes, the Services (their address in
// status) and the Local ones' EndpointSlices, 32 requests at a time.
func (w *world) populate(ctx context.Context, client kubernetes.Interface, progress func(string, ...any)) error {
	for _, ns := range []string{namespace, config.DefaultNamespace} {
		if _, err := client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	if _, err := client.CoreV1().ConfigMaps(config.DefaultNamespace).Create(ctx, simConfig(false), metav1.CreateOptions{}); err != nil {
		return err
	}
	var jobs []func(context.Context) error
	for _, name := range w.nodes {
		jobs = append(jobs, func(ctx context.Context) error {
			_, err := client.CoreV1().Nodes().Create(ctx, &v1.Node{
				ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
				Status:     v1.NodeStatus{Addresses: []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: w.ips[name].String()}}},
			}, metav1.CreateOptions{})
			return err
		})
	}
	for i := range w.addrs {
		jobs = append(jobs, func(ctx context.Context) error { return w.createService(ctx, client, i) })
	}
	return runJobs(ctx, jobs, 32, progress)
}

// simConfig is ironlb-config: one layer2 pool, and with bgp a bgp pool
// (no peers: the simulation records what each speaker would advertise).
func simConfig(bgp bool) *v1.ConfigMap {
	cfg := fmt.Sprintf("pools:\n- name: sim\n  addresses: [%s]\n", servicePrefix)
	if bgp {
		cfg += fmt.Sprintf("- name: sim-bgp\n  addresses: [%s]\n  mode: bgp\nbgp:\n  localASN: 64515\n", bgpPrefix)
	}
	return &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: config.DefaultConfigMapName, Namespace: config.DefaultNamespace},
		Data: map[string]string{config.ConfigMapKey: cfg}}
}

// createLoadBalancer creates a LoadBalancer Service holding ip, as the
// controller manager would leave it.
func createLoadBalancer(ctx context.Context, client kubernetes.Interface, name string, ip netip.Addr, local bool) error {
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, AllocateLoadBalancerNodePorts: ptr.To(false),
			Selector: map[string]string{"app": name}, Ports: []v1.ServicePort{{Port: 80, Protocol: v1.ProtocolTCP}}},
	}
	if local {
		svc.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	}
	created, err := client.CoreV1().Services(namespace).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	created.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: ip.String()}}
	_, err = client.CoreV1().Services(namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{})
	return err
}

func (w *world) createService(ctx context.Context, client kubernetes.Interface, i int) error {
	name := fmt.Sprintf("svc-%05d", i)
	if err := createLoadBalancer(ctx, client, name, w.addrs[i], w.local[i]); err != nil {
		return err
	}
	if !w.local[i] {
		return nil
	}
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for k, node := range w.ready[i] {
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{netip.AddrFrom4([4]byte{198, 19, byte(k), byte(i % 250)}).String()},
			NodeName:   ptr.To(node),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
		})
	}
	_, err := client.DiscoveryV1().EndpointSlices(namespace).Create(ctx, sl, metav1.CreateOptions{})
	return err
}

// runJobs runs jobs, parallel at a time, and returns the first error.
func runJobs(ctx context.Context, jobs []func(context.Context) error, parallel int, progress func(string, ...any)) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	var done atomic.Int64
	for _, job := range jobs {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			err := job(gctx)
			if n := done.Add(1); n%2000 == 0 {
				progress("%d of %d objects created", n, len(jobs))
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// nodesOf lists names sorted; a helper for reports.
func nodesOf(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
