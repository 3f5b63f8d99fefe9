package config

import (
	"reflect"
	"testing"
)

func TestResolveAnnotation(t *testing.T) {
	cases := []struct {
		name        string
		annotations map[string]string
		resolve     string
		want        ResolvedAnnotation
	}{
		{name: "nothing set", annotations: map[string]string{"other": "x"}, resolve: AnnotationPool},
		{name: "ironlb's own", annotations: map[string]string{"ironlb.io/pool": "lan"}, resolve: AnnotationPool,
			want: ResolvedAnnotation{AnnotationValue: AnnotationValue{"ironlb.io/pool", "lan"}, Set: true}},
		{name: "MetalLB pool alone", annotations: map[string]string{"metallb.io/address-pool": "legacy"}, resolve: AnnotationPool,
			want: ResolvedAnnotation{AnnotationValue: AnnotationValue{"metallb.io/address-pool", "legacy"}, Set: true}},
		{name: "MetalLB's older pool spelling", annotations: map[string]string{"metallb.universe.tf/address-pool": "legacy"}, resolve: AnnotationPool,
			want: ResolvedAnnotation{AnnotationValue: AnnotationValue{"metallb.universe.tf/address-pool", "legacy"}, Set: true}},
		{name: "OpenELB Eip", annotations: map[string]string{"eip.openelb.kubesphere.io/v1alpha2": "layer2-eip"}, resolve: AnnotationPool,
			want: ResolvedAnnotation{AnnotationValue: AnnotationValue{"eip.openelb.kubesphere.io/v1alpha2", "layer2-eip"}, Set: true}},
		{name: "PureLB service group", annotations: map[string]string{"purelb.io/service-group": "default"}, resolve: AnnotationPool,
			want: ResolvedAnnotation{AnnotationValue: AnnotationValue{"purelb.io/service-group", "default"}, Set: true}},
		{name: "OpenELB v1alpha1 is an IP, not a pool", annotations: map[string]string{"eip.openelb.kubesphere.io/v1alpha1": "198.51.100.5"}, resolve: AnnotationLoadBalancerIPs,
			want: ResolvedAnnotation{AnnotationValue: AnnotationValue{"eip.openelb.kubesphere.io/v1alpha1", "198.51.100.5"}, Set: true}},
		{name: "OpenELB v1alpha1 names no pool", annotations: map[string]string{"eip.openelb.kubesphere.io/v1alpha1": "198.51.100.5"}, resolve: AnnotationPool},
		{name: "PureLB addresses", annotations: map[string]string{"purelb.io/addresses": "198.51.100.5,2001:db8::5"}, resolve: AnnotationLoadBalancerIPs,
			want: ResolvedAnnotation{AnnotationValue: AnnotationValue{"purelb.io/addresses", "198.51.100.5,2001:db8::5"}, Set: true}},
		{name: "PureLB sharing key", annotations: map[string]string{"purelb.io/allow-shared-ip": "dns"}, resolve: AnnotationAllowSharedIP,
			want: ResolvedAnnotation{AnnotationValue: AnnotationValue{"purelb.io/allow-shared-ip", "dns"}, Set: true}},
		{name: "ironlb's wins and the different foreign value is reported",
			annotations: map[string]string{"ironlb.io/pool": "lan", "metallb.io/address-pool": "legacy"}, resolve: AnnotationPool,
			want: ResolvedAnnotation{AnnotationValue: AnnotationValue{"ironlb.io/pool", "lan"}, Set: true,
				Overridden: []AnnotationValue{{"metallb.io/address-pool", "legacy"}}}},
		{name: "the same value is no conflict, whitespace aside",
			annotations: map[string]string{"ironlb.io/load-balancer-ips": "203.0.113.10", "metallb.io/loadBalancerIPs": " 203.0.113.10 "}, resolve: AnnotationLoadBalancerIPs,
			want: ResolvedAnnotation{AnnotationValue: AnnotationValue{"ironlb.io/load-balancer-ips", "203.0.113.10"}, Set: true}},
		{name: "foreign order: MetalLB, its older spelling, OpenELB, PureLB",
			annotations: map[string]string{
				"metallb.universe.tf/address-pool":   "old",
				"eip.openelb.kubesphere.io/v1alpha2": "eip",
				"purelb.io/service-group":            "group",
				"metallb.io/address-pool":            "new",
			}, resolve: AnnotationPool,
			want: ResolvedAnnotation{AnnotationValue: AnnotationValue{"metallb.io/address-pool", "new"}, Set: true,
				Overridden: []AnnotationValue{{"metallb.universe.tf/address-pool", "old"}, {"eip.openelb.kubesphere.io/v1alpha2", "eip"}, {"purelb.io/service-group", "group"}}}},
		{name: "OpenELB before PureLB",
			annotations: map[string]string{"purelb.io/addresses": "198.51.100.6", "eip.openelb.kubesphere.io/v1alpha1": "198.51.100.5"}, resolve: AnnotationLoadBalancerIPs,
			want: ResolvedAnnotation{AnnotationValue: AnnotationValue{"eip.openelb.kubesphere.io/v1alpha1", "198.51.100.5"}, Set: true,
				Overridden: []AnnotationValue{{"purelb.io/addresses", "198.51.100.6"}}}},
		{name: "present but empty still wins, as MetalLB and PureLB read their own",
			annotations: map[string]string{"ironlb.io/allow-shared-ip": "", "metallb.io/allow-shared-ip": "dns"}, resolve: AnnotationAllowSharedIP,
			want: ResolvedAnnotation{AnnotationValue: AnnotationValue{"ironlb.io/allow-shared-ip", ""}, Set: true,
				Overridden: []AnnotationValue{{"metallb.io/allow-shared-ip", "dns"}}}},
		{name: "an annotation without equivalents stands for itself",
			annotations: map[string]string{"ironlb.io/allocated-from": "lan", "metallb.io/ip-allocated-from-pool": "legacy"}, resolve: AnnotationAllocatedFrom,
			want: ResolvedAnnotation{AnnotationValue: AnnotationValue{"ironlb.io/allocated-from", "lan"}, Set: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ResolveAnnotation(tc.annotations, tc.resolve); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ResolveAnnotation(%v, %s) = %+v, want %+v", tc.annotations, tc.resolve, got, tc.want)
			}
		})
	}
}

func TestResolveAnnotations(t *testing.T) {
	got := ResolveAnnotations(map[string]string{
		"purelb.io/allow-shared-ip": "dns",
		"metallb.io/address-pool":   "legacy",
		"ironlb.io/pool":            "lan",
		"unrelated":                 "x",
	})
	want := []ResolvedAnnotation{
		{AnnotationValue: AnnotationValue{"ironlb.io/pool", "lan"}, Set: true, Overridden: []AnnotationValue{{"metallb.io/address-pool", "legacy"}}},
		{AnnotationValue: AnnotationValue{"purelb.io/allow-shared-ip", "dns"}, Set: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ResolveAnnotations = %+v, want %+v", got, want)
	}
	if got := ResolveAnnotations(nil); len(got) != 0 {
		t.Errorf("ResolveAnnotations(nil) = %+v, want none", got)
	}
}

// TestEquivalentAnnotationsAreDistinct: an annotation standing for two of
// ironlb's would be read twice with two meanings.
func TestEquivalentAnnotationsAreDistinct(t *testing.T) {
	seen := map[string]string{}
	for _, name := range []string{AnnotationPool, AnnotationLoadBalancerIPs, AnnotationAllowSharedIP} {
		eq := EquivalentAnnotations(name)
		if eq[0] != name || len(eq) < 2 {
			t.Errorf("EquivalentAnnotations(%s) = %v, want %s first and foreign ones after", name, eq, name)
		}
		for _, n := range eq {
			if prev, dup := seen[n]; dup {
				t.Errorf("%s stands for both %s and %s", n, prev, name)
			}
			seen[n] = name
		}
	}
	// Callers get a copy: changing it leaves the table alone.
	EquivalentAnnotations(AnnotationPool)[1] = "changed"
	if got := EquivalentAnnotations(AnnotationPool)[1]; got != MetalLBAnnotationAddressPool {
		t.Errorf("after changing a result, EquivalentAnnotations(%s)[1] = %s", AnnotationPool, got)
	}
}

func TestAnnotationValueString(t *testing.T) {
	if got := (AnnotationValue{"metallb.io/loadBalancerIPs", "198.51.100.300"}).String(); got != `annotation metallb.io/loadBalancerIPs: "198.51.100.300"` {
		t.Errorf("String() = %s", got)
	}
}
