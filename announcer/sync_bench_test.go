package announcer

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/announcer/membership"
	"github.com/ironlb/ironlb/config"
)

// benchCluster is a cluster of nodes speakers and services load balancers,
// a fraction local of them with externalTrafficPolicy Local and one
// EndpointSlice each (ready endpoints on three nodes), all in one namespace
// as the worst case for per-namespace listing.
func benchCluster(nodes, services int, local float64) ([]runtime.Object, []membership.Member) {
	cfg := "pools:\n- name: lan\n  addresses: [198.18.0.0/16]\n"
	objs := []runtime.Object{&v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: config.DefaultNamespace, Name: config.DefaultConfigMapName},
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
	} {
		objs, members := benchCluster(size.nodes, size.services, size.local)
		client := fake.NewClientset(objs...)
		fm := &fakeMembers{members: members, changes: make(chan struct{})}
		protos := map[config.Mode]Protocol{}
		for _, m := range config.Modes {
			protos[m] = &recordingProtocol{}
		}
		s := NewSpeaker(client, fm, SpeakerOptions{NodeName: members[0].Name, ConfigNamespace: config.DefaultNamespace,
			ConfigName: config.DefaultConfigMapName, Protocols: protos})
		ctx, cancel := context.WithCancel(context.Background())
		for _, f := range s.factories {
			f.Start(ctx.Done())
			f.WaitForCacheSync(ctx.Done())
		}
		s.joined = true
		if err := s.sync(ctx); err != nil {
			b.Fatal(err)
		}
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
				if err := informer.GetStore().Update(moved.DeepCopy()); err != nil {
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
