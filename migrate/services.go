package migrate

import (
	"fmt"
	"slices"

	"github.com/ironlb/ironlb/config"
)

// The Service annotations ironlb-ccm reads as its own come from config's
// table of equivalent annotations; a pool name in them means the ironlb pool
// of that name, which is why the importer keeps the source's names. These
// are the source annotations ironlb has no use for.
const (
	openelbLB       = "lb.kubesphere.io/v1alpha1"
	openelbProtocol = "protocol.openelb.kubesphere.io/v1alpha1"
	purelbLocal     = "purelb.io/allow-local"
)

// Short names for the equivalents, as the advice below lists them.
const (
	metallbPool         = config.MetalLBAnnotationAddressPool
	metallbLegacyPool   = config.MetalLBLegacyAnnotationAddressPool
	metallbIPs          = config.MetalLBAnnotationLoadBalancerIPs
	metallbLegacyIPs    = config.MetalLBLegacyAnnotationLoadBalancerIPs
	metallbShared       = config.MetalLBAnnotationAllowSharedIP
	metallbLegacyShared = config.MetalLBLegacyAnnotationAllowSharedIP
	openelbEip          = config.OpenELBAnnotationEip
	openelbIP           = config.OpenELBAnnotationIP
	purelbServiceGroup  = config.PureLBAnnotationServiceGroup
	purelbIPs           = config.PureLBAnnotationAddresses
	purelbShared        = config.PureLBAnnotationAllowSharedIP
)

// serviceAdvice says, one line each, which Service settings keep working
// and which the user must change. renamed maps source names to the pool
// names they got.
func serviceAdvice(src Source, renamed map[string]string) []string {
	var lines []string
	var poolAnnotation string
	switch src {
	case MetalLB:
		poolAnnotation = metallbPool
		lines = []string{
			fmt.Sprintf("%s and %s keep working (read as ironlb.io/pool): the pools keep the IPAddressPool names", metallbPool, metallbLegacyPool),
			fmt.Sprintf("%s, %s and spec.loadBalancerIP keep working (read as ironlb.io/load-balancer-ips)", metallbIPs, metallbLegacyIPs),
			fmt.Sprintf("%s and %s keep working (read as ironlb.io/allow-shared-ip)", metallbShared, metallbLegacyShared),
		}
	case OpenELB:
		poolAnnotation = openelbEip
		lines = []string{
			fmt.Sprintf("%s keeps working (read as ironlb.io/pool): the pools keep the Eip names", openelbEip),
			fmt.Sprintf("%s and spec.loadBalancerIP keep working (read as ironlb.io/load-balancer-ips)", openelbIP),
			fmt.Sprintf("%s: openelb and %s are no longer needed: ironlb serves every LoadBalancer Service without spec.loadBalancerClass, and each pool has its mode", openelbLB, openelbProtocol),
			"Services that shared one IP by requesting the same address (OpenELB shares it unasked) must each carry ironlb.io/allow-shared-ip with one common key, or the second is refused",
		}
	case PureLB:
		poolAnnotation = purelbServiceGroup
		lines = []string{
			fmt.Sprintf("%s keeps working (read as ironlb.io/pool): the pools keep the ServiceGroup names", purelbServiceGroup),
			fmt.Sprintf("%s and spec.loadBalancerIP keep working (read as ironlb.io/load-balancer-ips)", purelbIPs),
			fmt.Sprintf("%s keeps working (read as ironlb.io/allow-shared-ip)", purelbShared),
			fmt.Sprintf("%s is no longer needed: ironlb honours externalTrafficPolicy: Local in every mode (only nodes with a ready endpoint announce)", purelbLocal),
		}
	default:
		return nil
	}
	from := make([]string, 0, len(renamed))
	for k := range renamed {
		from = append(from, k)
	}
	slices.Sort(from)
	for _, k := range from {
		lines = append(lines, fmt.Sprintf("Services with %s: %s must say %s (the pool was renamed)", poolAnnotation, k, renamed[k]))
	}
	return append(lines, "Services with spec.loadBalancerClass set for the old load balancer must drop it: ironlb, the cluster's cloud provider, serves only Services without a class. "+
		"The field cannot be changed in place: recreate them (request their current IP with the annotations above to keep it)")
}
