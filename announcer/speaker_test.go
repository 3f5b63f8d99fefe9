package announcer

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/announcer/membership"
	"github.com/ironlb/ironlb/config"
)

// fakeMembers is a fixed membership.
type fakeMembers struct {
	mu      sync.Mutex
	members []membership.Member
	changes chan struct{}
	// refuted counts the calls of Refute.
	refuted atomic.Int32
}

func (f *fakeMembers) Alive() []membership.Member {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]membership.Member(nil), f.members...)
}
func (f *fakeMembers) Changes() <-chan struct{}                        { return f.changes }
func (f *fakeMembers) Join([]string) (int, error)                      { return 0, nil }
func (f *fakeMembers) UpdateMeta(membership.Meta, time.Duration) error { return nil }
func (f *fakeMembers) Refute()                                         { f.refuted.Add(1) }

// recordingProtocol remembers the last set it was given.
type recordingProtocol struct {
	mu   sync.Mutex
	last map[netip.Addr]string
}

func (p *recordingProtocol) SetAnnounced(_ context.Context, want map[netip.Addr]string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last = want
	return nil
}

func (p *recordingProtocol) get() map[netip.Addr]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

const speakerConfig = `
pools:
- name: lan
  addresses: [203.0.113.0/24]
- name: picky
  addresses: [198.51.100.200-198.51.100.210]
  nodeSelector: {matchLabels: {edge: "true"}}
- name: routed
  addresses: [198.51.100.100]
  mode: bgp
bgp:
  localASN: 64515
`

func lanMeta() membership.Meta {
	return membership.Meta{Interfaces: map[string][]string{"eth0": {"203.0.113.0/24", "198.51.100.0/24"}}}
}

func node(name string, labels map[string]string) *v1.Node {
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func lbWithIP(name, ip string, local bool) *v1.Service {
	s := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec:       v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer},
		Status:     v1.ServiceStatus{LoadBalancer: v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{{IP: ip}}}},
	}
	if local {
		s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	}
	return s
}

func slice(svc, nodeName string, ready bool) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: svc + "-" + nodeName, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		Endpoints:  []discoveryv1.Endpoint{{Addresses: []string{"198.51.100.250"}, NodeName: ptr.To(nodeName), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)}}},
	}
}

// announcedBy runs one speaker per node over the same objects and returns,
// per address, the nodes that announce it.
func announcedBy(t *testing.T, objects []runtime.Object, nodeNames []string) map[string][]string {
	t.Helper()
	var members []membership.Member
	for _, n := range nodeNames {
		members = append(members, membership.Member{Name: n, Meta: lanMeta(), MetaKnown: true})
	}
	out := map[string][]string{}
	for _, self := range nodeNames {
		client := fake.NewClientset(objects...)
		protos := recordingProtocols()
		s := NewSpeaker(client, &fakeMembers{members: members, changes: make(chan struct{})}, SpeakerOptions{
			NodeName: self, ConfigNamespace: config.DefaultNamespace, ConfigName: config.DefaultConfigMapName,
			Protocols: protos,
		})
		ctx, cancel := context.WithCancel(context.Background())
		if err := s.startCaches(ctx); err != nil {
			t.Fatal(err)
		}
		s.joined = true // joining is membership's concern; this test is about election
		if err := s.sync(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		for _, m := range config.Modes {
			for ip, iface := range protos[m].(*recordingProtocol).get() {
				who := self
				if iface != "eth0" {
					who += "@" + iface // off-subnet (vip) or no interface (bgp)
				}
				out[ip.String()] = append(out[ip.String()], who)
			}
		}
	}
	return out
}

func TestSpeakerElection(t *testing.T) {
	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: config.DefaultNamespace, Name: config.DefaultConfigMapName},
		Data: map[string]string{config.ConfigMapKey: speakerConfig}}
	nodes := []string{"node-1", "node-2", "node-3"}
	base := []runtime.Object{cm, node("node-1", nil), node("node-2", map[string]string{"edge": "true"}), node("node-3", nil)}

	t.Run("each address has exactly one announcer and they spread", func(t *testing.T) {
		objs := append([]runtime.Object{}, base...)
		for i := range 30 {
			objs = append(objs, lbWithIP(fmt.Sprintf("s%d", i), fmt.Sprintf("203.0.113.%d", i+1), false))
		}
		got := announcedBy(t, objs, nodes)
		perNode := map[string]int{}
		for ip, by := range got {
			if len(by) != 1 {
				t.Errorf("%s announced by %v", ip, by)
			}
			perNode[by[0]]++
		}
		if len(got) != 30 || len(perNode) != 3 {
			t.Errorf("30 addresses over 3 nodes: %d announced, spread %v", len(got), perNode)
		}
		t.Logf("spread: %v", perNode)
	})
	t.Run("nodeSelector", func(t *testing.T) {
		got := announcedBy(t, append(base, lbWithIP("p", "198.51.100.201", false)), nodes)
		if by := got["198.51.100.201"]; len(by) != 1 || by[0] != "node-2" {
			t.Errorf("picky pool announced by %v, want node-2 only", by)
		}
	})
	t.Run("externalTrafficPolicy Local follows ready endpoints", func(t *testing.T) {
		objs := append(base, lbWithIP("l", "203.0.113.50", true), slice("l", "node-3", true), slice("l", "node-1", false))
		if by := announcedBy(t, objs, nodes)["203.0.113.50"]; len(by) != 1 || by[0] != "node-3" {
			t.Errorf("Local service announced by %v, want node-3 (the only ready endpoint)", by)
		}
		objs = append(base, lbWithIP("l", "203.0.113.50", true), slice("l", "node-1", false))
		if by := announcedBy(t, objs, nodes)["203.0.113.50"]; len(by) != 0 {
			t.Errorf("Local service with no ready endpoint announced by %v", by)
		}
	})
	t.Run("sharing with Local endpoints: a node serving every holder, else the most", func(t *testing.T) {
		objs := append(append([]runtime.Object{}, base...), lbWithIP("a", "203.0.113.60", true), lbWithIP("b", "203.0.113.60", true),
			slice("a", "node-1", true), slice("b", "node-3", true))
		// Disjoint: one of the two nodes, never none.
		if by := announcedBy(t, objs, nodes)["203.0.113.60"]; len(by) != 1 || by[0] == "node-2" {
			t.Errorf("disjoint endpoints: announced by %v, want node-1 or node-3", by)
		}
		// node-1 serves both: node-1.
		objs = append(objs, &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "b-node-1", Labels: map[string]string{discoveryv1.LabelServiceName: "b"}},
			Endpoints:  []discoveryv1.Endpoint{{Addresses: []string{"198.51.100.251"}, NodeName: ptr.To("node-1"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		})
		if by := fmt.Sprint(announcedBy(t, objs, nodes)["203.0.113.60"]); by != "[node-1]" {
			t.Errorf("node-1 serves both: announced by %s, want [node-1]", by)
		}
		// A Cluster holder beside a Local one: the Local one's node.
		objs = append(append([]runtime.Object{}, base...), lbWithIP("a", "203.0.113.61", true), lbWithIP("c", "203.0.113.61", false),
			slice("a", "node-2", true))
		if by := fmt.Sprint(announcedBy(t, objs, nodes)["203.0.113.61"]); by != "[node-2]" {
			t.Errorf("Local beside Cluster: announced by %s, want [node-2]", by)
		}
	})
	t.Run("addresses in no pool are not announced", func(t *testing.T) {
		if got := announcedBy(t, append(base, lbWithIP("x", "198.51.100.7", false)), nodes); len(got) != 0 {
			t.Errorf("announced %v", got)
		}
	})
	t.Run("bgp: every eligible node announces", func(t *testing.T) {
		got := announcedBy(t, append(base, lbWithIP("b", "198.51.100.100", false)), nodes)
		if by := fmt.Sprint(got["198.51.100.100"]); by != "[n1 n2 n3]" && by != "[node-1 node-2 node-3]" {
			t.Errorf("bgp address announced by %v, want all three nodes", by)
		}
		got = announcedBy(t, append(base, lbWithIP("b", "198.51.100.100", true), slice("b", "node-2", true)), nodes)
		if by := fmt.Sprint(got["198.51.100.100"]); by != "[node-2]" {
			t.Errorf("bgp address of a Local service announced by %v, want node-2 (its endpoint)", by)
		}
	})
	t.Run("vip: one owner on the subnet, every node off it", func(t *testing.T) {
		cfg := &v1.ConfigMap{ObjectMeta: cm.ObjectMeta, Data: map[string]string{config.ConfigMapKey: "pools:\n- name: onlink\n  addresses: [198.51.100.50]\n  mode: vip\n- name: routed\n  addresses: [\"2001:db8:9::1\"]\n  mode: vip\n"}}
		got := announcedBy(t, []runtime.Object{cfg, node("node-1", nil), node("node-2", nil), node("node-3", nil),
			lbWithIP("on", "198.51.100.50", false), lbWithIP("off", "2001:db8:9::1", false)}, nodes)
		if by := got["198.51.100.50"]; len(by) != 1 {
			t.Errorf("on-subnet vip announced by %v, want one node", by)
		}
		if by := fmt.Sprint(got["2001:db8:9::1"]); by != "[node-1@ node-2@ node-3@]" {
			t.Errorf("off-subnet vip announced by %v, want every node on the off-subnet interface", by)
		}
	})
	t.Run("a node without an interface on the subnet is skipped", func(t *testing.T) {
		// All members publish only 203.0.113.0/24 and 198.51.100.0/24; an
		// address elsewhere has no candidate.
		cfg := &v1.ConfigMap{ObjectMeta: cm.ObjectMeta, Data: map[string]string{config.ConfigMapKey: "pools:\n- name: far\n  addresses: [\"2001:db8:5::/64\"]\n"}}
		got := announcedBy(t, []runtime.Object{cfg, node("node-1", nil), lbWithIP("v6", "2001:db8:5::1", false)}, []string{"node-1"})
		if len(got) != 0 {
			t.Errorf("announced %v", got)
		}
	})
}

// TestSpeakerKeptConfigs: an address a service holds stays announced when
// ironlb-config is missing, invalid or shrunk below it, as the kept config
// that covers it says; with no such config it is not announced.
func TestSpeakerKeptConfigs(t *testing.T) {
	configMap := func(name string, data map[string]string) *v1.ConfigMap {
		return &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: config.DefaultNamespace, Name: name}, Data: data}
	}
	current := func(text string) *v1.ConfigMap {
		return configMap(config.DefaultConfigMapName, map[string]string{config.ConfigMapKey: text})
	}
	kept := func(texts ...string) *v1.ConfigMap {
		data := map[string]string{config.ConfigMapKey: texts[0]}
		for i, text := range texts[1:] {
			data[fmt.Sprintf("earlier-%d.yaml", i+1)] = text
		}
		return configMap(config.LastGoodName(config.DefaultConfigMapName), data)
	}
	const (
		shrunk = "pools:\n- name: lan\n  addresses: [203.0.113.0/30]\n"
		vip    = "pools:\n- name: moved\n  addresses: [203.0.113.0/24]\n  mode: vip\n"
	)
	nodes := []string{"node-1", "node-2", "node-3"}
	base := []runtime.Object{node("node-1", nil), node("node-2", map[string]string{"edge": "true"}), node("node-3", nil),
		lbWithIP("held", "203.0.113.9", false), lbWithIP("picky", "198.51.100.201", false), lbWithIP("routed", "198.51.100.100", false)}
	tests := []struct {
		name    string
		configs []runtime.Object
		want    map[string]string // address → announcers
	}{
		{"ironlb-config deleted: the last good config", []runtime.Object{kept(speakerConfig)},
			map[string]string{"203.0.113.9": "1", "198.51.100.201": "[node-2]", "198.51.100.100": "[node-1 node-2 node-3]"}},
		{"ironlb-config invalid at start: the last good config", []runtime.Object{current("pools: [{name: BAD}]"), kept(speakerConfig)},
			map[string]string{"203.0.113.9": "1", "198.51.100.201": "[node-2]", "198.51.100.100": "[node-1 node-2 node-3]"}},
		{"pool shrunk: the earlier config for what it left", []runtime.Object{current(shrunk), kept(shrunk, speakerConfig)},
			map[string]string{"203.0.113.9": "1", "198.51.100.201": "[node-2]", "198.51.100.100": "[node-1 node-2 node-3]"}},
		{"ironlb-config ahead of the controller manager: it wins where it covers", []runtime.Object{current(vip), kept(speakerConfig)},
			map[string]string{"203.0.113.9": "1", "198.51.100.201": "[node-2]", "198.51.100.100": "[node-1 node-2 node-3]"}},
		{"nothing kept: only what ironlb-config covers", []runtime.Object{current(shrunk)}, map[string]string{}},
		{"no config at all: nothing", nil, map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := announcedBy(t, append(append([]runtime.Object{}, base...), tt.configs...), nodes)
			for ip, want := range tt.want {
				by := fmt.Sprint(got[ip])
				if want == "1" && len(got[ip]) != 1 || want != "1" && by != want {
					t.Errorf("%s announced by %s, want %s", ip, by, want)
				}
			}
			for ip, by := range got {
				if _, ok := tt.want[ip]; !ok {
					t.Errorf("%s announced by %v, want by none", ip, by)
				}
			}
		})
	}
}

func TestInterfacesOf(t *testing.T) {
	meta := membership.Meta{Interfaces: map[string][]string{"eth1": {"2001:db8:100::/64", "bad"}, "eth0": {"198.51.100.0/24"}, "bond0": nil}}
	got := fmt.Sprint(interfacesOf(meta))
	if want := "[{bond0 []} {eth0 [198.51.100.0/24]} {eth1 [2001:db8:100::/64]}]"; got != want {
		t.Errorf("interfacesOf: %s, want %s", got, want)
	}
}

// The members' interfaces are parsed once per meta: a member that
// republishes them is elected on the new ones, and one gone is forgotten.
func TestElectionNodesFollowEachMembersMeta(t *testing.T) {
	client := fake.NewClientset(node("n1", nil), node("n2", nil))
	s := NewSpeaker(client, &fakeMembers{changes: make(chan struct{})}, SpeakerOptions{
		NodeName: "n1", ConfigNamespace: config.DefaultNamespace, ConfigName: config.DefaultConfigMapName,
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.startCaches(ctx); err != nil {
		t.Fatal(err)
	}
	eth1 := membership.Meta{Interfaces: map[string][]string{"eth1": {"2001:db8:100::/64"}}}
	for _, step := range []struct {
		members []membership.Member
		want    string
	}{
		{[]membership.Member{{Name: "n1", Meta: lanMeta()}, {Name: "n2", Meta: lanMeta()}},
			"n1 [{eth0 [203.0.113.0/24 198.51.100.0/24]}]; n2 [{eth0 [203.0.113.0/24 198.51.100.0/24]}]"},
		{[]membership.Member{{Name: "n1", Meta: lanMeta()}, {Name: "n2", Meta: eth1}},
			"n1 [{eth0 [203.0.113.0/24 198.51.100.0/24]}]; n2 [{eth1 [2001:db8:100::/64]}]"},
		{[]membership.Member{{Name: "n2", Meta: eth1}}, "n2 [{eth1 [2001:db8:100::/64]}]"},
		{[]membership.Member{{Name: "n1", Meta: eth1}, {Name: "n2", Meta: lanMeta()}},
			"n1 [{eth1 [2001:db8:100::/64]}]; n2 [{eth0 [203.0.113.0/24 198.51.100.0/24]}]"},
	} {
		var got []string
		for _, n := range s.electionNodes(step.members) {
			got = append(got, fmt.Sprintf("%s %v", n.Name, n.Interfaces))
		}
		if g := strings.Join(got, "; "); g != step.want {
			t.Errorf("members %v: elected on %s, want %s", step.members, g, step.want)
		}
		if len(s.memberInterfaces) != len(step.members) {
			t.Errorf("members %v: %d members' interfaces kept", step.members, len(s.memberInterfaces))
		}
	}
}

func TestAddressesOfOnlyTheServicesIronLBServes(t *testing.T) {
	lb := func(name, ip string, class *string) *v1.Service {
		return &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
			Spec:       v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, LoadBalancerClass: class},
			Status:     v1.ServiceStatus{LoadBalancer: v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{{IP: ip}}}},
		}
	}
	var services []*cachedService
	for _, svc := range []*v1.Service{
		lb("classless", "203.0.113.10", nil),
		lb("ours", "203.0.113.11", ptr.To(config.DefaultLoadBalancerClass)),
		// Another implementation's address inside an ironlb pool.
		lb("theirs", "203.0.113.12", ptr.To("metallb.io/metallb")),
	} {
		cached, _ := slimService(svc)
		services = append(services, cached.(*cachedService))
	}
	tests := []struct {
		name   string
		filter config.ClassFilter
		want   []string
	}{
		{"default", config.DefaultClassFilter(), []string{"203.0.113.10", "203.0.113.11"}},
		{"classless left to another", config.ClassFilter{Class: config.DefaultLoadBalancerClass}, []string{"203.0.113.11"}},
		{"another class name", config.ClassFilter{Class: "metallb.io/metallb"}, []string{"203.0.113.12"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for ip := range addressesOf(services, tt.filter) {
				got = append(got, ip.String())
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("announced %v, want %v", got, tt.want)
			}
		})
	}
}

// TestMemberWithoutMetaDoesNotPauseElections: elections wait a moment for a
// member's interfaces, but one whose meta never arrives is left out after
// metaWait instead of pausing every election.
func TestMemberWithoutMetaDoesNotPauseElections(t *testing.T) {
	s := &Speaker{metaMissingSince: map[string]time.Time{}, metaGaveUp: map[string]bool{}}
	members := []membership.Member{
		{Name: "node-1", Meta: lanMeta(), MetaKnown: true},
		{Name: "node-2"}, // its meta never arrives
	}
	start := time.Now()
	steps := []struct {
		after       time.Duration
		wantWaiting bool
		wantElect   int
	}{
		{0, true, 1},
		{metaWait / 2, true, 1},
		{metaWait, false, 1},
		{10 * metaWait, false, 1},
	}
	for _, step := range steps {
		got, waiting := s.withKnownMeta(members, start.Add(step.after))
		if waiting != step.wantWaiting || len(got) != step.wantElect || got[0].Name != "node-1" {
			t.Errorf("after %v: electing among %v, waiting %v; want %d member(s), waiting %v", step.after, got, waiting, step.wantElect, step.wantWaiting)
		}
	}
	// Its meta arrives: it is elected again, and a later loss waits anew.
	members[1] = membership.Member{Name: "node-2", Meta: lanMeta(), MetaKnown: true}
	if got, waiting := s.withKnownMeta(members, start.Add(11*metaWait)); waiting || len(got) != 2 {
		t.Errorf("with its meta: electing among %v, waiting %v", got, waiting)
	}
	members[1].MetaKnown = false
	if _, waiting := s.withKnownMeta(members, start.Add(12*metaWait)); !waiting {
		t.Error("a member whose meta went missing again was not waited for")
	}
}

// TestKeptAddressKeepsItsAdvertisement: a bgp address only a kept config
// covers is advertised as that config said (its communities), not with the
// catch-all of the bgp section in force, which does not know its pool; the
// config in force's own addresses follow the section in force.
func TestKeptAddressKeepsItsAdvertisement(t *testing.T) {
	parse := func(text string) *config.Config {
		t.Helper()
		cfg, errs := config.Parse([]byte(text))
		if len(errs) > 0 {
			t.Fatalf("parse: %v", errs)
		}
		return cfg
	}
	const section = `
bgp:
  localASN: 64515
  peers: [{name: r1, address: 198.51.100.1, asn: 64512}]
  advertisements:
  - {pools: [%s], communities: ["%s"]}
  - {communities: ["64512:999"]}
`
	current := parse("pools:\n- {name: now, addresses: [198.51.100.64/26], mode: bgp}\n" + fmt.Sprintf(section, "now", "64512:200"))
	kept := parse("pools:\n- {name: before, addresses: [203.0.113.0/24], mode: bgp}\n" + fmt.Sprintf(section, "before", "64512:100"))
	s := NewSpeaker(fake.NewClientset(), &fakeMembers{changes: make(chan struct{})}, SpeakerOptions{NodeName: "n1",
		ConfigNamespace: config.DefaultNamespace, ConfigName: config.DefaultConfigMapName})
	defer s.queue.ShutDown()
	s.layers = config.Layers{current, kept}
	for ip, want := range map[string]uint32{"198.51.100.70": 64512<<16 | 200, "203.0.113.9": 64512<<16 | 100} {
		adv := s.AdvertisementOf(netip.MustParseAddr(ip), current.BGP)
		if adv == nil || !slices.Equal(adv.Communities, []uint32{want}) {
			t.Errorf("%s advertised as %+v, want communities [%d:%d]", ip, adv, want>>16, want&0xffff)
		}
	}
	if adv := s.AdvertisementOf(netip.MustParseAddr("198.51.100.1"), current.BGP); adv != nil {
		t.Errorf("an address no layer covers: %+v, want nil (the catch-all)", adv)
	}
}

// TestBGPClusterAddressesAreNamedByPool: a bgp address whose Services are all
// Cluster is advertised by every node its pool selects, so the SpeakerStatus
// names the pool rather than the address, and no node records an Event per
// such address; a Local Service's bgp address, which depends on the node, is
// listed and gets its Event. Another Cluster Service in the pool changes
// nothing in the status, so no node writes for it.
func TestBGPClusterAddressesAreNamedByPool(t *testing.T) {
	cfg := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: config.DefaultNamespace, Name: config.DefaultConfigMapName},
		Data: map[string]string{config.ConfigMapKey: "pools:\n- {name: lan, addresses: [203.0.113.0/24]}\n- {name: routed, addresses: [198.51.100.96/28], mode: bgp}\nbgp: {localASN: 64515}\n"}}
	client := fake.NewClientset(cfg, node("node-1", nil), node("node-2", nil),
		lbWithIP("web", "198.51.100.97", false), lbWithIP("cache", "198.51.100.98", true), slice("cache", "node-1", true),
		lbWithIP("lan", "203.0.113.5", false))
	status := &fakeStatus{}
	protos := recordingProtocols()
	s := NewSpeaker(client, &fakeMembers{members: []membership.Member{{Name: "node-1", Meta: lanMeta(), MetaKnown: true}}, changes: make(chan struct{})},
		SpeakerOptions{NodeName: "node-1", ConfigNamespace: config.DefaultNamespace, ConfigName: config.DefaultConfigMapName,
			Protocols: protos, Status: status})
	events := record.NewFakeRecorder(100)
	s.recorder = events
	ctx := t.Context()
	if err := s.startCaches(ctx); err != nil {
		t.Fatal(err)
	}
	s.joined = true
	if err := s.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := protos[config.ModeBGP].(*recordingProtocol).get(); len(got) != 2 {
		t.Fatalf("bgp advertises %v, want the Cluster and the Local address", got)
	}
	listed := func() string {
		var ips []string
		for _, a := range status.announced {
			ips = append(ips, a.IP+"/"+a.Mode)
		}
		slices.Sort(ips)
		return fmt.Sprint(ips, status.bgpPools)
	}
	if got, want := listed(), "[198.51.100.98/bgp 203.0.113.5/layer2] [routed]"; got != want {
		t.Errorf("status lists %s, want %s", got, want)
	}
	// recorded drains the Events due and recorded so far, keeping those
	// containing str.
	recorded := func(str string) []string {
		writeDueEvents(t, ctx, s)
		var out []string
		for len(events.Events) > 0 {
			if e := <-events.Events; strings.Contains(e, str) {
				out = append(out, e)
			}
		}
		return out
	}
	announcing := recorded("Announcing")
	if len(announcing) != 2 || slices.ContainsFunc(announcing, func(e string) bool { return strings.Contains(e, "198.51.100.97") }) {
		t.Errorf("Announcing events %q: want one for the Local bgp address and one for the layer2 one, none for the Cluster bgp address", announcing)
	}

	before := listed()
	if _, err := client.CoreV1().Services("default").Create(ctx, lbWithIP("api", "198.51.100.99", false), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return len(s.allServices()) == 4, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := protos[config.ModeBGP].(*recordingProtocol).get(); len(got) != 3 {
		t.Errorf("bgp advertises %v, want the new Cluster address too", got)
	}
	if got := listed(); got != before {
		t.Errorf("another Cluster Service in the pool changed the status from %s to %s", before, got)
	}

	// A Local Service sharing web's address, with its endpoint here: the
	// address now depends on the node, is listed, and its Services get the
	// Event this node never recorded while it was the pool's.
	shared := lbWithIP("shared", "198.51.100.97", true)
	if _, err := client.CoreV1().Services("default").Create(ctx, shared, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DiscoveryV1().EndpointSlices("default").Create(ctx, slice("shared", "node-1", true), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return len(s.allServices()) == 5 && len(s.sliceStore.List()) == 2, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := listed(), "[198.51.100.97/bgp 198.51.100.98/bgp 203.0.113.5/layer2] [routed]"; got != want {
		t.Errorf("with a Local Service sharing 198.51.100.97, the status lists %s, want %s", got, want)
	}
	if onShared := recorded("announces 198.51.100.97 "); len(onShared) != 2 { // one per Service holding it
		t.Errorf("Events for 198.51.100.97 once it is listed: %q, want one on each of its two Services", onShared)
	}
}
