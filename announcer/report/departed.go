package report

import (
	"context"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// sweepDeparted marks every Running object whose speaker is not alive
// Unreachable and empties it, announcing or not: the mark is also how a
// speaker cut off from memberlist learns that the others live
// (announcer/partition.go). The list is of metadata only, so the sweep costs
// one small list plus a read and a write per departed node, however much
// each node announces.
func (r *Reporter) sweepDeparted(ctx context.Context) error {
	if !r.lowest() || r.isPartitioned() {
		return nil // no longer the one to do it, or on the smaller side
	}
	list, err := r.meta.List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(labels.Set{v1alpha1.LabelState: string(v1alpha1.SpeakerRunning)}).String(),
	})
	if err != nil {
		return err
	}
	var errs []error
	for i := range list.Items {
		name := list.Items[i].Name
		if r.isAlive(name) {
			continue
		}
		if err := r.markUnreachable(ctx, name); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("clearing departed speakers' status: %v", errs)
	}
	return nil
}

// markUnreachable empties one departed node's object. Each try reads the
// object afresh: a speaker cut off from memberlist may be writing its own at
// that very moment, and must still be marked; one that stopped or came back
// meanwhile is left alone.
func (r *Reporter) markUnreachable(ctx context.Context, name string) error {
	marked := false
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		current, err := r.get(ctx, name)
		if err != nil || current == nil || current.Status.State != v1alpha1.SpeakerRunning || r.isAlive(name) {
			return err
		}
		current.Status = v1alpha1.SpeakerStatusStatus{
			State:    v1alpha1.SpeakerUnreachable,
			Reason:   fmt.Sprintf("the other speakers lost contact with this node's speaker (seen by %s); its addresses moved to other nodes", r.opts.NodeName),
			MarkedBy: r.opts.NodeName,
			Since:    r.stamp(),
		}
		setLabels(&current.ObjectMeta, current.Status)
		current.ManagedFields = nil // kept by the apiserver; see write
		u, err := v1alpha1.ToUnstructured(current)
		if err != nil {
			return err
		}
		_, err = r.client.Update(ctx, u, metav1.UpdateOptions{FieldManager: "ironlb-speaker"})
		marked = err == nil
		return err
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if marked {
		klog.InfoS("Marked a departed speaker's status Unreachable", "node", name)
		departedSweeps.Inc()
		r.mu.Lock()
		r.marked[name] = r.opts.Now()
		r.mu.Unlock()
	}
	return err
}

func (r *Reporter) isAlive(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, found := slices.BinarySearch(r.alive, name)
	return found
}
