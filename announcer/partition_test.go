package announcer

import (
	"context"
	"errors"
	"testing"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/config"
)

// fakeStatus is a StatusReporter whose speaker list is fixed.
type fakeStatus struct {
	speakers []string
	err      error
}

func (f *fakeStatus) SetAnnouncements([]v1alpha1.Announcement) {}
func (f *fakeStatus) SetBGPSession(v1alpha1.BGPSession)        {}
func (f *fakeStatus) SetBGPPeers(map[string]string)            {}
func (f *fakeStatus) MembersChanged([]string)                  {}
func (f *fakeStatus) Speakers(context.Context) ([]string, error) {
	return f.speakers, f.err
}

func TestStandsDown(t *testing.T) {
	type step struct {
		markedBy string // "" for no new mark
		alive    []string
		want     bool
	}
	tests := []struct {
		name     string
		self     string
		speakers []string
		err      error
		steps    []step
	}{
		{"one node cut off: it stands down until it meets the others", "n3", []string{"n1", "n2", "n3"}, nil, []step{
			{"n1", []string{"n3"}, true},
			{"", []string{"n3"}, true},
			{"", []string{"n2", "n3"}, false}, // met n2 again
			{"", []string{"n2", "n3"}, false},
		}},
		{"the larger side keeps announcing", "n1", []string{"n1", "n2", "n3"}, nil, []step{
			{"n3", []string{"n1", "n2"}, false},
		}},
		{"the cut-off side loses its members one at a time", "n3", []string{"n1", "n2", "n3"}, nil, []step{
			{"n1", []string{"n2", "n3"}, false}, // n1 gone: 2 against 1 so far
			{"", []string{"n3"}, true},          // n2 gone too: 1 against 2
		}},
		{"two nodes, a tie: the side without the lowest name stands down", "n2", []string{"n1", "n2"}, nil, []step{
			{"n1", []string{"n2"}, true},
		}},
		{"two nodes, a tie: the side with the lowest name keeps announcing", "n1", []string{"n1", "n2"}, nil, []step{
			{"n2", []string{"n1"}, false},
		}},
		{"no mark, no partition: a node died", "n1", []string{"n1", "n2", "n3"}, nil, []step{
			{"", []string{"n1"}, false},
		}},
		{"marked while the marker is still alive here: wait until it is gone", "n3", []string{"n1", "n2", "n3"}, nil, []step{
			{"n1", []string{"n1", "n2", "n3"}, false},
			{"", []string{"n3"}, true},
		}},
		{"speakers cannot be counted: keep announcing", "n3", nil, errors.New("forbidden"), []step{
			{"n1", []string{"n3"}, false},
		}},
		{"a speaker that stopped cleanly is not on the other side", "n2", []string{"n1", "n2"}, nil, []step{
			// n3 stopped (the list leaves it out): n2 alone against n1 is a
			// tie, which n1 wins.
			{"n1", []string{"n2"}, true},
		}},
		{"the marker is on the other side even when the list lacks it", "n1", []string{"n1", "n2"}, nil, []step{
			{"n3", []string{"n1"}, true}, // n1 alone against n2 and n3
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSpeaker(fake.NewClientset(), &fakeMembers{changes: make(chan struct{})}, SpeakerOptions{
				NodeName: tc.self, ConfigNamespace: config.DefaultNamespace, ConfigName: config.DefaultConfigMapName,
				Status: &fakeStatus{speakers: tc.speakers, err: tc.err},
			})
			defer s.queue.ShutDown()
			for i, st := range tc.steps {
				if st.markedBy != "" {
					s.MarkedUnreachable(st.markedBy)
				}
				if got := s.standsDown(context.Background(), st.alive); got != st.want {
					t.Fatalf("step %d (alive %v): stands down %v, want %v", i, st.alive, got, st.want)
				}
			}
		})
	}
}
