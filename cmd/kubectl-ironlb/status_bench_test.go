package main

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/config"
)

// BenchmarkStatus measures `kubectl ironlb status` past the API calls: 5,000
// layer2 services spread over 50 speakers, joined and printed as tables.
func BenchmarkStatus(b *testing.B) {
	const services, nodes = 5000, 50
	objs := []runtime.Object{&v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ironlb-system", Name: "ironlb-config"},
		Data:       map[string]string{"config.yaml": "pools:\n- name: lan\n  addresses: [198.51.100.0/24, 203.0.113.0/24, \"2001:db8:200::/64\"]\n"},
	}}
	speakers := make([]*v1alpha1.SpeakerStatus, nodes)
	for n := range speakers {
		speakers[n] = &v1alpha1.SpeakerStatus{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("n%02d", n)},
			Status: v1alpha1.SpeakerStatusStatus{State: v1alpha1.SpeakerRunning}}
	}
	for i := range services {
		ip := fmt.Sprintf("2001:db8:200::%x", i+1)
		name := fmt.Sprintf("svc-%04d", i)
		objs = append(objs, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
			Spec:       v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer},
			Status:     v1.ServiceStatus{LoadBalancer: v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{{IP: ip}}}},
		})
		s := speakers[i%nodes]
		s.Status.Announcements = append(s.Status.Announcements, v1alpha1.Announcement{IP: ip, Mode: "layer2", Interface: "eth0", Services: []string{"default/" + name}})
	}
	var dynObjs []runtime.Object
	for _, s := range speakers {
		u, err := v1alpha1.ToUnstructured(s)
		if err != nil {
			b.Fatal(err)
		}
		dynObjs = append(dynObjs, u)
	}
	client := fake.NewClientset(objs...)
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{v1alpha1.SpeakerStatusResource: "SpeakerStatusList"}, dynObjs...)
	ctx := context.Background()
	for b.Loop() {
		st, err := gatherStatus(ctx, client, dyn, "ironlb-system", "ironlb-config", config.DefaultClassFilter())
		if err != nil {
			b.Fatal(err)
		}
		if len(st.Services) != services {
			b.Fatalf("%d services, want %d", len(st.Services), services)
		}
		if err := printStatus(io.Discard, st, "", time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}
