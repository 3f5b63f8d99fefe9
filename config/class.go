package config

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// DefaultLoadBalancerClass is the spec.loadBalancerClass ironlb serves
// unless told otherwise.
const DefaultLoadBalancerClass = "ironlb.io/ironlb"

// ClassFilter says which LoadBalancer Services ironlb serves, by their
// spec.loadBalancerClass. ironlb-ccm and every speaker must use the same
// filter: the CCM allocates only for these Services and the speakers announce
// only their addresses, so an address another implementation assigned is
// never announced by ironlb, even when it lies in an ironlb pool.
type ClassFilter struct {
	// Class is the spec.loadBalancerClass ironlb serves.
	Class string
	// Classless: also serve Services without a class. Off leaves them to
	// another implementation, such as MetalLB during a move to ironlb.
	Classless bool
}

// DefaultClassFilter serves ironlb's class and classless Services.
func DefaultClassFilter() ClassFilter {
	return ClassFilter{Class: DefaultLoadBalancerClass, Classless: true}
}

// AddFlags binds the filter to fs with the same names in every binary.
func (f *ClassFilter) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.Class, "load-balancer-class", f.Class, "The spec.loadBalancerClass of the Services ironlb serves. ironlb-ccm and the speakers must be given the same value.")
	fs.BoolVar(&f.Classless, "serve-classless", f.Classless, "Also serve LoadBalancer Services without a spec.loadBalancerClass. false leaves them to another load balancer (for example MetalLB during a move to ironlb). ironlb-ccm and the speakers must be given the same value.")
}

// Validate checks the class is a valid loadBalancerClass: a label-style
// qualified name with a prefix, as the apiserver requires.
func (f ClassFilter) Validate() error {
	if errs := validation.IsQualifiedName(f.Class); len(errs) > 0 {
		return fmt.Errorf("--load-balancer-class=%q: %v", f.Class, errs)
	}
	if _, _, hasPrefix := strings.Cut(f.Class, "/"); !hasPrefix {
		return fmt.Errorf("--load-balancer-class=%q: must have a domain prefix, e.g. %s", f.Class, DefaultLoadBalancerClass)
	}
	return nil
}

// Serves reports whether svc is a LoadBalancer Service ironlb serves.
func (f ClassFilter) Serves(svc *v1.Service) bool {
	return svc.Spec.Type == v1.ServiceTypeLoadBalancer && f.ServesClass(svc.Spec.LoadBalancerClass)
}

// ServesClass reports whether a Service of this class (nil: none) is
// ironlb's, whatever its type.
func (f ClassFilter) ServesClass(class *string) bool {
	if class == nil {
		return f.Classless
	}
	return *class == f.Class
}
