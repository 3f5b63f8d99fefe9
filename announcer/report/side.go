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
	// markedCounts is how long a node this speaker marked Unreachable
	// still counts as a speaker of the other side: a live one rewrites its
	// object within a second, and the sweep marks it again every 10 s.
	markedCounts = 2 * sweepInterval
)

// SideClaim is what the Lease says: the holder, its side's size, when it
// was last renewed (on the holder's clock) and when this node saw it
// change last (on its own).
type SideClaim struct {
	Holder   string
	Members  int
	Renewed  time.Time
	Duration time.Duration
	// Observed is when this node last read a renewal it had not seen:
	// expiry is timed from it, as client-go's leader election does, so
	// clocks that disagree cannot expire a live claim or keep a dead one.
	Observed time.Time
}

// Expired: no renewal seen for the Lease's duration.
func (c SideClaim) Expired(now time.Time) bool {
	return now.Sub(c.Observed) > c.Duration
}

// observedClaim is the Lease's holder and renewal as last read.
type observedClaim struct {
	holder        string
	renewed, seen time.Time
}

// observe sets c.Observed: now when the holder or renewal changed since the
// last read, or else when they last did.
func (r *Reporter) observe(c *SideClaim) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.observed.holder != c.Holder || !r.observed.renewed.Equal(c.Renewed) || r.observed.seen.IsZero() {
		r.observed = observedClaim{holder: c.Holder, renewed: c.Renewed, seen: r.opts.Now()}
	}
	c.Observed = r.observed.seen
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
	seen := make(map[string]bool, len(running))
	for _, name := range running {
		if !seen[name] && !slices.Contains(alive, name) {
			others = append(others, name)
		}
		seen[name] = true
	}
	slices.Sort(others)
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
	r.observe(&c)
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

// sideLoop runs the sweeper's Lease rounds: every sideLeaseRenew, and at
// once when the members change.
func (r *Reporter) sideLoop(ctx context.Context) {
	for {
		if err := r.holdSide(ctx); err != nil {
			klog.ErrorS(err, "Holding the side Lease failed; retrying", "lease", SideLeaseName)
		}
		select {
		case <-ctx.Done():
			return
		case <-r.holdSideSoon:
		case <-time.After(sideLeaseRenew):
		}
	}
}

// holdSideNow asks for a Lease round at once.
func (r *Reporter) holdSideNow() {
	select {
	case r.holdSideSoon <- struct{}{}:
	default:
	}
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
	r.observe(&claim)
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
		// What this speaker's own sweep just marked reads Unreachable
		// for a moment: it is the other side all the same.
		running = append(running, r.recentlyMarked(now)...)
		if wins, _ := OtherSideWins(alive, claim, running, now); wins {
			return nil
		}
		klog.InfoS("Memberlist partition: this side is the larger and takes the side Lease", "holder", claim.Holder, "theirMembers", claim.Members, "ourMembers", len(alive))
	}
	r.claim(l, alive, now)
	_, err = r.opts.Leases.Update(ctx, l, metav1.UpdateOptions{FieldManager: "ironlb-speaker"})
	return ignoreRace(err)
}

// recentlyMarked are the nodes this speaker marked Unreachable within
// markedCounts; older marks are forgotten.
func (r *Reporter) recentlyMarked(now time.Time) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for name, at := range r.marked {
		if now.Sub(at) > markedCounts {
			delete(r.marked, name)
			continue
		}
		names = append(names, name)
	}
	return names
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
