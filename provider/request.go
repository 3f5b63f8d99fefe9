package provider

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/ipam"
)

// serviceKey names a service the way the allocator and messages do.
func serviceKey(svc *v1.Service) string {
	return svc.Namespace + "/" + svc.Name
}

// sharingOf describes with whom svc may share its addresses. The key may come
// from another load balancer's annotation; only its value matters.
func sharingOf(svc *v1.Service) ipam.Sharing {
	s := ipam.Sharing{Key: config.ResolveAnnotation(svc.Annotations, config.AnnotationAllowSharedIP).Value}
	for _, p := range svc.Spec.Ports {
		s.Ports = append(s.Ports, ipam.Port{Protocol: string(p.Protocol), Port: p.Port})
	}
	return s
}

// requestBuilder turns a Service and the config in force into an allocation
// request, refusing bad input with a message that names the field and value.
type requestBuilder struct {
	cfg             *config.Config
	poolOf          func(netip.Addr) (string, bool)
	namespaceLabels labels.Set
}

func (b *requestBuilder) build(svc *v1.Service) (ipam.Request, error) {
	req := ipam.Request{Service: serviceKey(svc), Sharing: sharingOf(svc)}

	families, required, err := familiesOf(svc)
	if err != nil {
		return req, err
	}
	requested, err := requestedIPs(svc, families)
	if err != nil {
		return req, err
	}

	var explicitPool *config.Pool
	poolAnnotation := config.ResolveAnnotation(svc.Annotations, config.AnnotationPool)
	if poolAnnotation.Set {
		explicitPool = b.cfg.Pool(poolAnnotation.Value)
		if explicitPool == nil {
			return req, fmt.Errorf("annotation %s: pool %q does not exist (pools: %s)",
				poolAnnotation.Name, poolAnnotation.Value, strings.Join(b.cfg.PoolNames(), ", "))
		}
		if err := b.admits(explicitPool, svc); err != nil {
			return req, err
		}
	}

	for i, family := range families {
		fr := ipam.FamilyRequest{Family: family, Required: required[i]}
		switch ip, ok := requested[family]; {
		case ok:
			pool, err := b.poolForRequestedIP(svc, ip, explicitPool, poolAnnotation.Name)
			if err != nil {
				return req, err
			}
			fr.IP, fr.Pools, fr.Explicit, fr.Required = ip, []string{pool.Name}, true, true
		case explicitPool != nil:
			fr.Pools, fr.Explicit = []string{explicitPool.Name}, true
		default:
			var refusals []string
			for _, p := range b.cfg.AutoAssignPools() {
				if err := b.admits(p, svc); err != nil {
					refusals = append(refusals, err.Error())
					continue
				}
				fr.Pools = append(fr.Pools, p.Name)
			}
			if len(fr.Pools) == 0 && fr.Required {
				return req, noPoolError(b.cfg, refusals)
			}
		}
		req.Families = append(req.Families, fr)
	}
	return req, nil
}

func (b *requestBuilder) admits(p *config.Pool, svc *v1.Service) error {
	return p.Admits(svc.Namespace, b.namespaceLabels, labels.Set(svc.Labels))
}

// poolForRequestedIP finds the pool holding a requested IP and checks that the
// service may use it; explicit, if set, is the pool named by annotation
// explicitFrom.
func (b *requestBuilder) poolForRequestedIP(svc *v1.Service, ip netip.Addr, explicit *config.Pool, explicitFrom string) (*config.Pool, error) {
	name, ok := b.poolOf(ip)
	if !ok {
		return nil, fmt.Errorf("requested IP %s is not in any pool", ip)
	}
	pool := b.cfg.Pool(name)
	if explicit != nil && explicit != pool {
		return nil, fmt.Errorf("requested IP %s is in pool %s, but annotation %s asks for pool %s", ip, name, explicitFrom, explicit.Name)
	}
	if err := b.admits(pool, svc); err != nil {
		return nil, fmt.Errorf("requested IP %s: %w", ip, err)
	}
	return pool, nil
}

func noPoolError(cfg *config.Config, refusals []string) error {
	switch {
	case len(cfg.Pools) == 0:
		return fmt.Errorf("no address pools are configured")
	case len(refusals) == 0:
		return fmt.Errorf("no pool has autoAssign enabled; name one with annotation %s or request an IP with %s",
			config.AnnotationPool, config.AnnotationLoadBalancerIPs)
	default:
		return fmt.Errorf("no pool admits this service: %s", strings.Join(refusals, "; "))
	}
}

// familiesOf returns the IP families the service wants, in order, and which
// of them must be served. The apiserver fills spec.ipFamilies; IPv4 is assumed
// when it is empty, as on clusters that predate dual-stack.
func familiesOf(svc *v1.Service) ([]ipam.Family, []bool, error) {
	var families []ipam.Family
	for _, f := range svc.Spec.IPFamilies {
		switch f {
		case v1.IPv4Protocol:
			families = append(families, ipam.IPv4)
		case v1.IPv6Protocol:
			families = append(families, ipam.IPv6)
		default:
			return nil, nil, fmt.Errorf("spec.ipFamilies: unsupported family %q", f)
		}
	}
	if len(families) == 0 {
		families = []ipam.Family{ipam.IPv4}
	}
	policy := v1.IPFamilyPolicySingleStack
	if svc.Spec.IPFamilyPolicy != nil {
		policy = *svc.Spec.IPFamilyPolicy
	}
	switch policy {
	case v1.IPFamilyPolicySingleStack:
		return families[:1], []bool{true}, nil
	case v1.IPFamilyPolicyRequireDualStack:
		if len(families) < 2 {
			return nil, nil, fmt.Errorf("spec.ipFamilyPolicy is RequireDualStack but spec.ipFamilies lists only %s", families[0])
		}
		return families, []bool{true, true}, nil
	default: // PreferDualStack: the secondary family is served when a pool has room.
		return families, []bool{true, false}[:len(families)], nil
	}
}

// requestedIPs reads the addresses a service asks for: the ironlb annotation
// or an equivalent of another load balancer or, failing those, the deprecated
// spec.loadBalancerIP. At most one per family, and only of families the
// service has.
func requestedIPs(svc *v1.Service, families []ipam.Family) (map[ipam.Family]netip.Addr, error) {
	annotation := config.ResolveAnnotation(svc.Annotations, config.AnnotationLoadBalancerIPs)
	fieldName, value := "annotation "+annotation.Name, annotation.Value
	if strings.TrimSpace(value) == "" {
		fieldName, value = "spec.loadBalancerIP", svc.Spec.LoadBalancerIP
	}
	requested := map[ipam.Family]netip.Addr{}
	if strings.TrimSpace(value) == "" {
		return requested, nil
	}
	for _, text := range strings.Split(value, ",") {
		text = strings.TrimSpace(text)
		ip, err := netip.ParseAddr(text)
		if err != nil || ip.Zone() != "" || ip.Is4In6() {
			return nil, fmt.Errorf("%s: %q is not an IP address", fieldName, text)
		}
		family := ipam.FamilyOf(ip)
		if prev, dup := requested[family]; dup {
			return nil, fmt.Errorf("%s: %q asks for two %s addresses (%s and %s); give at most one per family", fieldName, value, family, prev, ip)
		}
		if !slices.Contains(families, family) {
			return nil, fmt.Errorf("%s: %s is %s, but the service's IP families are %v", fieldName, ip, family, families)
		}
		requested[family] = ip
	}
	return requested, nil
}
