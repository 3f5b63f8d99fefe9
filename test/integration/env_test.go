// Package integration proves ironlb-ccm against a real etcd and
// kube-apiserver, running the real binary as a user would.
package integration

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/test/framework"
)

// Waits are generous: the machines running CI are shared and slow at times.
const (
	allocateTimeout = 60 * time.Second
	eventTimeout    = 60 * time.Second
)

// env is one control plane with ironlb configured.
type env struct {
	t      *testing.T
	ctx    context.Context
	cp     *framework.ControlPlane
	client kubernetes.Interface
	// started lists the CCMs in start order.
	started []*framework.CCM
}

func (e *env) ccms() []*framework.CCM { return e.started }

func newEnv(t *testing.T, opts framework.Options, configYAML string) *env {
	t.Helper()
	cp := framework.NewForTest(t, opts)
	e := &env{t: t, ctx: t.Context(), cp: cp, client: cp.Client}
	if configYAML != "" {
		e.applyConfig(configYAML)
	}
	for _, ns := range []string{"dev", "prod"} {
		e.createNamespace(ns, map[string]string{"env": ns})
	}
	return e
}

// startCCM runs ironlb-ccm; on failure its log tail is printed.
func (e *env) startCCM(opts framework.CCMOptions) *framework.CCM {
	e.t.Helper()
	ccm, err := e.cp.StartCCM(e.ctx, opts)
	if err != nil {
		e.t.Fatalf("start ironlb-ccm: %v", err)
	}
	e.t.Cleanup(func() {
		if e.t.Failed() {
			e.t.Logf("%s log tail:\n%s", ccm.Name, ccm.LogTail(60))
		}
		_ = ccm.Stop(5 * time.Second)
	})
	e.started = append(e.started, ccm)
	return ccm
}

func (e *env) applyConfig(configYAML string) {
	e.t.Helper()
	if err := framework.ApplyConfig(e.ctx, e.client, configYAML); err != nil {
		e.t.Fatalf("apply config: %v", err)
	}
}

func (e *env) createNamespace(name string, labels map[string]string) {
	e.t.Helper()
	ns := &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := e.client.CoreV1().Namespaces().Create(e.ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		e.t.Fatalf("create namespace %s: %v", name, err)
	}
}

// svcOption adjusts a Service before it is created.
type svcOption func(*v1.Service)

func withAnnotation(k, v string) svcOption {
	return func(s *v1.Service) { s.Annotations[k] = v }
}

func withLabel(k, v string) svcOption {
	return func(s *v1.Service) { s.Labels[k] = v }
}

func withPorts(specs ...string) svcOption {
	return func(s *v1.Service) {
		s.Spec.Ports = nil
		for _, spec := range specs {
			proto, port, _ := strings.Cut(spec, "/")
			var n int32
			fmt.Sscan(port, &n)
			s.Spec.Ports = append(s.Spec.Ports, v1.ServicePort{Name: strings.ToLower(proto) + port, Protocol: v1.Protocol(proto), Port: n})
		}
	}
}

func withDualStack(policy v1.IPFamilyPolicy, families ...v1.IPFamily) svcOption {
	return func(s *v1.Service) { s.Spec.IPFamilyPolicy, s.Spec.IPFamilies = ptr.To(policy), families }
}

func lbService(namespace, name string, opts ...svcOption) *v1.Service {
	s := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Annotations: map[string]string{}, Labels: map[string]string{}},
		Spec: v1.ServiceSpec{
			Type:     v1.ServiceTypeLoadBalancer,
			Ports:    []v1.ServicePort{{Name: "http", Protocol: v1.ProtocolTCP, Port: 80}},
			Selector: map[string]string{"app": name},
		},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func (e *env) createService(svc *v1.Service) {
	e.t.Helper()
	if _, err := e.client.CoreV1().Services(svc.Namespace).Create(e.ctx, svc, metav1.CreateOptions{}); err != nil {
		e.t.Fatalf("create service %s/%s: %v", svc.Namespace, svc.Name, err)
	}
}

// expectIPs waits for the service's addresses and checks them.
func (e *env) expectIPs(namespace, name string, want ...string) {
	e.t.Helper()
	got, err := framework.WaitForIngress(e.ctx, e.client, namespace, name, len(want), allocateTimeout)
	if err != nil {
		e.t.Fatal(err)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		e.t.Fatalf("service %s/%s has %v, want %v", namespace, name, got, want)
	}
}

// expectEvent waits for an event with reason whose message contains substr.
func (e *env) expectEvent(namespace, name, reason, substr string) {
	e.t.Helper()
	if _, err := framework.WaitForEvent(e.ctx, e.client, namespace, name, reason, substr, eventTimeout); err != nil {
		e.t.Fatal(err)
	}
}

// expectNoIP checks a service has no address (after its refusal was seen).
func (e *env) expectNoIP(namespace, name string) {
	e.t.Helper()
	svc, err := e.client.CoreV1().Services(namespace).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	if ips := framework.IngressIPs(svc); len(ips) > 0 {
		e.t.Fatalf("service %s/%s got %v, want none", namespace, name, ips)
	}
}

// allIngress returns every LoadBalancer service's addresses, keyed by
// namespace/name.
func (e *env) allIngress() map[string][]string {
	e.t.Helper()
	list, err := e.client.CoreV1().Services("").List(e.ctx, metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string][]string{}
	for i := range list.Items {
		s := &list.Items[i]
		if s.Spec.Type == v1.ServiceTypeLoadBalancer {
			out[s.Namespace+"/"+s.Name] = framework.IngressIPs(s)
		}
	}
	return out
}

// checkUniqueInPools fails on any address given twice or outside pools.
func checkUniqueInPools(t *testing.T, ingress map[string][]string, pools ...string) {
	t.Helper()
	var prefixes []netip.Prefix
	for _, p := range pools {
		prefixes = append(prefixes, netip.MustParsePrefix(p))
	}
	owner := map[string]string{}
	keys := make([]string, 0, len(ingress))
	for k := range ingress {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, svc := range keys {
		for _, ip := range ingress[svc] {
			if prev, dup := owner[ip]; dup {
				t.Errorf("%s given to both %s and %s", ip, prev, svc)
			}
			owner[ip] = svc
			addr := netip.MustParseAddr(ip)
			inPool := false
			for _, p := range prefixes {
				inPool = inPool || p.Contains(addr)
			}
			if !inPool {
				t.Errorf("%s (of %s) is outside the pools %v", ip, svc, pools)
			}
		}
	}
}
