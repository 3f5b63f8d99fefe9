package provider

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/config"
)

const testConfig = `
pools:
- name: lan
  addresses: [203.0.113.10-203.0.113.12]
  priority: 10
- name: backup
  addresses: [203.0.113.100/30]
- name: v6
  addresses: ["2001:db8:1::/64"]
- name: reserved
  addresses: [198.51.100.10]
  autoAssign: false
- name: prod-only
  addresses: [198.51.100.20-198.51.100.29]
  autoAssign: false
  namespaces: [prod]
- name: labelled
  addresses: [198.51.100.40-198.51.100.49]
  autoAssign: false
  serviceSelector: {matchLabels: {tier: edge}}
`

// testCloud is a provider started against a fake clientset.
type testCloud struct {
	*Cloud
	client   *fake.Clientset
	recorder *record.FakeRecorder
	cancel   context.CancelFunc
}

func startTestCloud(t *testing.T, configYAML string, existing ...*v1.Service) *testCloud {
	t.Helper()
	objects := []runtime.Object{
		&v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
		&v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "dev"}},
		&v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "prod"}},
	}
	if configYAML != "" {
		objects = append(objects, configMap(configYAML))
	}
	for _, s := range existing {
		objects = append(objects, s)
	}
	return startTestCloudWith(t, fake.NewClientset(objects...))
}

// startTestCloudWith starts a provider against client, as a restart or a
// new leader would.
func startTestCloudWith(t *testing.T, client *fake.Clientset) *testCloud {
	t.Helper()
	opts := DefaultOptions()
	opts.StartupTimeout = 10 * time.Second
	c := New(opts)
	recorder := record.NewFakeRecorder(1000)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := c.start(ctx, client, recorder); err != nil {
			t.Errorf("start: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-c.ready:
	case <-time.After(10 * time.Second):
		t.Fatal("provider did not become ready")
	}
	return &testCloud{Cloud: c, client: client, recorder: recorder, cancel: cancel}
}

func configMap(data string) *v1.ConfigMap {
	return &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: config.DefaultNamespace, Name: config.DefaultConfigMapName},
		Data:       map[string]string{config.ConfigMapKey: data},
	}
}

// service builds a LoadBalancer service; opts adjust it.
func service(namespace, name string, opts ...func(*v1.Service)) *v1.Service {
	s := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Annotations: map[string]string{}, Labels: map[string]string{},
			UID: types.UID("uid-" + name), CreationTimestamp: metav1.Now()},
		Spec: v1.ServiceSpec{
			Type:       v1.ServiceTypeLoadBalancer,
			Ports:      []v1.ServicePort{{Protocol: v1.ProtocolTCP, Port: 80}},
			IPFamilies: []v1.IPFamily{v1.IPv4Protocol},
		},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func annotated(k, v string) func(*v1.Service) {
	return func(s *v1.Service) { s.Annotations[k] = v }
}

func labelled(k, v string) func(*v1.Service) {
	return func(s *v1.Service) { s.Labels[k] = v }
}

func ports(specs ...string) func(*v1.Service) {
	return func(s *v1.Service) {
		s.Spec.Ports = nil
		for _, p := range specs {
			proto, port, _ := strings.Cut(p, "/")
			var n int32
			fmt.Sscan(port, &n)
			s.Spec.Ports = append(s.Spec.Ports, v1.ServicePort{Protocol: v1.Protocol(proto), Port: n})
		}
	}
}

func families(policy v1.IPFamilyPolicy, fams ...v1.IPFamily) func(*v1.Service) {
	return func(s *v1.Service) { s.Spec.IPFamilyPolicy, s.Spec.IPFamilies = ptr.To(policy), fams }
}

func withStatus(ips ...string) func(*v1.Service) {
	return func(s *v1.Service) {
		for _, ip := range ips {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, v1.LoadBalancerIngress{IP: ip})
		}
	}
}

// ensure creates the service in the fake API (so annotation patches land)
// and calls EnsureLoadBalancer.
func (tc *testCloud) ensure(t *testing.T, svc *v1.Service) ([]string, error) {
	t.Helper()
	ctx := context.Background()
	if _, err := tc.client.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		if _, err := tc.client.CoreV1().Services(svc.Namespace).Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("storing service: %v", err)
		}
	}
	status, err := tc.EnsureLoadBalancer(ctx, "kubernetes", svc, nil)
	if err != nil {
		return nil, err
	}
	var ips []string
	for _, ing := range status.Ingress {
		if ing.IPMode == nil || *ing.IPMode != v1.LoadBalancerIPModeVIP {
			t.Errorf("ingress %s: ipMode = %v, want VIP set explicitly", ing.IP, ing.IPMode)
		}
		ips = append(ips, ing.IP)
	}
	return ips, nil
}

// events drains the recorded events.
func (tc *testCloud) events() []string {
	var out []string
	for {
		select {
		case e := <-tc.recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func hasEvent(events []string, substr string) bool {
	for _, e := range events {
		if strings.Contains(e, substr) {
			return true
		}
	}
	return false
}

func TestEnsureLoadBalancer(t *testing.T) {
	type step struct {
		svc       *v1.Service
		wantIPs   string // comma separated
		wantErr   string // substring of the error and of the AllocationFailed event
		wantEvent string // substring of an event, when set
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{name: "highest priority pool first, lowest address", steps: []step{
			{svc: service("default", "a"), wantIPs: "203.0.113.10", wantEvent: "Normal IPAllocated allocated 203.0.113.10 from pool lan"},
			{svc: service("default", "b"), wantIPs: "203.0.113.11"},
		}},
		{name: "spill over to the next pool by name when full", steps: []step{
			{svc: service("default", "a"), wantIPs: "203.0.113.10"},
			{svc: service("default", "b"), wantIPs: "203.0.113.11"},
			{svc: service("default", "c"), wantIPs: "203.0.113.12"},
			{svc: service("default", "d"), wantIPs: "203.0.113.100"},
		}},
		{name: "pool annotation", steps: []step{
			{svc: service("default", "a", annotated(config.AnnotationPool, "backup")), wantIPs: "203.0.113.100"},
			{svc: service("default", "b", annotated(config.AnnotationPool, "reserved")), wantIPs: "198.51.100.10"},
		}},
		{name: "unknown pool", steps: []step{
			{svc: service("default", "a", annotated(config.AnnotationPool, "nope")), wantErr: `annotation ironlb.io/pool: pool "nope" does not exist`},
		}},
		{name: "namespace allow-list", steps: []step{
			{svc: service("dev", "a", annotated(config.AnnotationPool, "prod-only")), wantErr: "pool prod-only does not allow namespace dev"},
			{svc: service("prod", "a", annotated(config.AnnotationPool, "prod-only")), wantIPs: "198.51.100.20"},
		}},
		{name: "service selector", steps: []step{
			{svc: service("default", "a", annotated(config.AnnotationPool, "labelled")), wantErr: "serviceSelector (tier=edge) does not match"},
			{svc: service("default", "b", annotated(config.AnnotationPool, "labelled"), labelled("tier", "edge")), wantIPs: "198.51.100.40"},
		}},
		{name: "requested IP by annotation and by spec.loadBalancerIP", steps: []step{
			{svc: service("default", "a", annotated(config.AnnotationLoadBalancerIPs, "203.0.113.12")), wantIPs: "203.0.113.12"},
			{svc: service("default", "b", func(s *v1.Service) { s.Spec.LoadBalancerIP = "203.0.113.101" }), wantIPs: "203.0.113.101"},
			{svc: service("default", "c", annotated(config.AnnotationLoadBalancerIPs, "198.51.100.10")), wantIPs: "198.51.100.10"},
		}},
		{name: "requested IP held by another service", steps: []step{
			{svc: service("default", "web"), wantIPs: "203.0.113.10"},
			{svc: service("default", "b", annotated(config.AnnotationLoadBalancerIPs, "203.0.113.10")), wantErr: "203.0.113.10 is held by default/web"},
		}},
		{name: "requested IP outside every pool", steps: []step{
			{svc: service("default", "a", annotated(config.AnnotationLoadBalancerIPs, "203.0.113.9")), wantErr: "requested IP 203.0.113.9 is not in any pool"},
		}},
		{name: "requested IP in a pool the namespace may not use", steps: []step{
			{svc: service("dev", "a", annotated(config.AnnotationLoadBalancerIPs, "198.51.100.21")), wantErr: "requested IP 198.51.100.21: pool prod-only does not allow namespace dev"},
		}},
		{name: "requested IP in another pool than the pool annotation", steps: []step{
			{svc: service("default", "a", annotated(config.AnnotationLoadBalancerIPs, "203.0.113.10"), annotated(config.AnnotationPool, "backup")),
				wantErr: "requested IP 203.0.113.10 is in pool lan, but annotation ironlb.io/pool asks for pool backup"},
		}},
		{name: "malformed requested IPs", steps: []step{
			{svc: service("default", "a", annotated(config.AnnotationLoadBalancerIPs, "not-an-ip")), wantErr: `annotation ironlb.io/load-balancer-ips: "not-an-ip" is not an IP address`},
			{svc: service("default", "b", annotated(config.AnnotationLoadBalancerIPs, "203.0.113.10,203.0.113.11")), wantErr: "asks for two IPv4 addresses"},
			{svc: service("default", "c", annotated(config.AnnotationLoadBalancerIPs, "2001:db8:1::5")), wantErr: "2001:db8:1::5 is IPv6, but the service's IP families are [IPv4]"},
			{svc: service("default", "d", func(s *v1.Service) { s.Spec.LoadBalancerIP = "nonsense" }), wantErr: `spec.loadBalancerIP: "nonsense" is not an IP address`},
		}},
		{name: "sharing by key without port collision", steps: []step{
			{svc: service("default", "dns-tcp", annotated(config.AnnotationAllowSharedIP, "dns"), ports("TCP/53")), wantIPs: "203.0.113.10"},
			{svc: service("default", "dns-udp", annotated(config.AnnotationAllowSharedIP, "dns"), ports("UDP/53")), wantIPs: "203.0.113.10"},
			{svc: service("default", "other"), wantIPs: "203.0.113.11"},
		}},
		{name: "sharing by key with port collision", steps: []step{
			{svc: service("default", "dns-tcp", annotated(config.AnnotationAllowSharedIP, "dns"), ports("TCP/53")), wantIPs: "203.0.113.10"},
			{svc: service("default", "dns-tcp2", annotated(config.AnnotationAllowSharedIP, "dns"), ports("TCP/53"),
				annotated(config.AnnotationLoadBalancerIPs, "203.0.113.10")), wantErr: "port TCP/53 collides with default/dns-tcp on 203.0.113.10"},
		}},
		{name: "dual-stack", steps: []step{
			{svc: service("default", "ds", families(v1.IPFamilyPolicyRequireDualStack, v1.IPv6Protocol, v1.IPv4Protocol)), wantIPs: "2001:db8:1::,203.0.113.10"},
			{svc: service("default", "v6only", families(v1.IPFamilyPolicySingleStack, v1.IPv6Protocol)), wantIPs: "2001:db8:1::1"},
		}},
		{name: "require dual-stack without a pool for the family", steps: []step{
			{svc: service("default", "ds", families(v1.IPFamilyPolicyRequireDualStack, v1.IPv4Protocol, v1.IPv6Protocol), annotated(config.AnnotationPool, "lan")),
				wantErr: "IPv6"},
		}},
		{name: "prefer dual-stack serves what it can", steps: []step{
			{svc: service("default", "ds", families(v1.IPFamilyPolicyPreferDualStack, v1.IPv4Protocol, v1.IPv6Protocol), annotated(config.AnnotationPool, "lan")),
				wantIPs: "203.0.113.10"},
		}},
		{name: "idempotent", steps: []step{
			{svc: service("default", "a"), wantIPs: "203.0.113.10"},
			{svc: service("default", "a"), wantIPs: "203.0.113.10"},
		}},
		// Annotations of other load balancers, so services move over unchanged.
		{name: "requested IP by MetalLB, OpenELB and PureLB annotations", steps: []step{
			{svc: service("default", "a", annotated("metallb.io/loadBalancerIPs", "203.0.113.12")), wantIPs: "203.0.113.12"},
			{svc: service("default", "b", annotated("metallb.universe.tf/loadBalancerIPs", "203.0.113.101")), wantIPs: "203.0.113.101"},
			{svc: service("default", "c", annotated("eip.openelb.kubesphere.io/v1alpha1", "198.51.100.10")), wantIPs: "198.51.100.10"},
			{svc: service("default", "d", annotated("purelb.io/addresses", "203.0.113.102,2001:db8:1::7"),
				families(v1.IPFamilyPolicyRequireDualStack, v1.IPv4Protocol, v1.IPv6Protocol)), wantIPs: "203.0.113.102,2001:db8:1::7"},
			// A foreign annotation, like ironlb's, outranks spec.loadBalancerIP.
			{svc: service("default", "e", annotated("metallb.io/loadBalancerIPs", "203.0.113.11"), func(s *v1.Service) { s.Spec.LoadBalancerIP = "203.0.113.10" }),
				wantIPs: "203.0.113.11"},
		}},
		{name: "pool by MetalLB, OpenELB and PureLB annotations", steps: []step{
			{svc: service("default", "a", annotated("metallb.io/address-pool", "backup")), wantIPs: "203.0.113.100"},
			{svc: service("default", "b", annotated("metallb.universe.tf/address-pool", "backup")), wantIPs: "203.0.113.101"},
			{svc: service("default", "c", annotated("eip.openelb.kubesphere.io/v1alpha2", "reserved")), wantIPs: "198.51.100.10"},
			{svc: service("default", "d", annotated("purelb.io/service-group", "backup")), wantIPs: "203.0.113.102"},
		}},
		{name: "refusals name the foreign annotation the value came from", steps: []step{
			{svc: service("default", "a", annotated("metallb.io/loadBalancerIPs", "not-an-ip")), wantErr: `annotation metallb.io/loadBalancerIPs: "not-an-ip" is not an IP address`},
			{svc: service("default", "b", annotated("metallb.universe.tf/loadBalancerIPs", "203.0.113.10,203.0.113.11")),
				wantErr: `annotation metallb.universe.tf/loadBalancerIPs: "203.0.113.10,203.0.113.11" asks for two IPv4 addresses`},
			{svc: service("default", "c", annotated("eip.openelb.kubesphere.io/v1alpha1", "2001:db8:1::5")),
				wantErr: "annotation eip.openelb.kubesphere.io/v1alpha1: 2001:db8:1::5 is IPv6, but the service's IP families are [IPv4]"},
			{svc: service("default", "d", annotated("purelb.io/service-group", "nope")), wantErr: `annotation purelb.io/service-group: pool "nope" does not exist`},
			{svc: service("default", "e", annotated("eip.openelb.kubesphere.io/v1alpha2", "nope")), wantErr: `annotation eip.openelb.kubesphere.io/v1alpha2: pool "nope" does not exist`},
			{svc: service("default", "f", annotated("metallb.io/address-pool", "backup"), annotated("metallb.io/loadBalancerIPs", "203.0.113.10")),
				wantErr: "requested IP 203.0.113.10 is in pool lan, but annotation metallb.io/address-pool asks for pool backup"},
			{svc: service("dev", "g", annotated("metallb.io/address-pool", "prod-only")), wantErr: "pool prod-only does not allow namespace dev"},
		}},
		{name: "ironlb's annotations outrank foreign ones, with a warning", steps: []step{
			{svc: service("default", "a", annotated(config.AnnotationPool, "backup"), annotated("metallb.io/address-pool", "reserved")), wantIPs: "203.0.113.100",
				wantEvent: `Warning AnnotationOverridden annotation metallb.io/address-pool: "reserved" is ignored; annotation ironlb.io/pool: "backup" takes precedence`},
			{svc: service("default", "b", annotated(config.AnnotationLoadBalancerIPs, "203.0.113.12"), annotated("purelb.io/addresses", "203.0.113.11")), wantIPs: "203.0.113.12",
				wantEvent: `Warning AnnotationOverridden annotation purelb.io/addresses: "203.0.113.11" is ignored; annotation ironlb.io/load-balancer-ips: "203.0.113.12" takes precedence`},
			// A refused service is told too: the override may be why.
			{svc: service("default", "c", annotated(config.AnnotationPool, "nope"), annotated("eip.openelb.kubesphere.io/v1alpha2", "backup")),
				wantErr:   `annotation ironlb.io/pool: pool "nope" does not exist`,
				wantEvent: `Warning AnnotationOverridden annotation eip.openelb.kubesphere.io/v1alpha2: "backup" is ignored; annotation ironlb.io/pool: "nope" takes precedence`},
		}},
		{name: "disagreeing foreign annotations: MetalLB's older spelling before PureLB", steps: []step{
			{svc: service("default", "a", annotated("metallb.universe.tf/address-pool", "reserved"), annotated("purelb.io/service-group", "backup")), wantIPs: "198.51.100.10",
				wantEvent: `Warning AnnotationOverridden annotation purelb.io/service-group: "backup" is ignored; annotation metallb.universe.tf/address-pool: "reserved" takes precedence`},
		}},
		{name: "sharing by MetalLB and PureLB keys", steps: []step{
			{svc: service("default", "dns-tcp", annotated("metallb.io/allow-shared-ip", "dns"), ports("TCP/53")), wantIPs: "203.0.113.10"},
			{svc: service("default", "dns-udp", annotated("purelb.io/allow-shared-ip", "dns"), ports("UDP/53")), wantIPs: "203.0.113.10"},
			{svc: service("default", "other", annotated("metallb.universe.tf/allow-shared-ip", "other"), ports("TCP/54")), wantIPs: "203.0.113.11"},
			{svc: service("default", "dns-alt", annotated(config.AnnotationAllowSharedIP, "dns"), annotated("metallb.io/allow-shared-ip", "other"), ports("TCP/5353")),
				wantIPs: "203.0.113.10", wantEvent: `annotation metallb.io/allow-shared-ip: "other" is ignored; annotation ironlb.io/allow-shared-ip: "dns" takes precedence`},
			{svc: service("default", "clash", annotated("metallb.io/allow-shared-ip", "dns"), ports("TCP/53"), annotated("metallb.io/loadBalancerIPs", "203.0.113.10")),
				wantErr: "port TCP/53 collides with default/dns-tcp on 203.0.113.10"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := startTestCloud(t, testConfig)
			c.events()
			for i, s := range tc.steps {
				ips, err := c.ensure(t, s.svc)
				events := c.events()
				if s.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), s.wantErr) {
						t.Fatalf("step %d (%s): err = %v, want it to contain %q", i, s.svc.Name, err, s.wantErr)
					}
					if !hasEvent(events, "Warning AllocationFailed") || !hasEvent(events, s.wantErr) {
						t.Errorf("step %d: events %q lack a Warning AllocationFailed with %q", i, events, s.wantErr)
					}
					if s.wantEvent != "" && !hasEvent(events, s.wantEvent) {
						t.Errorf("step %d: events %q lack %q", i, events, s.wantEvent)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d (%s): %v", i, s.svc.Name, err)
				}
				if got := strings.Join(ips, ","); got != s.wantIPs {
					t.Fatalf("step %d (%s): ips = %s, want %s", i, s.svc.Name, got, s.wantIPs)
				}
				if s.wantEvent != "" && !hasEvent(events, s.wantEvent) {
					t.Errorf("step %d: events %q lack %q", i, events, s.wantEvent)
				}
			}
		})
	}
}

func TestLoadBalancerAnnotations(t *testing.T) {
	c := startTestCloud(t, testConfig)
	svc := service("default", "a", families(v1.IPFamilyPolicyRequireDualStack, v1.IPv4Protocol, v1.IPv6Protocol))
	if got := c.LoadBalancerAnnotations(svc); got[config.AnnotationAllocatedFrom] != "" {
		t.Errorf("before allocation: %v, want the annotation absent", got)
	}
	if _, err := c.ensure(t, svc); err != nil {
		t.Fatal(err)
	}
	if got := c.LoadBalancerAnnotations(svc); got[config.AnnotationAllocatedFrom] != "lan,v6" {
		t.Errorf("after allocation: %v, want %s=lan,v6", got, config.AnnotationAllocatedFrom)
	}
	if err := c.EnsureLoadBalancerDeleted(context.Background(), "kubernetes", svc); err != nil {
		t.Fatal(err)
	}
	if got, ok := c.LoadBalancerAnnotations(svc)[config.AnnotationAllocatedFrom]; !ok || got != "" {
		t.Errorf("after release: %q (set: %v), want it removed", got, ok)
	}
}

func TestDeleteReleasesForReuse(t *testing.T) {
	c := startTestCloud(t, testConfig)
	a := service("default", "a")
	if ips, _ := c.ensure(t, a); strings.Join(ips, ",") != "203.0.113.10" {
		t.Fatalf("a got %v", ips)
	}
	_, exists, _ := c.GetLoadBalancer(context.Background(), "kubernetes", a)
	if !exists {
		t.Fatal("GetLoadBalancer: exists = false for a service holding an address")
	}
	if err := c.EnsureLoadBalancerDeleted(context.Background(), "kubernetes", a); err != nil {
		t.Fatal(err)
	}
	if _, exists, _ := c.GetLoadBalancer(context.Background(), "kubernetes", service("default", "a")); exists {
		t.Error("GetLoadBalancer: exists = true after delete")
	}
	if ips, _ := c.ensure(t, service("default", "b")); strings.Join(ips, ",") != "203.0.113.10" {
		t.Errorf("released address not reused: b got %v", ips)
	}
}

// TestRestartSeeding: a new provider (restart, new leader) learns existing
// allocations from the services' status before handing out anything.
func TestRestartSeeding(t *testing.T) {
	existing := []*v1.Service{
		service("default", "old-a", withStatus("203.0.113.10")),
		service("default", "old-b", withStatus("203.0.113.12")),
		// An address no pool contains any more is still never handed out.
		service("default", "orphan", withStatus("198.51.100.250")),
		service("default", "dns-udp", withStatus("203.0.113.100"), annotated(config.AnnotationAllowSharedIP, "dns"), ports("UDP/53")),
	}
	c := startTestCloud(t, testConfig, existing...)
	for _, s := range existing {
		ips, err := c.ensure(t, s)
		if err != nil || len(ips) != 1 || ips[0] != s.Status.LoadBalancer.Ingress[0].IP {
			t.Errorf("%s: after restart got %v, %v; want its old %s", s.Name, ips, err, s.Status.LoadBalancer.Ingress[0].IP)
		}
	}
	if ips, _ := c.ensure(t, service("default", "new")); strings.Join(ips, ",") != "203.0.113.11" {
		t.Errorf("new service got %v, want the one free address 203.0.113.11", ips)
	}
	if _, err := c.ensure(t, service("default", "taker", annotated(config.AnnotationLoadBalancerIPs, "198.51.100.250"))); err == nil {
		t.Error("an orphaned address was handed to another service")
	}
	ips, err := c.ensure(t, service("default", "dns-tcp", annotated(config.AnnotationAllowSharedIP, "dns"), ports("TCP/53"), annotated(config.AnnotationPool, "backup")))
	if err != nil || strings.Join(ips, ",") != "203.0.113.100" {
		t.Errorf("sharing with a seeded service: got %v, %v; want 203.0.113.100", ips, err)
	}
}

// TestAgreeingAnnotationsAreNotReported: a service carrying both ironlb's and
// MetalLB's annotation with one meaning, as during a move, gets no warning.
func TestAgreeingAnnotationsAreNotReported(t *testing.T) {
	c := startTestCloud(t, testConfig)
	c.events()
	svc := service("default", "a", annotated(config.AnnotationPool, "backup"), annotated("metallb.io/address-pool", "backup"),
		annotated(config.AnnotationLoadBalancerIPs, "203.0.113.101"), annotated("purelb.io/addresses", "203.0.113.101"))
	if ips, err := c.ensure(t, svc); err != nil || strings.Join(ips, ",") != "203.0.113.101" {
		t.Fatalf("got %v, %v; want 203.0.113.101", ips, err)
	}
	if events := c.events(); hasEvent(events, "AnnotationOverridden") {
		t.Errorf("events %q report an override of annotations that agree", events)
	}
}

// TestRestartSeedingForeignSharingKey: after a restart, a service sharing by
// a MetalLB key keeps sharing with one using a PureLB key of the same value.
func TestRestartSeedingForeignSharingKey(t *testing.T) {
	existing := service("default", "dns-udp", withStatus("203.0.113.100"), annotated("metallb.universe.tf/allow-shared-ip", "dns"), ports("UDP/53"))
	c := startTestCloud(t, testConfig, existing)
	ips, err := c.ensure(t, service("default", "dns-tcp", annotated("purelb.io/allow-shared-ip", "dns"), ports("TCP/53"), annotated("purelb.io/service-group", "backup")))
	if err != nil || strings.Join(ips, ",") != "203.0.113.100" {
		t.Errorf("sharing with a seeded service: got %v, %v; want 203.0.113.100", ips, err)
	}
}

func TestNoConfigMap(t *testing.T) {
	c := startTestCloud(t, "")
	_, err := c.ensure(t, service("default", "a"))
	if err == nil || !strings.Contains(err.Error(), "ConfigMap ironlb-system/ironlb-config does not exist") {
		t.Fatalf("err = %v", err)
	}
	if !hasEvent(c.events(), "Warning AllocationFailed no address pools") {
		t.Error("no AllocationFailed event")
	}
	// Creating the ConfigMap later is picked up with no restart.
	if _, err := c.client.CoreV1().ConfigMaps(config.DefaultNamespace).Create(context.Background(), configMap(testConfig), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { ips, err := c.ensure(t, service("default", "a")); return err == nil && len(ips) == 1 })
}

func TestLiveConfigReload(t *testing.T) {
	c := startTestCloud(t, testConfig)
	ctx := context.Background()
	held, err := c.ensure(t, service("default", "held"))
	if err != nil {
		t.Fatal(err)
	}
	update := func(data string) {
		t.Helper()
		if _, err := c.client.CoreV1().ConfigMaps(config.DefaultNamespace).Update(ctx, configMap(data), metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// An invalid config is rejected with an event; the last good one serves.
	update("pools:\n- name: lan\n  addresses: [203.0.113.300]\n")
	waitFor(t, func() bool { return hasEvent(c.events(), "Warning InvalidConfig") })
	if ips, err := c.ensure(t, service("default", "b")); err != nil || strings.Join(ips, ",") != "203.0.113.11" {
		t.Errorf("with an invalid config in the ConfigMap: got %v, %v; want the last good config to serve", ips, err)
	}

	// A valid config without the held address's pool: it stays held.
	update("pools:\n- name: fresh\n  addresses: [198.51.100.0/30]\n")
	// The warning is recorded just after the new pools are in force; wait
	// for it rather than race it.
	var events []string
	waitFor(t, func() bool {
		events = append(events, c.events()...)
		return hasEvent(events, "Warning AddressNotInPool "+held[0])
	})
	if c.alloc.Stats()[0].Pool != "fresh" {
		t.Errorf("pools in force: %+v, want only fresh", c.alloc.Stats())
	}
	if ips, err := c.ensure(t, service("default", "held")); err != nil || strings.Join(ips, ",") != held[0] {
		t.Errorf("held service after its pool left: %v, %v; want it to keep %s", ips, err, held[0])
	}
	if ips, err := c.ensure(t, service("default", "c")); err != nil || strings.Join(ips, ",") != "198.51.100.0" {
		t.Errorf("new service: %v, %v; want 198.51.100.0 from the new pool", ips, err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConcurrentEnsure runs Ensure, Update and Delete for many services at
// once (run with -race) and checks no address is ever given twice.
func TestConcurrentEnsure(t *testing.T) {
	c := startTestCloud(t, "pools:\n- name: big\n  addresses: [198.51.100.0/24]\n")
	ctx := context.Background()
	const workers, perWorker = 8, 25
	var mu sync.Mutex
	owner := map[string]string{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				svc := service("default", fmt.Sprintf("s-%d-%d", w, i))
				if _, err := c.client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
					t.Error(err)
					return
				}
				status, err := c.EnsureLoadBalancer(ctx, "k", svc, nil)
				if err != nil {
					t.Errorf("%s: %v", svc.Name, err)
					return
				}
				if err := c.UpdateLoadBalancer(ctx, "k", svc, nil); err != nil {
					t.Error(err)
				}
				ip := status.Ingress[0].IP
				mu.Lock()
				if prev, dup := owner[ip]; dup {
					t.Errorf("%s given to both %s and %s", ip, prev, svc.Name)
				}
				owner[ip] = svc.Name
				mu.Unlock()
				if i%3 == 0 {
					mu.Lock()
					delete(owner, ip)
					mu.Unlock()
					if err := c.EnsureLoadBalancerDeleted(ctx, "k", svc); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	for ip := range owner {
		if _, err := netip.ParseAddr(ip); err != nil {
			t.Errorf("bad address %q", ip)
		}
	}
}

func TestInstanceMetadata(t *testing.T) {
	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1",
		Annotations: map[string]string{"alpha.kubernetes.io/provided-node-ip": "198.51.100.5,2001:db8::5"}}}
	md, err := New(DefaultOptions()).InstanceMetadata(context.Background(), node)
	if err != nil {
		t.Fatal(err)
	}
	if md.ProviderID != "ironlb://node-1" {
		t.Errorf("providerID = %q", md.ProviderID)
	}
	want := []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "198.51.100.5"}, {Type: v1.NodeInternalIP, Address: "2001:db8::5"}, {Type: v1.NodeHostName, Address: "node-1"}}
	if fmt.Sprint(md.NodeAddresses) != fmt.Sprint(want) {
		t.Errorf("addresses = %v, want %v", md.NodeAddresses, want)
	}
}

// TestInstanceMetadataOfAnotherProvidersNode: a node K3s's CCM initialized
// (providerID k3s://, a Hostname from its k3s.io/hostname annotation that
// differs from the node's name) keeps exactly its own addresses, so ironlb's
// cloud-node controller never rewrites it.
func TestInstanceMetadataOfAnotherProvidersNode(t *testing.T) {
	addrs := []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "198.51.100.21"}, {Type: v1.NodeHostName, Address: "ip-198-51-100-21"}}
	node := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "agent-1",
			Labels:      map[string]string{v1.LabelHostname: "agent-1", v1.LabelInstanceTypeStable: "k3s"},
			Annotations: map[string]string{"alpha.kubernetes.io/provided-node-ip": "198.51.100.21", "k3s.io/hostname": "ip-198-51-100-21"}},
		Spec:   v1.NodeSpec{ProviderID: "k3s://agent-1"},
		Status: v1.NodeStatus{Addresses: addrs},
	}
	md, err := New(DefaultOptions()).InstanceMetadata(context.Background(), node)
	if err != nil {
		t.Fatal(err)
	}
	if md.ProviderID != "k3s://agent-1" || md.InstanceType != "k3s" {
		t.Errorf("metadata = %+v, want the node's own providerID and instance type", md)
	}
	if fmt.Sprint(md.NodeAddresses) != fmt.Sprint(addrs) {
		t.Errorf("addresses = %v, want exactly the node's own %v", md.NodeAddresses, addrs)
	}
	// A node ironlb initialized still gets ironlb's view.
	node.Spec.ProviderID = "ironlb://agent-1"
	if md, _ := New(DefaultOptions()).InstanceMetadata(context.Background(), node); !slices.ContainsFunc(md.NodeAddresses, func(a v1.NodeAddress) bool {
		return a.Type == v1.NodeHostName && a.Address == "agent-1"
	}) {
		t.Errorf("an ironlb node's addresses = %v, want its hostname label as a Hostname too", md.NodeAddresses)
	}
}

func TestMemberlistKeyCreatedOnce(t *testing.T) {
	c := startTestCloud(t, testConfig)
	secret, err := c.client.CoreV1().Secrets(config.DefaultNamespace).Get(context.Background(), "ironlb-memberlist", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("memberlist key Secret not created: %v", err)
	}
	key := string(secret.Data[MemberlistKeySecretKey])
	if len(key) != 64 {
		t.Fatalf("key %q is not 32 bytes in hex", key)
	}
	// An existing key is never replaced.
	if err := ensureMemberlistKey(context.Background(), c.client, config.DefaultNamespace, "ironlb-memberlist"); err != nil {
		t.Fatal(err)
	}
	again, _ := c.client.CoreV1().Secrets(config.DefaultNamespace).Get(context.Background(), "ironlb-memberlist", metav1.GetOptions{})
	if string(again.Data[MemberlistKeySecretKey]) != key {
		t.Error("the key changed")
	}
}
