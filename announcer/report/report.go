// Package report keeps each node's SpeakerStatus object equal to what that
// node's speaker announces and how its BGP sessions are, so "who announces
// this address" is readable from the API (kubectl ironlb status, kubectl get
// speakerstatuses).
//
// One object per node, written by that node only, on change, coalesced: a
// failover that moves a thousand addresses costs each node one write, and
// readers list as many objects as there are nodes, whatever the number of
// Services. Services themselves are never written, so the service controller
// never re-runs EnsureLoadBalancer and no Service watcher is woken.
package report

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// coalesce is how long a change waits for the ones that follow it (a
// failover or a config change moves many addresses at once) before the
// object is written.
const coalesce = 250 * time.Millisecond

// departedKey is the queue key of the sweep over departed nodes' objects;
// every other key is this node's own object (node names have no "/").
const departedKey = "/departed"

// sweepInterval is how often the lowest alive speaker sweeps without a
// membership change: a speaker that starts while cut off from the others
// (a restart during a partition) changes no one's membership, yet must be
// marked to learn it is cut off. The sweep writes only when it finds one.
const sweepInterval = 10 * time.Second

// Options configure a Reporter.
type Options struct {
	NodeName string
	// NodeUID returns the Node's UID, "" while unknown: the object is owned
	// by the Node so the garbage collector removes it with the node.
	NodeUID func() types.UID
	// Now is the clock; time.Now by default.
	Now func() time.Time
	// OnMarked, when set, is called when another speaker marks this one
	// Unreachable while it runs: that speaker cannot reach this one through
	// memberlist, yet both reach the API. by names it.
	OnMarked func(by string)
	// Leases, when set, holds the side Lease (SideLeaseName) that settles
	// memberlist partitions, in the speakers' namespace.
	Leases coordinationv1client.LeaseInterface
}

// Reporter writes this node's SpeakerStatus. Its setters are cheap and never
// block on the API: they record the desired state and enqueue one write.
type Reporter struct {
	opts     Options
	client   dynamic.NamespaceableResourceInterface
	meta     metadata.ResourceInterface
	informer cache.SharedIndexInformer
	factory  dynamicinformer.DynamicSharedInformerFactory
	queue    workqueue.TypedRateLimitingInterface[string]

	mu            sync.Mutex
	announcements map[string]v1alpha1.Announcement // by IP
	bgpPools      map[string]metav1.Time           // name → since
	sessions      map[string]v1alpha1.BGPSession   // by peer name
	alive         []string                         // members, for the departed sweep
	// partitioned is set while this speaker stands down on the smaller side
	// of a memberlist partition (SetPartitioned).
	partitioned bool
	// marked are the departed nodes this speaker marked, and when: the
	// other side of a partition reads Unreachable for a moment after each
	// sweep, and still counts as that side (side.go).
	marked map[string]time.Time
	// observed is the side Lease as last read, and when it last changed
	// here: expiry is timed on this node's clock, not the holder's.
	observed observedClaim
	// holdSideSoon asks sideLoop for a round now.
	holdSideSoon chan struct{}
	// bgpPoolsDroppedUntil is set when the stored object came back without
	// the bgpPools written: the CRD predates the field (helm upgrade leaves
	// CRDs as they are). Until then the field is not written, or every
	// write would differ from what is stored and be written again.
	bgpPoolsDroppedUntil time.Time
}

// bgpPoolsRetry is how long a CRD that drops bgpPools is trusted to still
// do so before the field is written again.
const bgpPoolsRetry = 10 * time.Minute

// partitionedReason says why an object is Partitioned.
const partitionedReason = "cut off from the other speakers' memberlist, on the smaller side: announces only what the other side cannot serve until it meets them again"

// SetPartitioned tells the reporter whether this speaker stands down on the
// smaller side of a memberlist partition. Its object then reads Partitioned
// (not Running, so the other side's sweep leaves it alone), and it sweeps no
// other: a cut-off speaker would otherwise mark every other node every
// sweep, and they would rewrite theirs, for as long as the partition lasts.
func (r *Reporter) SetPartitioned(on bool) {
	r.mu.Lock()
	changed := r.partitioned != on
	r.partitioned = on
	r.mu.Unlock()
	if changed {
		r.queue.Add(r.opts.NodeName)
	}
}

func (r *Reporter) isPartitioned() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.partitioned
}

// New returns a Reporter; Run starts it. client reads and writes the
// objects; meta lists them without their content, for the departed sweep.
func New(client dynamic.Interface, meta metadata.Interface, opts Options) *Reporter {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.NodeUID == nil {
		opts.NodeUID = func() types.UID { return "" }
	}
	factory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(client, 0, "", func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", opts.NodeName).String()
	})
	r := &Reporter{
		opts:     opts,
		client:   client.Resource(v1alpha1.SpeakerStatusResource),
		meta:     meta.Resource(v1alpha1.SpeakerStatusResource),
		informer: factory.ForResource(v1alpha1.SpeakerStatusResource).Informer(),
		factory:  factory,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "ironlb-speaker-status"}),
		announcements: map[string]v1alpha1.Announcement{},
		bgpPools:      map[string]metav1.Time{},
		sessions:      map[string]v1alpha1.BGPSession{},
		marked:        map[string]time.Time{},
		holdSideSoon:  make(chan struct{}, 1),
	}
	// Anyone else's change to this node's object (the departed sweep of
	// another speaker, a human) is undone by the next write. The echo of our
	// own write waits like any change, so it cannot cut a coalescing short.
	enqueue := func(any) { r.queue.AddAfter(opts.NodeName, coalesce) }
	_, _ = r.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue,
		UpdateFunc: func(old, cur any) {
			r.noticeMark(old, cur)
			enqueue(cur)
		},
		DeleteFunc: enqueue,
	})
	return r
}

// noticeMark calls OnMarked when an update marks this node Unreachable. Only
// an update counts: the object a restarted speaker finds may carry the mark
// of its previous run.
func (r *Reporter) noticeMark(old, cur any) {
	if r.opts.OnMarked == nil {
		return
	}
	before, err1 := v1alpha1.FromUnstructured(old.(*unstructured.Unstructured))
	after, err2 := v1alpha1.FromUnstructured(cur.(*unstructured.Unstructured))
	if err1 != nil || err2 != nil || before.Status.State == v1alpha1.SpeakerUnreachable ||
		after.Status.State != v1alpha1.SpeakerUnreachable || after.Status.MarkedBy == "" || after.Status.MarkedBy == r.opts.NodeName {
		return
	}
	r.opts.OnMarked(after.Status.MarkedBy)
}

// SetAnnouncements replaces what this node announces: the addresses listed
// one by one, and the bgp pools whose Cluster addresses it advertises
// (v1alpha1.SpeakerStatusStatus.BGPPools). Since is kept for what was
// already announced, so it says when announcing began.
func (r *Reporter) SetAnnouncements(list []v1alpha1.Announcement, bgpPools []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := make(map[string]v1alpha1.Announcement, len(list))
	now := r.stamp()
	for _, a := range list {
		a.Services = slices.Sorted(slices.Values(a.Services))
		if prev, ok := r.announcements[a.IP]; ok && prev.Mode == a.Mode && prev.Interface == a.Interface {
			a.Since = prev.Since
		} else {
			a.Since = now
		}
		next[a.IP] = a
	}
	pools := make(map[string]metav1.Time, len(bgpPools))
	for _, name := range bgpPools {
		since, ok := r.bgpPools[name]
		if !ok {
			since = now
		}
		pools[name] = since
	}
	if equalAnnouncements(r.announcements, next) && maps.Equal(r.bgpPools, pools) {
		return
	}
	r.announcements, r.bgpPools = next, pools
	r.queue.AddAfter(r.opts.NodeName, coalesce)
}

// SetBGPSession records a session's state; Since changes only with State.
// Only peers of the last SetBGPPeers count: an event about a peer removed
// meanwhile is late, not news.
func (r *Reporter) SetBGPSession(s v1alpha1.BGPSession) {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev, ok := r.sessions[s.Peer]
	if !ok {
		return
	}
	s.Address = prev.Address
	if prev.State == s.State && prev.Reason == s.Reason {
		return
	}
	s.Since = r.stamp()
	if prev.State == s.State {
		s.Since = prev.Since
	}
	r.sessions[s.Peer] = s
	r.queue.AddAfter(r.opts.NodeName, coalesce)
}

// SetBGPPeers keeps the sessions of exactly these peers, adding the new ones
// as Connecting at the given addresses (peer name → address).
func (r *Reporter) SetBGPPeers(peers map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := false
	for name, s := range r.sessions {
		if addr, ok := peers[name]; !ok || addr != s.Address {
			delete(r.sessions, name)
			changed = true
		}
	}
	for name, addr := range peers {
		if _, ok := r.sessions[name]; !ok {
			r.sessions[name] = v1alpha1.BGPSession{Peer: name, Address: addr, State: v1alpha1.BGPConnecting, Since: r.stamp()}
			changed = true
		}
	}
	if changed {
		r.queue.AddAfter(r.opts.NodeName, coalesce)
	}
}

// MembersChanged tells the reporter which speakers are alive (never empty:
// this one is). The speaker calls it on every sync once it has joined; only
// a change counts. The alive
// speaker with the lowest name then marks the objects of the others
// Unreachable and empties them: a killed speaker cannot, and its addresses
// have moved on. Called on membership changes only, not on object changes,
// so two sides of a split membership do not fight over the objects: each
// rewrites its own once, and both claims show.
func (r *Reporter) MembersChanged(alive []string) {
	sorted := slices.Sorted(slices.Values(alive))
	r.mu.Lock()
	changed := !slices.Equal(r.alive, sorted)
	r.alive = sorted
	r.mu.Unlock()
	if !changed {
		return
	}
	r.queue.AddAfter(r.opts.NodeName, coalesce) // status.members
	if r.lowest() {
		r.queue.Add(departedKey)
		r.holdSideNow() // the side's size, at once
	}
}

// lowest: this speaker is the alive one with the lowest name, the one that
// sweeps.
func (r *Reporter) lowest() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.alive) > 0 && r.alive[0] == r.opts.NodeName
}

// stamp is now at the API's precision (seconds), so what was written
// compares equal to what is read back.
func (r *Reporter) stamp() metav1.Time {
	return metav1.NewTime(r.opts.Now().Truncate(time.Second))
}

// Start writes in the background until ctx ends or stop is called; stop
// returns once writing has ended. The speaker does not wait for the first
// write: a cluster without the SpeakerStatus CRD still gets its traffic
// announced.
func (r *Reporter) Start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

func (r *Reporter) run(ctx context.Context) {
	defer r.queue.ShutDown()
	// No OnMarked after run returns: the informer is stopped and waited for.
	defer r.factory.Shutdown()
	r.factory.Start(ctx.Done())
	go func() {
		<-ctx.Done()
		r.queue.ShutDown()
	}()
	if !r.waitForSync(ctx) {
		return
	}
	// The side Lease has a loop of its own: renewals must not wait behind
	// a sweep that marks many departed nodes, one read and write each.
	go r.sideLoop(ctx)
	r.queue.Add(r.opts.NodeName)
	for r.processNext(ctx) {
	}
}

func (r *Reporter) waitForSync(ctx context.Context) bool {
	warn := time.AfterFunc(time.Minute, func() {
		klog.InfoS("SpeakerStatus objects cannot be listed yet; is the CRD speakerstatuses.ironlb.io installed? Announcing is not affected")
	})
	defer warn.Stop()
	return cache.WaitForCacheSync(ctx.Done(), r.informer.HasSynced)
}

func (r *Reporter) processNext(ctx context.Context) bool {
	key, quit := r.queue.Get()
	if quit {
		return false
	}
	defer r.queue.Done(key)
	var err error
	switch key {
	case departedKey:
		err = r.sweepDeparted(ctx)
		if r.lowest() {
			r.queue.AddAfter(departedKey, sweepInterval)
		}
	default:
		err = r.writeOwn(ctx)
	}
	if err != nil {
		klog.ErrorS(err, "Writing SpeakerStatus failed; retrying", "key", key)
		statusWrites.WithLabelValues("error").Inc()
		r.queue.AddRateLimited(key)
		return true
	}
	r.queue.Forget(key)
	return true
}

// desired is this node's status as it should read now.
func (r *Reporter) desired(state v1alpha1.SpeakerState, reason string) v1alpha1.SpeakerStatusStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := v1alpha1.SpeakerStatusStatus{State: state, Reason: reason, Since: r.stamp()}
	if state == v1alpha1.SpeakerRunning || state == v1alpha1.SpeakerPartitioned {
		// Only the sweeper (the lowest alive name) counts the members:
		// every speaker counting them would cost each membership change a
		// write per node.
		if len(r.alive) > 0 && r.alive[0] == r.opts.NodeName {
			st.Members = len(r.alive)
		}
		for _, ip := range slices.Sorted(maps.Keys(r.announcements)) {
			st.Announcements = append(st.Announcements, r.announcements[ip])
		}
		if !r.opts.Now().Before(r.bgpPoolsDroppedUntil) {
			for _, name := range slices.Sorted(maps.Keys(r.bgpPools)) {
				st.BGPPools = append(st.BGPPools, v1alpha1.BGPPool{Pool: name, Since: r.bgpPools[name]})
			}
		}
		for _, peer := range slices.Sorted(maps.Keys(r.sessions)) {
			st.BGPSessions = append(st.BGPSessions, r.sessions[peer])
			if r.sessions[peer].State == v1alpha1.BGPEstablished {
				st.EstablishedSessions++
			}
		}
	}
	st.AnnouncedAddresses = len(st.Announcements)
	return st
}

// writeOwn makes this node's object read the desired status, writing only
// when something other than Since differs.
func (r *Reporter) writeOwn(ctx context.Context) error {
	want := r.desired(v1alpha1.SpeakerRunning, "")
	if r.isPartitioned() {
		want = r.desired(v1alpha1.SpeakerPartitioned, partitionedReason)
	}
	var current *v1alpha1.SpeakerStatus
	if obj, ok, err := r.informer.GetStore().GetByKey(r.opts.NodeName); err != nil {
		return err
	} else if ok {
		if current, err = v1alpha1.FromUnstructured(obj.(*unstructured.Unstructured)); err != nil {
			return err
		}
	}
	err := r.write(ctx, current, want)
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		// The informer is behind; the event on its way syncs again.
		return nil
	}
	return err
}

// write creates this node's object, patches its status when only that
// changed, or else updates it; patch and update both apply to current's
// resourceVersion only. want.Since stands only when State changes.
func (r *Reporter) write(ctx context.Context, current *v1alpha1.SpeakerStatus, want v1alpha1.SpeakerStatusStatus) error {
	next := &v1alpha1.SpeakerStatus{ObjectMeta: metav1.ObjectMeta{Name: r.opts.NodeName}}
	if current != nil {
		next.ObjectMeta = *current.ObjectMeta.DeepCopy()
		if current.Status.State == want.State && !current.Status.Since.IsZero() {
			want.Since = current.Status.Since
		}
	}
	setLabels(&next.ObjectMeta, want)
	r.setOwner(&next.ObjectMeta)
	sameMeta := current != nil && apiequality.Semantic.DeepEqual(current.ObjectMeta, next.ObjectMeta)
	if sameMeta && sameStatus(current.Status, want) {
		return nil
	}
	if sameMeta {
		err := r.patchStatus(ctx, current, want)
		if !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) && !apierrors.IsRequestEntityTooLargeError(err) {
			return err
		}
		// A patch that does not apply (an object someone else shaped
		// otherwise) is replaced whole.
		klog.V(2).InfoS("Patching SpeakerStatus failed; writing it whole", "err", err)
	}
	next.Status = want
	// An update without managed fields keeps the stored ones (the
	// apiserver resets them only when told to): sending them back would
	// add their size to every write.
	next.ManagedFields = nil
	u, err := v1alpha1.ToUnstructured(next)
	if err != nil {
		return err
	}
	var stored *unstructured.Unstructured
	if current == nil {
		stored, err = r.client.Create(ctx, u, metav1.CreateOptions{FieldManager: "ironlb-speaker"})
	} else {
		stored, err = r.client.Update(ctx, u, metav1.UpdateOptions{FieldManager: "ironlb-speaker"})
	}
	if err == nil {
		statusWrites.WithLabelValues("ok").Inc()
		statusAnnouncements.Set(float64(len(want.Announcements)))
		r.noticeDroppedBGPPools(want, stored)
	}
	if requiresUpdateTime(err) {
		klog.ErrorS(err, "The SpeakerStatus CRD is older than this speaker: it requires status.updateTime, which is status.since now "+
			"(helm upgrade does not upgrade CRDs). This node's SpeakerStatus cannot be written until the CRD is applied again "+
			"(kubectl apply --server-side -f charts/ironlb/crds/); what the node announces is not affected")
	}
	return err
}

// requiresUpdateTime: err is the API server refusing a SpeakerStatus for
// lacking the field an older CRD required instead of since.
func requiresUpdateTime(err error) bool {
	var status apierrors.APIStatus
	if !apierrors.IsInvalid(err) || !errors.As(err, &status) || status.Status().Details == nil {
		return false
	}
	for _, cause := range status.Status().Details.Causes {
		if cause.Type == metav1.CauseTypeFieldValueRequired && cause.Field == "status.updateTime" {
			return true
		}
	}
	return false
}

// noticeDroppedBGPPools stops writing bgpPools for a while when the stored
// object came back without the ones written (bgpPoolsDroppedUntil), and
// says what to do.
func (r *Reporter) noticeDroppedBGPPools(want v1alpha1.SpeakerStatusStatus, stored *unstructured.Unstructured) {
	if len(want.BGPPools) == 0 || stored == nil {
		return
	}
	if _, found, _ := unstructured.NestedSlice(stored.Object, "status", "bgpPools"); found {
		return
	}
	r.mu.Lock()
	r.bgpPoolsDroppedUntil = r.opts.Now().Add(bgpPoolsRetry)
	r.mu.Unlock()
	klog.ErrorS(nil, "The SpeakerStatus CRD drops status.bgpPools: it is older than this speaker (helm upgrade does not upgrade CRDs). "+
		"kubectl ironlb status cannot show who advertises the bgp pools' Cluster addresses until the CRD is applied again "+
		"(kubectl apply --server-side -f charts/ironlb/crds/); it is tried again at the first write 10 minutes on",
		"pools", len(want.BGPPools))
	r.queue.Add(r.opts.NodeName) // written again without it, so it matches what is stored
}

// patchStatus writes only what differs between current's status and want
// (statusPatch), on the condition that the stored object is still current.
func (r *Reporter) patchStatus(ctx context.Context, current *v1alpha1.SpeakerStatus, want v1alpha1.SpeakerStatusStatus) error {
	patch, err := statusPatch(current.ResourceVersion, current.Status, want)
	if err != nil {
		return err
	}
	stored, err := r.client.Patch(ctx, current.Name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: "ironlb-speaker"})
	if err == nil {
		r.noticeDroppedBGPPools(want, stored)
		statusWrites.WithLabelValues("ok").Inc()
		statusAnnouncements.Set(float64(len(want.Announcements)))
	}
	return err
}

func (r *Reporter) setOwner(meta *metav1.ObjectMeta) {
	uid := r.opts.NodeUID()
	if uid == "" {
		return
	}
	meta.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: r.opts.NodeName, UID: uid}}
}

// setLabels mirrors what the metadata-only lists select on.
func setLabels(meta *metav1.ObjectMeta, st v1alpha1.SpeakerStatusStatus) {
	if meta.Labels == nil {
		meta.Labels = map[string]string{}
	}
	meta.Labels[v1alpha1.LabelState] = string(st.State)
}

// Stop writes the final state of a speaker shutting down cleanly: Stopped,
// nothing announced. Call it after stopping Start (the running reporter
// would undo it); it reads the object afresh since the informer has stopped.
func (r *Reporter) Stop(ctx context.Context) {
	want := r.desired(v1alpha1.SpeakerStopped, "the speaker shut down and withdrew its announcements")
	var err error
	for range 3 { // a conflict with the departed sweep of another speaker
		var current *v1alpha1.SpeakerStatus
		if current, err = r.get(ctx, r.opts.NodeName); err == nil {
			if err = r.write(ctx, current, want); err == nil {
				return
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	klog.ErrorS(err, "Writing the Stopped SpeakerStatus failed")
}

// get reads a node's object; nil when there is none.
func (r *Reporter) get(ctx context.Context, name string) (*v1alpha1.SpeakerStatus, error) {
	u, err := r.client.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return v1alpha1.FromUnstructured(u)
}

func equalAnnouncements(a, b map[string]v1alpha1.Announcement) bool {
	return maps.EqualFunc(a, b, func(x, y v1alpha1.Announcement) bool {
		return x.Mode == y.Mode && x.Interface == y.Interface && slices.Equal(x.Services, y.Services)
	})
}

// sameStatus compares everything but Since.
func sameStatus(a, b v1alpha1.SpeakerStatusStatus) bool {
	a.Since, b.Since = metav1.Time{}, metav1.Time{}
	return apiequality.Semantic.DeepEqual(a, b)
}
