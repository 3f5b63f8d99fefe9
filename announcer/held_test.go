package announcer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ironlb/ironlb/announcer/election"
	"github.com/ironlb/ironlb/announcer/membership"
	"github.com/ironlb/ironlb/config"
)

// startedSpeaker is a speaker for self over client, recording every mode,
// started (startSynced).
func startedSpeaker(tb testing.TB, ctx context.Context, client kubernetes.Interface, self string, members *fakeMembers) *Speaker {
	tb.Helper()
	s := NewSpeaker(client, members, SpeakerOptions{
		NodeName: self, ConfigNamespace: config.DefaultNamespace, ConfigName: config.DefaultConfigMapName, Protocols: recordingProtocols()})
	tb.Cleanup(s.queue.ShutDown)
	startSynced(tb, ctx, s)
	return s
}

// recordingProtocols is a recordingProtocol for each mode.
func recordingProtocols() map[config.Mode]Protocol {
	protos := map[config.Mode]Protocol{}
	for _, m := range config.Modes {
		protos[m] = &recordingProtocol{}
	}
	return protos
}

// startSynced starts s's caches and waits for them, marks it joined
// (joining is membership's concern) and runs its first full sync.
func startSynced(tb testing.TB, ctx context.Context, s *Speaker) {
	tb.Helper()
	if err := s.startCaches(ctx); err != nil {
		tb.Fatal(err)
	}
	s.joined = true
	if err := s.sync(ctx); err != nil {
		tb.Fatal(err)
	}
}

// TestServiceSyncsAgreeWithAFullSync changes Services, EndpointSlices and
// members at random and syncs only the changed Service, or only the
// members, as the queue does; after each change, what each node announces
// must be what a full sync gives.
func TestServiceSyncsAgreeWithAFullSync(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: config.DefaultNamespace, Name: config.DefaultConfigMapName},
		Data: map[string]string{config.ConfigMapKey: speakerConfig}}
	nodeNames := []string{"node-1", "node-2", "node-3"}
	objs := []runtime.Object{cm, node("node-1", nil), node("node-2", map[string]string{"edge": "true"}), node("node-3", nil)}
	client := fake.NewClientset(objs...)
	var all []membership.Member
	for _, n := range nodeNames {
		all = append(all, membership.Member{Name: n, Meta: lanMeta(), MetaKnown: true})
	}
	members := &fakeMembers{members: all, changes: make(chan struct{})}
	alive := map[string]bool{"node-1": true, "node-2": true, "node-3": true}
	speakers := map[string]*Speaker{}
	for _, n := range nodeNames {
		speakers[n] = startedSpeaker(t, ctx, client, n, members)
	}
	ips := []string{"203.0.113.1", "203.0.113.2", "203.0.113.3", "198.51.100.201", "198.51.100.100", "198.51.100.9"}
	r := rand.New(rand.NewPCG(1, 2))
	svcs := client.CoreV1().Services("default")
	sls := client.DiscoveryV1().EndpointSlices("default")
	for step := range 120 {
		name := fmt.Sprintf("s%d", r.IntN(6))
		var err error
		membersChanged := false
		switch op := r.IntN(5); op {
		case 0, 1: // create or update with a random address and policy
			svc := lbWithIP(name, ips[r.IntN(len(ips))], r.IntN(2) == 0)
			if _, err = svcs.Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
				_, err = svcs.Create(ctx, svc, metav1.CreateOptions{})
			}
		case 2: // delete
			err = svcs.Delete(ctx, name, metav1.DeleteOptions{})
		case 3: // its endpoints move
			sl := slice(name, nodeNames[r.IntN(3)], r.IntN(3) > 0)
			sl.Name = name + "-eps"
			if _, err = sls.Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
				_, err = sls.Create(ctx, sl, metav1.CreateOptions{})
			}
		case 4: // a member leaves or comes back
			n := nodeNames[r.IntN(3)]
			alive[n] = !alive[n]
			members.mu.Lock()
			members.members = slices.DeleteFunc(slices.Clone(all), func(m membership.Member) bool { return !alive[m.Name] })
			members.mu.Unlock()
			membersChanged = true
		}
		_ = err // a delete of a missing Service, say: nothing changes
		for _, n := range nodeNames {
			s := speakers[n]
			waitForCaches(t, s, client)
			sync := func() error { return s.syncService(ctx, "default/"+name) }
			if membersChanged {
				sync = func() error { return s.syncMembers(ctx) }
			}
			if err := sync(); err != nil {
				t.Fatal(err)
			}
		}
		for _, n := range nodeNames {
			if !alive[n] {
				continue
			}
			got := speakers[n].announcedNow()
			fresh := startedSpeaker(t, ctx, client, n, members)
			if want := fresh.announcedNow(); !reflect.DeepEqual(got, want) {
				t.Fatalf("step %d (%s), %s: after a service sync %v, a full sync gives %v", step, name, n, got, want)
			}
			fresh.queue.ShutDown()
		}
	}
}

func (s *Speaker) announcedNow() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for ip, a := range s.announced {
		out[ip.String()] = fmt.Sprintf("%s %s %v %v %s %v", a.mode, a.iface, a.services, a.unserved, a.pool, a.fromKept)
	}
	return out
}

// waitForCaches waits until s's Service and EndpointSlice caches hold what
// the API holds (as the speaker keeps it).
func waitForCaches(t *testing.T, s *Speaker, client kubernetes.Interface) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		svcs, _ := client.CoreV1().Services("").List(context.Background(), metav1.ListOptions{})
		sls, _ := client.DiscoveryV1().EndpointSlices("").List(context.Background(), metav1.ListOptions{})
		if cachesHold(s, svcs.Items, sls.Items) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("caches did not catch up within 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func cachesHold(s *Speaker, svcs []v1.Service, sls []discoveryv1.EndpointSlice) bool {
	if len(s.allServices()) != len(svcs) {
		return false
	}
	for i := range svcs {
		c := s.serviceByKey(svcs[i].Namespace + "/" + svcs[i].Name)
		slim, _ := slimService(&svcs[i])
		want := slim.(*cachedService)
		if c == nil || c.local != want.local || c.loadBalancer != want.loadBalancer || c.class != want.class || !slices.Equal(c.ips, want.ips) {
			return false
		}
	}
	if len(s.sliceStore.List()) != len(sls) {
		return false
	}
	for i := range sls {
		obj, ok, _ := s.sliceStore.GetByKey(sls[i].Namespace + "/" + sls[i].Name)
		slim, _ := slimEndpointSlice(&sls[i])
		if !ok || !slices.Equal(obj.(*endpointSliceNodes).readyNodes(), slim.(*endpointSliceNodes).readyNodes()) {
			return false
		}
	}
	return true
}

// TestReleasingTheLastBGPAddressResyncsTheSessions: when a Service's sync
// adds or releases the last bgp address of a config layer, the sessions
// may follow another bgp section, which only a full sync configures.
func TestReleasingTheLastBGPAddressResyncsTheSessions(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: config.DefaultNamespace, Name: config.DefaultConfigMapName},
		Data: map[string]string{config.ConfigMapKey: speakerConfig}}
	client := fake.NewClientset(cm, node("node-1", nil), lbWithIP("routed", "198.51.100.100", false), lbWithIP("web", "203.0.113.5", false))
	members := &fakeMembers{members: []membership.Member{{Name: "node-1", Meta: lanMeta(), MetaKnown: true}}, changes: make(chan struct{})}
	s := startedSpeaker(t, ctx, client, "node-1", members)
	queued := func() bool {
		found := false
		for s.queue.Len() > 0 {
			key, _ := s.queue.Get()
			found = found || key == syncKey
			s.queue.Done(key)
		}
		return found
	}
	// The informers' first events (the ConfigMap's and the Node's queue a
	// full sync) arrive after the caches report synced: let them land.
	for deadline, n, quiet := time.Now().Add(5*time.Second), -1, time.Now(); time.Since(quiet) < 300*time.Millisecond && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if s.queue.Len() != n {
			n, quiet = s.queue.Len(), time.Now()
		}
	}
	queued()
	if err := client.CoreV1().Services("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitForCaches(t, s, client)
	if err := s.syncService(ctx, "default/web"); err != nil {
		t.Fatal(err)
	}
	if queued() {
		t.Error("releasing a layer2 address queued a full sync")
	}
	if err := client.CoreV1().Services("default").Delete(ctx, "routed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitForCaches(t, s, client)
	if err := s.syncService(ctx, "default/routed"); err != nil {
		t.Fatal(err)
	}
	if !queued() {
		t.Error("releasing the last bgp address queued no full sync")
	}
}

// countingProtocol counts SetAnnounced calls, and fails the next one when
// told to.
type countingProtocol struct {
	recordingProtocol
	calls    int
	failNext bool
}

func (p *countingProtocol) SetAnnounced(ctx context.Context, want map[netip.Addr]string) error {
	p.mu.Lock()
	p.calls++
	fail := p.failNext
	p.failNext = false
	p.mu.Unlock()
	if fail {
		return errors.New("injected failure")
	}
	return p.recordingProtocol.SetAnnounced(ctx, want)
}

// TestServiceSyncAppliesOnlyWhatChanged: a Service sync hands the protocols
// a new set only when one of its addresses is announced otherwise on this
// node, and after a failed one, whatever the next sync is about.
func TestServiceSyncAppliesOnlyWhatChanged(t *testing.T) {
	ctx := t.Context()
	nodes := []string{"node-1", "node-2"}
	// One address elected to each node.
	owned := map[string]string{}
	for i := 1; len(owned) < 2 && i < 255; i++ {
		ip := fmt.Sprintf("203.0.113.%d", i)
		if owner, _ := election.Owner(netip.MustParseAddr(ip), nodes); owned[owner] == "" {
			owned[owner] = ip
		}
	}
	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: config.DefaultNamespace, Name: config.DefaultConfigMapName},
		Data: map[string]string{config.ConfigMapKey: speakerConfig}}
	client := fake.NewClientset(cm, node("node-1", nil), node("node-2", nil),
		lbWithIP("mine", owned["node-1"], false), lbWithIP("theirs", owned["node-2"], false))
	members := &fakeMembers{changes: make(chan struct{})}
	for _, n := range nodes {
		members.members = append(members.members, membership.Member{Name: n, Meta: lanMeta(), MetaKnown: true})
	}
	layer2 := &countingProtocol{}
	s := NewSpeaker(client, members, SpeakerOptions{NodeName: "node-1", ConfigNamespace: config.DefaultNamespace,
		ConfigName: config.DefaultConfigMapName, Protocols: map[config.Mode]Protocol{config.ModeLayer2: layer2}})
	t.Cleanup(s.queue.ShutDown)
	startSynced(t, ctx, s)
	mine := netip.MustParseAddr(owned["node-1"])
	if got := layer2.get(); len(got) != 1 || got[mine] == "" {
		t.Fatalf("after the first sync node-1 announces %v, want %s", got, mine)
	}
	calls := func() int {
		layer2.mu.Lock()
		defer layer2.mu.Unlock()
		return layer2.calls
	}
	svcs := client.CoreV1().Services("default")
	update := func(svc *v1.Service) {
		t.Helper()
		if _, err := svcs.Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitForCaches(t, s, client)
	}
	for _, step := range []struct {
		name      string
		change    func()
		service   string
		failNext  bool
		wantCalls int
		want      []netip.Addr
	}{
		{"another node's address changes", func() { update(lbWithIP("theirs", owned["node-2"], true)) }, "theirs", false, 0, []netip.Addr{mine}},
		{"this node's Service is synced unchanged", func() {}, "mine", false, 0, []netip.Addr{mine}},
		{"this node's address is released, and the protocol fails", func() {
			update(&v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "mine"}, Spec: v1.ServiceSpec{Type: v1.ServiceTypeClusterIP}})
		}, "mine", true, 1, nil},
		{"an unrelated sync retries the failed set", func() {}, "theirs", false, 1, nil},
		{"and the next one is skipped again", func() {}, "theirs", false, 0, nil},
		{"the address comes back", func() { update(lbWithIP("mine", owned["node-1"], false)) }, "mine", false, 1, []netip.Addr{mine}},
	} {
		step.change()
		layer2.mu.Lock()
		layer2.failNext = step.failNext
		layer2.mu.Unlock()
		before := calls()
		err := s.syncService(ctx, "default/"+step.service)
		if (err != nil) != step.failNext {
			t.Fatalf("%s: sync error %v", step.name, err)
		}
		if got := calls() - before; got != step.wantCalls {
			t.Errorf("%s: %d SetAnnounced calls, want %d", step.name, got, step.wantCalls)
		}
		if !step.failNext {
			if got := slices.SortedFunc(maps.Keys(layer2.get()), netip.Addr.Compare); !slices.Equal(got, step.want) {
				t.Errorf("%s: announced %v, want %v", step.name, got, step.want)
			}
		}
	}
}
