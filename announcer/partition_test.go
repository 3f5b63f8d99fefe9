package announcer

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ironlb/ironlb/announcer/membership"
	"github.com/ironlb/ironlb/announcer/report"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/config"
)

// fakeStatus is a StatusReporter whose side Lease and Running speakers are
// given, and which keeps what it was told is announced.
type fakeStatus struct {
	claim   *report.SideClaim
	running []string
	err     error
	// announced and bgpPools are what SetAnnouncements got last.
	announced []v1alpha1.Announcement
	bgpPools  []string
}

func (f *fakeStatus) SetAnnouncements(list []v1alpha1.Announcement, bgpPools []string) {
	f.announced, f.bgpPools = list, bgpPools
}
func (f *fakeStatus) SetBGPSession(v1alpha1.BGPSession) {}
func (f *fakeStatus) SetBGPPeers(map[string]string)     {}
func (f *fakeStatus) MembersChanged([]string)           {}
func (f *fakeStatus) SetPartitioned(bool)               {}
func (f *fakeStatus) SideClaim(context.Context) (*report.SideClaim, error) {
	if f.claim == nil {
		return nil, f.err
	}
	c := *f.claim
	return &c, f.err
}
func (f *fakeStatus) RunningSpeakers(context.Context) ([]string, error) { return f.running, f.err }

// held is a live claim of the Lease: a renewal seen now.
func held(holder string, members int) *report.SideClaim {
	return &report.SideClaim{Holder: holder, Members: members, Renewed: time.Now(), Observed: time.Now(), Duration: 15 * time.Second}
}

// stale is a claim whose last renewal this node saw ago.
func stale(holder string, members int, ago time.Duration) *report.SideClaim {
	c := held(holder, members)
	c.Observed = time.Now().Add(-ago)
	return c
}

func TestStandsDown(t *testing.T) {
	type step struct {
		markedBy string // "" for no new mark
		alive    []string
		// claim, when set, is the Lease from this step on; recheck makes a
		// side that stands down read it now.
		claim   *report.SideClaim
		recheck bool
		// running, when set, are the Running speakers from this step on.
		running []string
		want    bool
	}
	all := []string{"n1", "n2", "n3", "n4", "n5"}
	tests := []struct {
		name    string
		self    string
		claim   *report.SideClaim
		running []string
		err     error
		steps   []step
	}{
		{name: "one node cut off: it stands down until it meets the others", self: "n3", claim: held("n1", 2), running: all[:3], steps: []step{
			{markedBy: "n1", alive: []string{"n3"}, want: true},
			{alive: []string{"n3"}, recheck: true, want: true},
			{alive: []string{"n2", "n3"}, want: false}, // met n2 again
			{alive: []string{"n2", "n3"}, want: false},
			// A mark that came during the partition is spent: n1 leaving
			// later is a death, not a partition.
			{markedBy: "n1", alive: []string{"n3"}, want: true},
			{alive: []string{"n1", "n2", "n3"}, want: false},
			{alive: []string{"n2", "n3"}, want: false},
		}},
		{name: "the larger side keeps announcing", self: "n1", claim: held("n3", 1), running: all[:3], steps: []step{
			{markedBy: "n3", alive: []string{"n1", "n2"}, want: false},
		}},
		{name: "this side holds the Lease", self: "n2", claim: held("n1", 2), running: all[:3], steps: []step{
			{markedBy: "n3", alive: []string{"n1", "n2"}, want: false},
		}},
		{name: "the cut-off side loses its members one at a time", self: "n4", claim: held("n1", 3), running: all[:4], steps: []step{
			{markedBy: "n1", alive: []string{"n1", "n2", "n3", "n4"}, want: false}, // the marker is still here
			{alive: []string{"n1", "n3", "n4"}, want: false},                       // n2 gone first
			{alive: []string{"n3", "n4"}, want: true},                              // then n1: 2 against 3
		}},
		{name: "two nodes, a tie: the side without the lowest name stands down", self: "n2", claim: held("n1", 1), running: all[:2], steps: []step{
			{markedBy: "n1", alive: []string{"n2"}, want: true},
		}},
		{name: "two nodes, a tie: the side with the lowest name keeps announcing", self: "n1", claim: held("n2", 1), running: all[:2], steps: []step{
			{markedBy: "n2", alive: []string{"n1"}, want: false},
		}},
		{name: "a claim from before the split counts no more than the speakers this side does not see", self: "n3", claim: held("n1", 4), running: all[:4], steps: []step{
			// {n1} | {n2, n3, n4}: n1 held the Lease for all four.
			{markedBy: "n1", alive: []string{"n2", "n3", "n4"}, want: false},
		}},
		{name: "a forged count (a stolen token, its speaker dead) silences no one", self: "n2", claim: held("n1", 100), running: all, steps: []step{
			{markedBy: "n1", alive: []string{"n2", "n3", "n4", "n5"}, want: false},
		}},
		{name: "a long-dead node counts on no side", self: "n1", claim: held("n2", 2), running: all[:3], steps: []step{
			// n1..n4 with n4 dead (not Running); split {n1} | {n2, n3}.
			{markedBy: "n2", alive: []string{"n1"}, want: true},
		}},
		{name: "the other side has not taken the Lease yet: wait for it", self: "n3", claim: held("n3", 3), running: all[:3], steps: []step{
			{markedBy: "n1", alive: []string{"n3"}, want: false},
			{alive: []string{"n3"}, claim: held("n1", 2), want: true},
		}},
		{name: "an expired Lease is no claim", self: "n3", claim: stale("n1", 2, time.Minute), running: all[:3], steps: []step{
			{markedBy: "n1", alive: []string{"n3"}, want: false},
		}},
		{name: "the other side dies while this one stands down: announce once its Lease expires", self: "n3", claim: held("n1", 2), running: all[:3], steps: []step{
			{markedBy: "n1", alive: []string{"n3"}, want: true},
			{alive: []string{"n3"}, claim: stale("n1", 2, 20*time.Second), want: true}, // not read again yet
			{alive: []string{"n3"}, recheck: true, want: false},
		}},
		{name: "the other side shrinks below this one while it stands down", self: "n4", claim: held("n1", 3), running: all, steps: []step{
			{markedBy: "n1", alive: []string{"n4", "n5"}, want: true},
			{alive: []string{"n4", "n5"}, claim: held("n1", 1), recheck: true, want: false},
		}},
		{name: "a new holder's count, standing down, is borne out by the Running speakers or not at all", self: "n4", claim: held("n1", 3), running: all, steps: []step{
			{markedBy: "n1", alive: []string{"n4", "n5"}, want: true},
			// n1..n3 died; n6, a stolen token's node, claims 100.
			{alive: []string{"n4", "n5"}, claim: held("n6", 100), running: []string{"n4", "n5", "n6"}, recheck: true, want: false},
		}},
		{name: "the other side counted again while it settles", self: "n4", claim: held("n1", 3), running: []string{"n1", "n4", "n5"}, steps: []step{
			// Counted while n2 and n3 still read Unreachable: 1 against 2.
			{markedBy: "n1", alive: []string{"n4", "n5"}, want: false},
			{alive: []string{"n4", "n5"}, running: all, want: true},
			{alive: []string{"n4", "n5"}, running: all, recheck: true, want: true},
		}},
		{name: "no mark, no partition: a node died", self: "n1", claim: held("n1", 1), running: all[:2], steps: []step{
			{alive: []string{"n1"}, want: false},
		}},
		{name: "marked while the marker is still alive here: wait until it is gone", self: "n3", claim: held("n1", 2), running: all[:3], steps: []step{
			{markedBy: "n1", alive: []string{"n1", "n2", "n3"}, want: false},
			{alive: []string{"n3"}, want: true},
		}},
		{name: "no Lease (an install without it): keep announcing", self: "n3", running: all[:3], steps: []step{
			{markedBy: "n1", alive: []string{"n3"}, want: false},
		}},
		{name: "the API cannot be read: keep announcing", self: "n3", claim: held("n1", 2), running: all[:3], err: errors.New("forbidden"), steps: []step{
			{markedBy: "n1", alive: []string{"n3"}, want: false},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status := &fakeStatus{claim: tc.claim, running: tc.running, err: tc.err}
			s := NewSpeaker(fake.NewClientset(), &fakeMembers{changes: make(chan struct{})}, SpeakerOptions{
				NodeName: tc.self, ConfigNamespace: config.DefaultNamespace, ConfigName: config.DefaultConfigMapName,
				Status: status,
			})
			defer s.queue.ShutDown()
			for i, st := range tc.steps {
				if st.claim != nil {
					status.claim = st.claim
				}
				if st.running != nil {
					status.running = st.running
				}
				if st.recheck && s.down != nil {
					s.down.checked = time.Time{}
				}
				if st.markedBy != "" {
					s.MarkedUnreachable(st.markedBy)
				}
				if got := s.standsDown(context.Background(), st.alive) != nil; got != st.want {
					t.Fatalf("step %d (alive %v): stands down %v, want %v", i, st.alive, got, st.want)
				}
			}
		})
	}
}

// TestStandingDownKeepsWhatOnlyThisSideServes: the smaller side of a
// partition stops the layer2 addresses the other side can serve, and keeps
// those only it can: a pool whose nodeSelector picks only its nodes, a Local
// service whose only endpoint is here.
func TestStandingDownKeepsWhatOnlyThisSideServes(t *testing.T) {
	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: config.DefaultNamespace, Name: config.DefaultConfigMapName},
		Data: map[string]string{config.ConfigMapKey: speakerConfig}}
	client := fake.NewClientset(cm, node("n1", nil), node("n2", nil), node("n3", map[string]string{"edge": "true"}),
		lbWithIP("web", "203.0.113.5", false), lbWithIP("edge", "198.51.100.201", false),
		lbWithIP("local", "203.0.113.6", true), slice("local", "n3", true))
	layer2 := &recordingProtocol{}
	// n3 is cut off from n1 and n2, which marked it.
	s := NewSpeaker(client, &fakeMembers{members: []membership.Member{{Name: "n3", Meta: lanMeta(), MetaKnown: true}}, changes: make(chan struct{})},
		SpeakerOptions{NodeName: "n3", ConfigNamespace: config.DefaultNamespace, ConfigName: config.DefaultConfigMapName,
			Protocols: map[config.Mode]Protocol{config.ModeLayer2: layer2},
			Status:    &fakeStatus{claim: held("n1", 2), running: []string{"n1", "n2", "n3"}}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer s.queue.ShutDown()
	if err := s.startCaches(ctx); err != nil {
		t.Fatal(err)
	}
	s.joined = true
	s.MarkedUnreachable("n1")
	if err := s.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if s.down == nil {
		t.Fatal("n3 did not stand down")
	}
	var got []string
	for ip := range layer2.get() {
		got = append(got, ip.String())
	}
	slices.Sort(got)
	if want := []string{"198.51.100.201", "203.0.113.6"}; !slices.Equal(got, want) {
		t.Errorf("standing down, n3 announces %v; want %v (only it serves those), not 203.0.113.5", got, want)
	}
}

// TestMarkIsRefuted: every mark is answered with a memberlist refutation,
// which revives this node in the view of others that declared it dead
// while it saw them (membership's TestRefuteRevivesAMemberTheOthersThinkDead).
func TestMarkIsRefuted(t *testing.T) {
	members := &fakeMembers{changes: make(chan struct{})}
	s := NewSpeaker(fake.NewClientset(), members, SpeakerOptions{NodeName: "n3", ConfigNamespace: config.DefaultNamespace, ConfigName: config.DefaultConfigMapName})
	t.Cleanup(s.queue.ShutDown)
	for want := int32(1); want <= 2; want++ {
		s.MarkedUnreachable("n1")
		if got := members.refuted.Load(); got != want {
			t.Fatalf("after %d marks, %d refutations", want, got)
		}
	}
}
