package announcer

import (
	"context"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ironlb/ironlb/config"
)

// TestOnlyChangesThatCanMoveAnAnnouncementSync: Node heartbeats, ClusterIP
// Services and the EndpointSlices of Services that are not Local load
// balancers cost no sync; what the election reads does.
func TestOnlyChangesThatCanMoveAnAnnouncementSync(t *testing.T) {
	clusterIP := &v1.Service{}
	clusterIP.Namespace, clusterIP.Name = "default", "internal"
	local, cluster := lbWithIP("local", "203.0.113.5", true), lbWithIP("cluster", "203.0.113.6", false)
	s := NewSpeaker(fake.NewClientset([]runtime.Object{local, cluster, clusterIP}...), &fakeMembers{changes: make(chan struct{})},
		SpeakerOptions{NodeName: "n1", ConfigNamespace: config.DefaultNamespace, ConfigName: config.DefaultConfigMapName})
	defer s.queue.ShutDown()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.startCaches(ctx); err != nil {
		t.Fatal(err)
	}

	heartbeat := node("n1", map[string]string{"zone": "a"})
	beat := heartbeat.DeepCopy()
	beat.Status.Conditions = []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue}}
	relabelled := heartbeat.DeepCopy()
	relabelled.Labels["edge"] = "true"
	readdressed := heartbeat.DeepCopy()
	readdressed.Status.Addresses = []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "198.51.100.11"}}
	externalAddress := heartbeat.DeepCopy()
	externalAddress.Status.Addresses = append(externalAddress.Status.Addresses, v1.NodeAddress{Type: v1.NodeExternalIP, Address: "203.0.113.50"})
	recreated := heartbeat.DeepCopy()
	recreated.UID = "new"

	annotated := local.DeepCopy()
	annotated.Annotations = map[string]string{"note": "x"}
	toCluster := local.DeepCopy()
	toCluster.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyCluster
	readdressedSvc := local.DeepCopy()
	readdressedSvc.Status.LoadBalancer.Ingress[0].IP = "203.0.113.7"
	clusterIP2 := clusterIP.DeepCopy()
	clusterIP2.Labels = map[string]string{"x": "y"}

	localSlice := slice("local", "n1", true)
	movedSlice := slice("local", "n2", true)
	newIP := localSlice.DeepCopy()
	newIP.Endpoints[0].Addresses = []string{"198.18.0.9"}
	notReady := slice("local", "n1", false)
	clusterSlice := slice("cluster", "n1", true)
	clusterSlice2 := slice("cluster", "n2", true)
	orphanSlice := slice("gone", "n1", true)

	tests := []struct {
		name     string
		matters  func(old, cur any) bool
		old, cur any
		want     bool
	}{
		{"node heartbeat", nodeChangeMatters, heartbeat, beat, false},
		{"node labels", nodeChangeMatters, heartbeat, relabelled, true},
		{"node addresses", nodeChangeMatters, heartbeat, readdressed, true},
		{"node external address", nodeChangeMatters, heartbeat, externalAddress, false},
		{"node recreated", nodeChangeMatters, heartbeat, recreated, true},
		{"node added", nodeChangeMatters, nil, heartbeat, true},
		{"node deleted", nodeChangeMatters, heartbeat, nil, true},
		{"service annotation", s.serviceChangeMatters, local, annotated, false},
		{"service traffic policy", s.serviceChangeMatters, local, toCluster, true},
		{"service address", s.serviceChangeMatters, local, readdressedSvc, true},
		{"service deleted", s.serviceChangeMatters, local, nil, true},
		{"ClusterIP service added", s.serviceChangeMatters, nil, clusterIP, false},
		{"ClusterIP service changed", s.serviceChangeMatters, clusterIP, clusterIP2, false},
		{"Local endpoints moved", s.sliceChangeMatters, localSlice, movedSlice, true},
		{"Local endpoint not ready", s.sliceChangeMatters, localSlice, notReady, true},
		{"Local endpoint's address changed", s.sliceChangeMatters, localSlice, newIP, false},
		{"Local slice added", s.sliceChangeMatters, nil, localSlice, true},
		{"Cluster service's endpoints moved", s.sliceChangeMatters, clusterSlice, clusterSlice2, false},
		{"slice of no known service", s.sliceChangeMatters, nil, orphanSlice, false},
	}
	for _, tt := range tests {
		// Services, slices and Nodes reach the handlers as the informer
		// keeps them.
		for _, obj := range []*any{&tt.old, &tt.cur} {
			switch o := (*obj).(type) {
			case *discoveryv1.EndpointSlice:
				*obj, _ = slimEndpointSlice(o)
			case *v1.Service:
				*obj, _ = slimService(o)
			case *v1.Node:
				*obj, _ = slimNode(o)
			}
		}
		if got := tt.matters(tt.old, tt.cur); got != tt.want {
			t.Errorf("%s: matters %v, want %v", tt.name, got, tt.want)
		}
	}
}
