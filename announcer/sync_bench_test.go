package announcer

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/announcer/membership"
	"github.com/ironlb/ironlb/config"
)

// benchCluster is a cluster of nodes speakers and services load balancers,
// a fraction local of them with externalTrafficPolicy Local and one
// EndpointSlice each (ready endpoints on three nodes), all in one namespace
// as the worst case for per-namespace listing.
func benchCluster(nodes, services int, local float64) ([]k8sruntime.Object, []membership.Member) {
	cfg := "pools:\n- name: lan\n  addresses: [198.18.0.0/16]\n"
	objs := []k8sruntime.Object{&v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: config.DefaultNamespace, Name: config.DefaultConfigMapName},
		Data: map[string]string{config.ConfigMapKey: cfg}}}
	members := make([]membership.Member, nodes)
	meta := membership.Meta{Interfaces: map[string][]string{"eth0": {"198.18.0.0/15"}}}
	for i := range nodes {
		name := fmt.Sprintf("node-%04d", i)
		objs = append(objs, node(name, map[string]string{"kubernetes.io/hostname": name}))
		members[i] = membership.Member{Name: name, Meta: meta, MetaKnown: true}
	}
	base := netip.MustParseAddr("198.18.0.1")
	ip := base
	localEvery := 0
	if local > 0 {
		localEvery = int(1 / local)
	}
	for i := range services {
		isLocal := localEvery > 0 && i%localEvery == 0
		name := fmt.Sprintf("svc-%05d", i)
		objs = append(objs, lbWithIP(name, ip.String(), isLocal))
		ip = ip.Next()
		if isLocal {
			sl := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name + "-x",
				Labels: map[string]string{discoveryv1.LabelServiceName: name}}}
			for k := range 3 {
				sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Addresses: []string{"198.19.0.1"},
					NodeName: ptr.To(members[(i*7+k*13)%nodes].Name), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
			}
			objs = append(objs, sl)
		}
	}
	return objs, members
}

// BenchmarkSpeakerSync is one speaker's work per change: "full" is the full
// sync a Node, config or membership change costs, with nothing changed;
// "member" the sync of a membership change, one member leaving or returning
// in turn; "service"
// the sync of one Service whose address moves and comes back in turn (a
// Service or EndpointSlice change).
func BenchmarkSpeakerSync(b *testing.B) {
	for _, size := range []struct {
		nodes, services int
		local           float64
	}{
		{10, 1000, 0}, {100, 1000, 0.5}, {1000, 10000, 0}, {1000, 10000, 0.5},
		{3, 10000, 0.5}, // few nodes: each announces thousands of addresses
	} {
		objs, members := benchCluster(size.nodes, size.services, size.local)
		client := fake.NewClientset(objs...)
		fm := &fakeMembers{members: members, changes: make(chan struct{})}
		ctx, cancel := context.WithCancel(context.Background())
		s := startedSpeaker(b, ctx, client, members[0].Name, fm)
		name := fmt.Sprintf("nodes=%d/services=%d/local=%.1f", size.nodes, size.services, size.local)
		b.Run(name+"/full", func(b *testing.B) {
			for b.Loop() {
				if err := s.sync(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/member", func(b *testing.B) {
			i := 0
			for b.Loop() {
				fm.mu.Lock()
				if i%2 == 0 {
					fm.members = members[:len(members)-1]
				} else {
					fm.members = members
				}
				fm.mu.Unlock()
				i++
				if err := s.syncMembers(ctx); err != nil {
					b.Fatal(err)
				}
			}
			fm.members = members
		})
		b.Run(name+"/service", func(b *testing.B) {
			svc := objs[len(objs)-1]
			for sv, ok := svc.(*v1.Service); !ok; sv, ok = svc.(*v1.Service) {
				_ = sv
				objs = objs[:len(objs)-1]
				svc = objs[len(objs)-1]
			}
			informer := s.factories[0].Core().V1().Services().Informer()
			moved := svc.(*v1.Service).DeepCopy()
			i := 0
			for b.Loop() {
				if i%2 == 0 {
					moved.Status.LoadBalancer.Ingress[0].IP = "198.18.255.254"
				} else {
					moved.Status.LoadBalancer.Ingress[0].IP = svc.(*v1.Service).Status.LoadBalancer.Ingress[0].IP
				}
				i++
				// The store keeps what the informer's transform makes.
				slim, _ := slimService(moved.DeepCopy())
				if err := informer.GetStore().Update(slim); err != nil {
					b.Fatal(err)
				}
				if err := s.syncService(ctx, moved.Namespace+"/"+moved.Name); err != nil {
					b.Fatal(err)
				}
			}
		})
		cancel()
	}
}

// realisticObjects are Services, EndpointSlices and Nodes as a cluster holds
// them (managed fields, annotations, ports, endpoint addresses, a Node's
// images and conditions), two slices of five endpoints per Service.
func realisticObjects(nodes, services int) []k8sruntime.Object {
	managed := []metav1.ManagedFieldsEntry{{Manager: "kubectl-client-side-apply", Operation: metav1.ManagedFieldsOperationUpdate,
		APIVersion: "v1", FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}},"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:externalTrafficPolicy":{},"f:ports":{".":{},"k:{\"port\":80,\"protocol\":\"TCP\"}":{".":{},"f:name":{},"f:port":{},"f:protocol":{},"f:targetPort":{}}},"f:selector":{},"f:sessionAffinity":{},"f:type":{}}}`)}}}
	var objs []k8sruntime.Object
	for i := range nodes {
		name := fmt.Sprintf("node-%04d", i)
		n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, ManagedFields: managed,
			Labels:      map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "topology.kubernetes.io/zone": "zone-a", "node.kubernetes.io/instance-type": "metal"},
			Annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
			Status: v1.NodeStatus{Addresses: []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: fmt.Sprintf("198.18.%d.%d", i/250, i%250+1)}, {Type: v1.NodeHostName, Address: name}},
				NodeInfo: v1.NodeSystemInfo{KernelVersion: "6.1.0", OSImage: "Debian GNU/Linux 12", ContainerRuntimeVersion: "containerd://1.7.24", KubeletVersion: "v1.36.3"}}}
		for c := range 5 {
			n.Status.Conditions = append(n.Status.Conditions, v1.NodeCondition{Type: v1.NodeConditionType(fmt.Sprintf("Condition%d", c)), Status: v1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"})
		}
		for img := range 30 {
			n.Status.Images = append(n.Status.Images, v1.ContainerImage{Names: []string{fmt.Sprintf("registry.example/team/image-%d@sha256:%064d", img, img), fmt.Sprintf("registry.example/team/image-%d:v1.2.%d", img, img)}, SizeBytes: 12345678})
		}
		objs = append(objs, n)
	}
	ip := netip.MustParseAddr("198.18.128.0")
	for i := range services {
		ip = ip.Next()
		name := fmt.Sprintf("svc-%05d", i)
		svc := lbWithIP(name, ip.String(), i%2 == 0)
		svc.ManagedFields = managed
		svc.Labels = map[string]string{"app": name}
		svc.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"apiVersion":"v1","kind":"Service","metadata":{"annotations":{},"labels":{"app":"` + name + `"},"name":"` + name + `","namespace":"default"},"spec":{"ports":[{"name":"http","port":80,"targetPort":8080}],"selector":{"app":"` + name + `"},"type":"LoadBalancer"}}`}
		svc.Spec.Selector = map[string]string{"app": name}
		svc.Spec.Ports = []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP, NodePort: int32(30000 + i%2000)}}
		svc.Spec.ClusterIP = fmt.Sprintf("198.19.%d.%d", i/250, i%250+1)
		svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
		objs = append(objs, svc)
		for s := range 2 {
			sl := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("%s-%d", name, s), ManagedFields: managed,
				Labels: map[string]string{discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io", "app": name}},
				AddressType: discoveryv1.AddressTypeIPv4, Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(8080)), Protocol: ptr.To(v1.ProtocolTCP)}}}
			for e := range 5 {
				node := fmt.Sprintf("node-%04d", (i*7+s*5+e)%nodes)
				sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("198.19.%d.%d", 128+e, i%250)}, NodeName: ptr.To(node),
					Zone: ptr.To("zone-a"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
					TargetRef: &v1.ObjectReference{Kind: "Pod", Namespace: "default", Name: fmt.Sprintf("%s-7d9f8b6c5-%05d", name, e), UID: "0f3c2a4e-8b1d-4c6e-9a7f-2d5b8e1c3f4a"}})
			}
			objs = append(objs, sl)
		}
	}
	return objs
}

// BenchmarkSpeakerCacheMemory is the heap a speaker's caches hold at 1,000
// nodes, 10,000 Services and 20,000 EndpointSlices, objects as a cluster
// holds them.
func BenchmarkSpeakerCacheMemory(b *testing.B) {
	client := fake.NewClientset(realisticObjects(1000, 10000)...)
	for b.Loop() {
		ctx, cancel := context.WithCancel(context.Background())
		var s *Speaker
		reportHeapGrowth(b, "cache-MiB", func() {
			s = NewSpeaker(client, &fakeMembers{changes: make(chan struct{})}, SpeakerOptions{NodeName: "node-0000",
				ConfigNamespace: config.DefaultNamespace, ConfigName: config.DefaultConfigMapName})
			if err := s.startCaches(ctx); err != nil {
				b.Fatal(err)
			}
		})
		stopSpeaker(s, cancel)
	}
}

// BenchmarkSpeakerStateMemory is the heap a speaker holds past its caches
// at 1,000 nodes and 10,000 Services, half of them Local: what its first
// sync builds (the held addresses, the election, what it announces).
func BenchmarkSpeakerStateMemory(b *testing.B) {
	objs, members := benchCluster(1000, 10000, 0.5)
	client := fake.NewClientset(objs...)
	for b.Loop() {
		ctx, cancel := context.WithCancel(context.Background())
		fm := &fakeMembers{members: members, changes: make(chan struct{})}
		s := NewSpeaker(client, fm, SpeakerOptions{NodeName: members[0].Name,
			ConfigNamespace: config.DefaultNamespace, ConfigName: config.DefaultConfigMapName, Protocols: recordingProtocols()})
		if err := s.startCaches(ctx); err != nil {
			b.Fatal(err)
		}
		reportHeapGrowth(b, "state-MiB", func() {
			s.joined = true
			if err := s.sync(ctx); err != nil {
				b.Fatal(err)
			}
		})
		stopSpeaker(s, cancel)
	}
}

// reportHeapGrowth reports, in MiB as unit, the live heap grow adds.
func reportHeapGrowth(b *testing.B, unit string, grow func()) {
	var before, after runtime.MemStats
	readHeap(&before)
	grow()
	readHeap(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), unit)
}

func readHeap(m *runtime.MemStats) {
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(m)
}

// stopSpeaker stops the caches startCaches started (cancel is their
// context's) and the queue.
func stopSpeaker(s *Speaker, cancel context.CancelFunc) {
	cancel()
	s.queue.ShutDown()
	for _, f := range s.factories {
		f.Shutdown()
	}
}
