package config

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func TestClassFilter(t *testing.T) {
	svc := func(typ v1.ServiceType, class *string) *v1.Service {
		return &v1.Service{Spec: v1.ServiceSpec{Type: typ, LoadBalancerClass: class}}
	}
	onlyOurs := ClassFilter{Class: DefaultLoadBalancerClass}
	tests := []struct {
		name   string
		filter ClassFilter
		svc    *v1.Service
		want   bool
	}{
		{"classless by default", DefaultClassFilter(), svc(v1.ServiceTypeLoadBalancer, nil), true},
		{"our class", DefaultClassFilter(), svc(v1.ServiceTypeLoadBalancer, ptr.To(DefaultLoadBalancerClass)), true},
		{"another class", DefaultClassFilter(), svc(v1.ServiceTypeLoadBalancer, ptr.To("metallb.io/metallb")), false},
		{"not a LoadBalancer", DefaultClassFilter(), svc(v1.ServiceTypeNodePort, nil), false},
		{"classless left to another", onlyOurs, svc(v1.ServiceTypeLoadBalancer, nil), false},
		{"our class, classless off", onlyOurs, svc(v1.ServiceTypeLoadBalancer, ptr.To(DefaultLoadBalancerClass)), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.filter.Serves(tt.svc); got != tt.want {
				t.Errorf("Serves = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestClassFilterValidate(t *testing.T) {
	for class, valid := range map[string]bool{
		DefaultLoadBalancerClass: true,
		"example.com/lb-v2":      true,
		"":                       false,
		"ironlb":                 false, // no domain prefix
		"example.com/":           false,
		"Example.com/lb":         false,
		"example.com/lb/x":       false,
	} {
		if err := (ClassFilter{Class: class}).Validate(); (err == nil) != valid {
			t.Errorf("Validate(%q) = %v, want valid=%v", class, err, valid)
		}
	}
}
