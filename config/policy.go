package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
)

// Annotations a Service may carry to steer its allocation, and the one ironlb
// writes back. They are part of ironlb's configuration surface, so they live
// beside the pools they refer to.
const (
	AnnotationLoadBalancerIPs = "ironlb.io/load-balancer-ips"
	AnnotationPool            = "ironlb.io/pool"
	AnnotationAllowSharedIP   = "ironlb.io/allow-shared-ip"
	AnnotationAllocatedFrom   = "ironlb.io/allocated-from"
)

// The annotations other load balancers read for the same requests, so a
// Service moves over to ironlb unchanged. A pool they name means the ironlb
// pool of that name: the importer keeps the source names as pool names.
const (
	// MetalLB: a comma-separated list of IPs (at most one per family), an
	// IPAddressPool name, and a sharing key.
	MetalLBAnnotationLoadBalancerIPs = "metallb.io/loadBalancerIPs"
	MetalLBAnnotationAddressPool     = "metallb.io/address-pool"
	MetalLBAnnotationAllowSharedIP   = "metallb.io/allow-shared-ip"
	// MetalLB's older spellings, which it still reads after its own.
	MetalLBLegacyAnnotationLoadBalancerIPs = "metallb.universe.tf/loadBalancerIPs"
	MetalLBLegacyAnnotationAddressPool     = "metallb.universe.tf/address-pool"
	MetalLBLegacyAnnotationAllowSharedIP   = "metallb.universe.tf/allow-shared-ip"
	// OpenELB: v1alpha1 is not an older spelling of v1alpha2; it holds one IP,
	// v1alpha2 the name of an Eip. OpenELB has no sharing annotation.
	OpenELBAnnotationIP  = "eip.openelb.kubesphere.io/v1alpha1"
	OpenELBAnnotationEip = "eip.openelb.kubesphere.io/v1alpha2"
	// PureLB: a comma-separated list of IPs (one per family), a
	// ServiceGroup name, and a sharing key.
	PureLBAnnotationAddresses     = "purelb.io/addresses"
	PureLBAnnotationServiceGroup  = "purelb.io/service-group"
	PureLBAnnotationAllowSharedIP = "purelb.io/allow-shared-ip"
)

// equivalentAnnotations is the one table of which foreign annotations stand
// for which of ironlb's, each list in precedence order after ironlb's own.
var equivalentAnnotations = []struct {
	ironlb  string
	foreign []string
}{
	{AnnotationPool, []string{MetalLBAnnotationAddressPool, MetalLBLegacyAnnotationAddressPool, OpenELBAnnotationEip, PureLBAnnotationServiceGroup}},
	{AnnotationLoadBalancerIPs, []string{MetalLBAnnotationLoadBalancerIPs, MetalLBLegacyAnnotationLoadBalancerIPs, OpenELBAnnotationIP, PureLBAnnotationAddresses}},
	{AnnotationAllowSharedIP, []string{MetalLBAnnotationAllowSharedIP, MetalLBLegacyAnnotationAllowSharedIP, PureLBAnnotationAllowSharedIP}},
}

// EquivalentAnnotations returns the annotations that stand for ironlb's
// annotation name, highest precedence first: name itself, then those of other
// load balancers. Any other name stands only for itself.
func EquivalentAnnotations(name string) []string {
	for _, e := range equivalentAnnotations {
		if e.ironlb == name {
			return append([]string{name}, e.foreign...)
		}
	}
	return []string{name}
}

// AnnotationValue is one annotation on a Service.
type AnnotationValue struct {
	Name, Value string
}

// String reads like the errors about annotations: field path, then value.
func (a AnnotationValue) String() string {
	return fmt.Sprintf("annotation %s: %q", a.Name, a.Value)
}

// ResolvedAnnotation is what a Service's annotations ask for one of ironlb's
// annotations.
type ResolvedAnnotation struct {
	// AnnotationValue is the annotation in force, named so that messages
	// point at what the user actually wrote.
	AnnotationValue
	// Set is false when no equivalent annotation is present.
	Set bool
	// Overridden are the lower-precedence equivalents present with a
	// different value: ignored, and worth telling the user about.
	Overridden []AnnotationValue
}

// ResolveAnnotation resolves ironlb's annotation name against a Service's
// annotations: the first equivalent present wins, even when empty, as MetalLB
// and PureLB treat their own.
func ResolveAnnotation(annotations map[string]string, name string) ResolvedAnnotation {
	var r ResolvedAnnotation
	for _, n := range EquivalentAnnotations(name) {
		v, ok := annotations[n]
		switch {
		case !ok:
		case !r.Set:
			r.AnnotationValue, r.Set = AnnotationValue{Name: n, Value: v}, true
		case strings.TrimSpace(v) != strings.TrimSpace(r.Value):
			r.Overridden = append(r.Overridden, AnnotationValue{Name: n, Value: v})
		}
	}
	return r
}

// ResolveAnnotations resolves every annotation that has equivalents, in a
// fixed order, for reporting overrides.
func ResolveAnnotations(annotations map[string]string) []ResolvedAnnotation {
	var out []ResolvedAnnotation
	for _, e := range equivalentAnnotations {
		if r := ResolveAnnotation(annotations, e.ironlb); r.Set {
			out = append(out, r)
		}
	}
	return out
}

// Admits reports why the pool may not serve a service in namespace with the
// given namespace and service labels, or nil if it may.
func (p *Pool) Admits(namespace string, namespaceLabels, serviceLabels labels.Set) error {
	if len(p.Namespaces) > 0 && !p.Namespaces[namespace] {
		return fmt.Errorf("pool %s does not allow namespace %s", p.Name, namespace)
	}
	if !p.NamespaceSelector.Matches(namespaceLabels) {
		return fmt.Errorf("pool %s's namespaceSelector (%s) does not match namespace %s", p.Name, p.NamespaceSelector, namespace)
	}
	if !p.ServiceSelector.Matches(serviceLabels) {
		return fmt.Errorf("pool %s's serviceSelector (%s) does not match the service's labels", p.Name, p.ServiceSelector)
	}
	return nil
}

// AutoAssignPools returns the pools that hand out addresses unasked, in the
// order they are tried: highest priority first, ties broken by name.
func (c *Config) AutoAssignPools() []*Pool {
	return c.autoAssign
}

func autoAssignOrder(all []*Pool) []*Pool {
	var pools []*Pool
	for _, p := range all {
		if p.AutoAssign {
			pools = append(pools, p)
		}
	}
	slices.SortFunc(pools, func(a, b *Pool) int {
		if a.Priority != b.Priority {
			return cmp.Compare(b.Priority, a.Priority)
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return pools
}

// PoolNames lists the pool names in file order, for messages.
func (c *Config) PoolNames() []string {
	names := make([]string, 0, len(c.Pools))
	for _, p := range c.Pools {
		names = append(names, p.Name)
	}
	return names
}
