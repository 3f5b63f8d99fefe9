package report

import (
	"context"
	"slices"
	"strconv"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// A memberlist partition leaves two sides that each see the other dead.
// Which side keeps announcing is held in one coordination.k8s.io Lease: each
// side's sweeper (its lowest alive name) renews it while it holds it, with
// its side's size, and takes it over with a compare-and-swap (an update at
// the resourceVersion it read) only when the holder is on its own side, has
// stopped renewing, or heads a smaller side. The other side's speakers read
// it when they find themselves marked Unreachable and stand down while it
// stays held and renewed by a larger side (announcer/partition.go). Renewals
// are also how a standing-down side learns that the other side died: the
// Lease expires, and it announces again.

// SideLeaseName is the Lease the sides of a partition decide by. The
// admission policy lets a speaker write only this Lease, naming itself.
const SideLeaseName = "ironlb-speaker-side"

const (
	// sideLeaseDuration is how long a claim holds without renewal: the
	// bound on how long a side that stood down stays down after the other
	// side died. As client-go's leader election, three renewals fit in it.
	sideLeaseDuration = 15 * time.Second
	// sideLeaseRenew is how often the holder renews: one small write per
	// period for the whole cluster, whatever its size.
	sideLeaseRenew = 5 * time.Second
	// annotationSideMembers is how many speakers the holder's side has.
	annotationSideMembers = "ironlb.io/side-members"
	// sideLeaseKey is the queue key of the sweeper's Lease round.
	sideLeaseKey = "/side-lease"
)

// SideClaim is what the Lease says: the holder, its side's size and when it
// was last renewed.
type SideClaim struct {
	Holder   string
	Members  int
	Renewed  time.Time
	Duration time.Duration
}

// Expired: the holder stopped renewing.
func (c SideClaim) Expired(now time.Time) bool {
	return now.After(c.Renewed.Add(c.Duration))
}

func claimOf(l *coordinationv1.Lease) SideClaim {
	c := SideClaim{Holder: ptr.Deref(l.Spec.HolderIdentity, "")}
	c.Members, _ = strconv.Atoi(l.Annotations[annotationSideMembers])
	if l.Spec.RenewTime != nil {
		c.Renewed = l.Spec.RenewTime.Time
	}
	c.Duration = time.Duration(ptr.Deref(l.Spec.LeaseDurationSeconds, 0)) * time.Second
	return c
}

// OtherSideWins decides a partition as one side sees it: alive are its
// speakers (sorted), claim the Lease, running the speakers whose
// SpeakerStatus reads Running. The other side wins when it holds a live
// claim and is larger, or as large with the lower lowest name. Its size is
// the claim's, but no more than the Running speakers this side does not
// see: a claim is written by one speaker, and an inflated count (stale, or
// forged with a stolen token) must not silence a side the API shows is the
// larger one. others are the speakers counted on the other side.
func OtherSideWins(alive []string, claim SideClaim, running []string, now time.Time) (wins bool, others []string) {
	if claim.Holder == "" || slices.Contains(alive, claim.Holder) || claim.Expired(now) {
		return false, nil
	}
	for _, name := range running {
		if !slices.Contains(alive, name) {
			others = append(others, name)
		}
	}
	theirs := min(claim.Members, len(others))
	if len(alive) != theirs {
		return len(alive) < theirs, others
	}
	return len(alive) > 0 && alive[0] > claim.Holder, others
}

// SideClaim reads the Lease; nil when there is none (or no Lease client).
func (r *Reporter) SideClaim(ctx context.Context) (*SideClaim, error) {
	if r.opts.Leases == nil {
		return nil, nil
	}
	l, err := r.opts.Leases.Get(ctx, SideLeaseName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c := claimOf(l)
	return &c, nil
}

// RunningSpeakers are the nodes whose SpeakerStatus reads Running, sorted:
// one list of metadata, read only to settle a partition.
func (r *Reporter) RunningSpeakers(ctx context.Context) ([]string, error) {
	list, err := r.meta.List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(labels.Set{v1alpha1.LabelState: string(v1alpha1.SpeakerRunning)}).String(),
	})
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(list.Items))
	for i := range list.Items {
		names = append(names, list.Items[i].Name)
	}
	slices.Sort(names)
	return names, nil
}

// holdSide is the sweeper's Lease round: renew what it holds, take over
// what its side should hold, leave alone what a larger side holds.
func (r *Reporter) holdSide(ctx context.Context) error {
	if r.opts.Leases == nil || !r.lowest() {
		return nil
	}
	r.mu.Lock()
	alive := slices.Clone(r.alive)
	r.mu.Unlock()
	now := r.opts.Now()
	l, err := r.opts.Leases.Get(ctx, SideLeaseName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: SideLeaseName}}
		r.claim(l, alive, now)
		_, err = r.opts.Leases.Create(ctx, l, metav1.CreateOptions{FieldManager: "ironlb-speaker"})
		return ignoreRace(err)
	}
	if err != nil {
		return err
	}
	claim := claimOf(l)
	switch {
	case claim.Holder == r.opts.NodeName:
		if claim.Members == len(alive) && now.Sub(claim.Renewed) < sideLeaseRenew-time.Second {
			return nil // renewed by a round triggered just before
		}
	case slices.Contains(alive, claim.Holder) || claim.Expired(now) || claim.Holder == "":
		// This side's own, or abandoned: the lowest alive holds it.
	case r.isPartitioned():
		return nil // this side stood down; the other side holds it
	default:
		running, err := r.RunningSpeakers(ctx)
		if err != nil {
			return err
		}
		if wins, _ := OtherSideWins(alive, claim, running, now); wins {
			return nil
		}
		klog.InfoS("Memberlist partition: this side is the larger and takes the side Lease", "holder", claim.Holder, "theirMembers", claim.Members, "ourMembers", len(alive))
	}
	r.claim(l, alive, now)
	_, err = r.opts.Leases.Update(ctx, l, metav1.UpdateOptions{FieldManager: "ironlb-speaker"})
	return ignoreRace(err)
}

// claim makes l name this speaker, its side's size and now.
func (r *Reporter) claim(l *coordinationv1.Lease, alive []string, now time.Time) {
	if ptr.Deref(l.Spec.HolderIdentity, "") != r.opts.NodeName {
		l.Spec.HolderIdentity = ptr.To(r.opts.NodeName)
		l.Spec.AcquireTime = &metav1.MicroTime{Time: now}
		l.Spec.LeaseTransitions = ptr.To(ptr.Deref(l.Spec.LeaseTransitions, 0) + 1)
	}
	l.Spec.LeaseDurationSeconds = ptr.To(int32(sideLeaseDuration / time.Second))
	l.Spec.RenewTime = &metav1.MicroTime{Time: now}
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[annotationSideMembers] = strconv.Itoa(len(alive))
	l.ManagedFields = nil
}

// ignoreRace: another sweeper wrote first; the next round reads it.
func ignoreRace(err error) error {
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}
