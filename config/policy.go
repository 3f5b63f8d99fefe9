package config

import (
	"cmp"
	"fmt"
	"slices"

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
