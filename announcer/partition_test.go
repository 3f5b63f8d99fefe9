package announcer

import (
	"context"
	"errors"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ironlb/ironlb/announcer/membership"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/config"
)

// fakeStatus is a StatusReporter that knows which members each speaker
// reports seeing.
type fakeStatus struct {
	seen map[string][]string
	err  error
}

func (f *fakeStatus) SetAnnouncements([]v1alpha1.Announcement) {}
func (f *fakeStatus) SetBGPSession(v1alpha1.BGPSession)        {}
func (f *fakeStatus) SetBGPPeers(map[string]string)            {}
func (f *fakeStatus) MembersChanged([]string)                  {}
func (f *fakeStatus) SetPartitioned(bool)                      {}
func (f *fakeStatus) MembersSeenBy(_ context.Context, node string) ([]string, error) {
	return f.seen[node], f.err
}

func TestStandsDown(t *testing.T) {
	type step struct {
		markedBy string // "" for no new mark
		alive    []string
		want     bool
	}
	tests := []struct {
		name  string
		self  string
		seen  map[string][]string // the members each marker sees
		err   error
		steps []step
	}{
		{"one node cut off: it stands down until it meets the others", "n3", map[string][]string{"n1": {"n1", "n2"}}, nil, []step{
			{"n1", []string{"n3"}, true},
			{"", []string{"n3"}, true},
			{"", []string{"n2", "n3"}, false}, // met n2 again
			{"", []string{"n2", "n3"}, false},
			// A mark that came during the partition is spent: n1 leaving
			// later is a death, not a partition.
			{"n1", []string{"n3"}, true},
			{"", []string{"n1", "n2", "n3"}, false},
			{"", []string{"n2", "n3"}, false},
		}},
		{"the larger side keeps announcing", "n1", map[string][]string{"n3": {"n3"}}, nil, []step{
			{"n3", []string{"n1", "n2"}, false},
		}},
		{"the cut-off side loses its members one at a time", "n4", map[string][]string{"n1": {"n1", "n2", "n3"}}, nil, []step{
			{"n1", []string{"n1", "n2", "n3", "n4"}, false}, // the marker is still here
			{"", []string{"n1", "n3", "n4"}, false},         // n2 gone first
			{"", []string{"n3", "n4"}, true},                // then n1: 2 against 3
		}},
		{"two nodes, a tie: the side without the lowest name stands down", "n2", map[string][]string{"n1": {"n1"}}, nil, []step{
			{"n1", []string{"n2"}, true},
		}},
		{"two nodes, a tie: the side with the lowest name keeps announcing", "n1", map[string][]string{"n2": {"n2"}}, nil, []step{
			{"n2", []string{"n1"}, false},
		}},
		{"a long-dead node counts on no side", "n1", map[string][]string{"n2": {"n2", "n3"}}, nil, []step{
			// n1..n4 with n4 dead; split {n1} | {n2, n3}: n2 sees 2.
			{"n2", []string{"n1"}, true},
		}},
		{"no mark, no partition: a node died", "n1", nil, nil, []step{
			{"", []string{"n1"}, false},
		}},
		{"marked while the marker is still alive here: wait until it is gone", "n3", map[string][]string{"n1": {"n1", "n2"}}, nil, []step{
			{"n1", []string{"n1", "n2", "n3"}, false},
			{"", []string{"n3"}, true},
		}},
		{"a blip, then the marker dies: its last view has this speaker again", "n3", map[string][]string{"n1": {"n1", "n2", "n3"}}, nil, []step{
			{"n1", []string{"n1", "n2", "n3"}, false},
			{"", []string{"n2", "n3"}, false}, // n1 died: n2 and n3 carry on
			{"", []string{"n2", "n3"}, false},
		}},
		{"the other side cannot be read: keep announcing", "n3", nil, errors.New("forbidden"), []step{
			{"n1", []string{"n3"}, false},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSpeaker(fake.NewClientset(), &fakeMembers{changes: make(chan struct{})}, SpeakerOptions{
				NodeName: tc.self, ConfigNamespace: config.DefaultNamespace, ConfigName: config.DefaultConfigMapName,
				Status: &fakeStatus{seen: tc.seen, err: tc.err},
			})
			defer s.queue.ShutDown()
			for i, st := range tc.steps {
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
			Status:    &fakeStatus{seen: map[string][]string{"n1": {"n1", "n2"}}}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer s.queue.ShutDown()
	for _, f := range s.factories {
		f.Start(ctx.Done())
		f.WaitForCacheSync(ctx.Done())
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
