package report

import (
	"context"
	"strconv"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

func sideLease(holder string, members int, renewed time.Time) *coordinationv1.Lease {
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: SideLeaseName, Namespace: "ironlb-system",
			Annotations: map[string]string{annotationSideMembers: strconv.Itoa(members)}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(holder), LeaseDurationSeconds: ptr.To(int32(15)),
			RenewTime: &metav1.MicroTime{Time: renewed}},
	}
}

func runningStatus(name string) *v1alpha1.SpeakerStatus {
	return &v1alpha1.SpeakerStatus{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1alpha1.LabelState: string(v1alpha1.SpeakerRunning)}},
		Status:     v1alpha1.SpeakerStatusStatus{State: v1alpha1.SpeakerRunning},
	}
}

// TestSideLease: the sweeper's round creates, renews and takes the side
// Lease over as its side should, by compare-and-swap, and leaves a larger
// side's claim alone.
func TestSideLease(t *testing.T) {
	now := t0.Add(time.Hour)
	tests := []struct {
		name        string
		self        string
		alive       []string
		running     []string // SpeakerStatus objects that read Running
		lease       *coordinationv1.Lease
		partitioned bool
		// seenBefore: this node first read the same renewal that long
		// before the round; markedNow: its own sweep just marked these.
		seenBefore time.Duration
		markedNow  []string
		// wantHolder and wantMembers after the round; wantRenewed: renewed
		// at now.
		wantHolder  string
		wantMembers int
		wantRenewed bool
	}{
		{name: "none yet: the sweeper creates it", self: "n1", alive: []string{"n1", "n2", "n3"},
			wantHolder: "n1", wantMembers: 3, wantRenewed: true},
		{name: "a non-sweeper writes nothing", self: "n2", alive: []string{"n1", "n2", "n3"}},
		{name: "its own: renewed with its side's size", self: "n1", alive: []string{"n1", "n2"},
			lease: sideLease("n1", 3, now.Add(-5*time.Second)), wantHolder: "n1", wantMembers: 2, wantRenewed: true},
		{name: "its own, renewed a moment ago with the same size: no write", self: "n1", alive: []string{"n1", "n2"},
			lease: sideLease("n1", 2, now.Add(-time.Second)), wantHolder: "n1", wantMembers: 2},
		{name: "held by a speaker of its own side: the lowest takes it", self: "n1", alive: []string{"n1", "n2"},
			lease: sideLease("n2", 2, now), wantHolder: "n1", wantMembers: 2, wantRenewed: true},
		{name: "no renewal seen for 15 s: taken", self: "n3", alive: []string{"n3"}, running: []string{"n1", "n2", "n3"},
			lease: sideLease("n1", 2, now.Add(-time.Second)), seenBefore: 16 * time.Second, wantHolder: "n3", wantMembers: 1, wantRenewed: true},
		{name: "renewed 16 s ago by the holder's clock, first seen now: not expired here", self: "n3", alive: []string{"n3"}, running: []string{"n1", "n2", "n3"},
			lease: sideLease("n1", 2, now.Add(-16*time.Second)), wantHolder: "n1", wantMembers: 2},
		{name: "its own sweep just marked the larger side: still left alone", self: "n3", alive: []string{"n3"}, running: []string{"n3"}, markedNow: []string{"n1", "n2"},
			lease: sideLease("n1", 2, now.Add(-time.Second)), wantHolder: "n1", wantMembers: 2},
		{name: "a larger side holds it: left alone", self: "n3", alive: []string{"n3"}, running: []string{"n1", "n2", "n3"},
			lease: sideLease("n1", 2, now.Add(-time.Second)), wantHolder: "n1", wantMembers: 2},
		{name: "a smaller side holds it: taken", self: "n2", alive: []string{"n2", "n3"}, running: []string{"n1", "n2", "n3"},
			lease: sideLease("n1", 1, now), wantHolder: "n2", wantMembers: 2, wantRenewed: true},
		{name: "a count from before the split, more than this side does not see: taken", self: "n2", alive: []string{"n2", "n3"}, running: []string{"n1", "n2", "n3"},
			lease: sideLease("n1", 3, now), wantHolder: "n2", wantMembers: 2, wantRenewed: true},
		{name: "this side stood down: left alone", self: "n3", alive: []string{"n3"}, running: []string{"n1", "n3"}, partitioned: true,
			lease: sideLease("n1", 1, now.Add(-time.Second)), wantHolder: "n1", wantMembers: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var statuses []*v1alpha1.SpeakerStatus
			for _, name := range tc.running {
				statuses = append(statuses, runningStatus(name))
			}
			api := newFakeClient(statuses...)
			kube := fake.NewClientset()
			leases := kube.CoordinationV1().Leases("ironlb-system")
			if tc.lease != nil {
				tc.lease.ResourceVersion = "7"
				if _, err := leases.Create(context.Background(), tc.lease, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			clock := now.Add(-tc.seenBefore)
			r := New(api, api.meta, Options{NodeName: tc.self, Now: func() time.Time { return clock }, Leases: leases})
			defer r.queue.ShutDown()
			if tc.seenBefore > 0 {
				if _, err := r.SideClaim(context.Background()); err != nil {
					t.Fatal(err)
				}
				clock = now
			}
			r.MembersChanged(tc.alive)
			r.partitioned = tc.partitioned
			for _, name := range tc.markedNow {
				r.marked[name] = now
			}
			kube.ClearActions()
			if err := r.holdSide(context.Background()); err != nil {
				t.Fatal(err)
			}
			l, err := leases.Get(context.Background(), SideLeaseName, metav1.GetOptions{})
			if tc.wantHolder == "" {
				if err == nil {
					t.Errorf("a non-sweeper wrote the Lease: %+v", l.Spec)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := claimOf(l)
			if c.Holder != tc.wantHolder || c.Members != tc.wantMembers {
				t.Errorf("Lease held by %s with %d members, want %s with %d", c.Holder, c.Members, tc.wantHolder, tc.wantMembers)
			}
			if renewed := c.Renewed.Equal(now); renewed != tc.wantRenewed {
				t.Errorf("renewed at now: %v, want %v (renewed %v)", renewed, tc.wantRenewed, c.Renewed)
			}
			// Every write is a compare-and-swap: an update at the
			// resourceVersion read, so a claim written meanwhile by the
			// other side's sweeper refuses it (the apiserver's Conflict).
			for _, a := range kube.Actions() {
				update, ok := a.(k8stesting.UpdateAction)
				if !ok || a.GetVerb() != "update" {
					continue
				}
				if !tc.wantRenewed {
					t.Errorf("wrote the Lease although it should be left alone")
				}
				if rv := update.GetObject().(*coordinationv1.Lease).ResourceVersion; rv != "7" {
					t.Errorf("updated the Lease at resourceVersion %q, want the one read (7)", rv)
				}
			}
		})
	}
}
