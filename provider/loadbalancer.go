package provider

import (
	"context"
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	cloudprovider "k8s.io/cloud-provider"
	"k8s.io/cloud-provider/api"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/ipam"
)

var _ cloudprovider.LoadBalancer = &Cloud{}

// GetLoadBalancer reports a load balancer whenever the service holds an
// address, in the allocator or in its status. Saying "exists" for a status
// address the allocator lost track of still lets EnsureLoadBalancerDeleted run,
// where saying "no" would make the service controller skip it and leak.
func (c *Cloud) GetLoadBalancer(ctx context.Context, clusterName string, svc *v1.Service) (*v1.LoadBalancerStatus, bool, error) {
	if held := c.alloc.Addresses(serviceKey(svc)); len(held) > 0 {
		return statusOf(held), true, nil
	}
	if len(svc.Status.LoadBalancer.Ingress) > 0 {
		return svc.Status.LoadBalancer.DeepCopy(), true, nil
	}
	return nil, false, nil
}

// GetLoadBalancerName returns the conventional name derived from the UID.
func (c *Cloud) GetLoadBalancerName(ctx context.Context, clusterName string, svc *v1.Service) string {
	return cloudprovider.DefaultLoadBalancerName(svc)
}

// EnsureLoadBalancer gives the service its addresses, idempotently. A
// failure leaves what the service already holds untouched and asks the
// service controller to retry after a fixed interval, so a pool added or an
// address freed later is picked up without any restart.
func (c *Cloud) EnsureLoadBalancer(ctx context.Context, clusterName string, svc *v1.Service, nodes []*v1.Node) (*v1.LoadBalancerStatus, error) {
	if err := c.waitReady(ctx); err != nil {
		return nil, api.NewRetryError(err.Error(), c.opts.RetryInterval)
	}
	c.reportOverriddenAnnotations(svc)
	assignments, err := c.allocate(svc)
	if err != nil {
		allocations.WithLabelValues("failed").Inc()
		klog.InfoS("Allocation failed", "service", klog.KObj(svc), "reason", err.Error())
		c.recorder.Event(svc, v1.EventTypeWarning, "AllocationFailed", err.Error())
		return nil, api.NewRetryError(err.Error(), c.opts.RetryInterval)
	}
	for _, a := range assignments {
		if a.Kept {
			continue
		}
		allocations.WithLabelValues("allocated").Inc()
		klog.InfoS("Allocated address", "service", klog.KObj(svc), "ip", a.Addr, "pool", a.Pool)
		c.recorder.Eventf(svc, v1.EventTypeNormal, "IPAllocated", "allocated %s from pool %s", a.Addr, a.Pool)
	}
	c.updatePoolMetrics()
	return statusOf(assignments), nil
}

// UpdateLoadBalancer is called when the set of nodes changes. Which node
// attracts the traffic is the speaker's concern, so allocations stay as they
// are.
func (c *Cloud) UpdateLoadBalancer(ctx context.Context, clusterName string, svc *v1.Service, nodes []*v1.Node) error {
	return nil
}

// EnsureLoadBalancerDeleted frees the service's addresses for reuse.
func (c *Cloud) EnsureLoadBalancerDeleted(ctx context.Context, clusterName string, svc *v1.Service) error {
	if err := c.waitReady(ctx); err != nil {
		return api.NewRetryError(err.Error(), c.opts.RetryInterval)
	}
	released := c.alloc.Release(serviceKey(svc))
	if len(released) > 0 {
		allocations.WithLabelValues("released").Add(float64(len(released)))
		klog.InfoS("Released addresses", "service", klog.KObj(svc), "ips", released)
		c.recorder.Eventf(svc, v1.EventTypeNormal, "IPReleased", "released %s", joinAddrs(released))
		c.updatePoolMetrics()
	}
	return nil
}

// reportOverriddenAnnotations tells the user about every annotation ignored
// because one of higher precedence asks for something else, for instance a
// MetalLB pool left behind next to ironlb.io/pool: the service silently
// getting what only one of them says would look like a bug.
func (c *Cloud) reportOverriddenAnnotations(svc *v1.Service) {
	for _, r := range config.ResolveAnnotations(svc.Annotations) {
		for _, ignored := range r.Overridden {
			klog.InfoS("Annotation overridden", "service", klog.KObj(svc),
				"annotation", r.Name, "value", r.Value, "ignoredAnnotation", ignored.Name, "ignoredValue", ignored.Value)
			c.recorder.Eventf(svc, v1.EventTypeWarning, "AnnotationOverridden", "%s is ignored; %s takes precedence", ignored, r.AnnotationValue)
		}
	}
}

// allocate builds the request against the config in force and allocates it.
func (c *Cloud) allocate(svc *v1.Service) ([]ipam.Assignment, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.lastConfigData == nil {
		if held := c.alloc.Addresses(serviceKey(svc)); len(held) > 0 {
			return held, nil // never yank an address because the config is gone
		}
		return nil, fmt.Errorf("no address pools: ConfigMap %s/%s does not exist", c.opts.ConfigNamespace, c.opts.ConfigName)
	}
	b := requestBuilder{cfg: c.cfg, poolOf: c.alloc.PoolOf, namespaceLabels: c.namespaceLabels(svc.Namespace)}
	req, err := b.build(svc)
	if err != nil {
		return nil, err
	}
	return c.alloc.Allocate(req)
}

// LoadBalancerAnnotations names the pools the service's addresses came from
// (servicecontroller.Annotator), so kubectl describe shows them; the
// annotation goes when the service holds nothing. An address that left every
// pool has no pool to record: the annotation keeps naming the pool it came
// from.
func (c *Cloud) LoadBalancerAnnotations(svc *v1.Service) map[string]string {
	held := c.alloc.Addresses(serviceKey(svc))
	if len(held) == 0 {
		return map[string]string{config.AnnotationAllocatedFrom: ""}
	}
	if pools := poolsOf(held); pools != "" {
		return map[string]string{config.AnnotationAllocatedFrom: pools}
	}
	return nil
}

// statusOf turns assignments into the status the service controller writes.
// ipMode is set explicitly: left out, the apiserver defaults it and the
// service controller sees a difference, and re-patches, on every sync.
func statusOf(assignments []ipam.Assignment) *v1.LoadBalancerStatus {
	status := &v1.LoadBalancerStatus{}
	for _, a := range assignments {
		status.Ingress = append(status.Ingress, v1.LoadBalancerIngress{IP: a.Addr.String(), IPMode: ptr.To(v1.LoadBalancerIPModeVIP)})
	}
	return status
}

// poolsOf lists the distinct pools of the assignments in order, comma
// separated; addresses that left every pool add nothing.
func poolsOf(assignments []ipam.Assignment) string {
	var pools []string
	for _, a := range assignments {
		if a.Pool != "" && (len(pools) == 0 || pools[len(pools)-1] != a.Pool) {
			pools = append(pools, a.Pool)
		}
	}
	return strings.Join(pools, ",")
}

func joinAddrs[T fmt.Stringer](addrs []T) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}
