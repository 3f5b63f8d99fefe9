package announcer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	discoveryinformers "k8s.io/client-go/informers/discovery/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"github.com/ironlb/ironlb/announcer/bgp"
	"github.com/ironlb/ironlb/announcer/election"
	"github.com/ironlb/ironlb/announcer/membership"
	"github.com/ironlb/ironlb/announcer/report"
	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/config"
)

// Protocol attracts traffic for the addresses this node owns. SetAnnounced
// takes the full set each time (address → interface), so a protocol never
// has to reconcile deltas it may have missed.
type Protocol interface {
	SetAnnounced(ctx context.Context, want map[netip.Addr]string) error
}

// Members is what the speaker needs of membership.
type Members interface {
	Alive() []membership.Member
	Changes() <-chan struct{}
	Join(addrs []string) (int, error)
	UpdateMeta(meta membership.Meta, timeout time.Duration) error
}

// BGPConfigurer is what the speaker needs of the BGP protocol besides
// Protocol: its sessions follow the config, this node's labels and the
// peers' password Secrets.
type BGPConfigurer interface {
	SetConfig(ctx context.Context, cfg *config.BGP, nodeName string, nodeLabels, passwords map[string]string, routerID netip.Addr) error
}

// StatusReporter publishes what this node announces and its BGP sessions
// (announcer/report writes them to the node's SpeakerStatus).
type StatusReporter interface {
	// SetAnnouncements replaces what this node announces: the addresses
	// listed one by one, and the bgp pools whose addresses of Cluster
	// Services it advertises, all of them.
	SetAnnouncements(list []v1alpha1.Announcement, bgpPools []string)
	SetBGPSession(s v1alpha1.BGPSession)
	// SetBGPPeers names the peers this node has sessions with (name →
	// address).
	SetBGPPeers(peers map[string]string)
	// MembersChanged gives the alive speakers, once this one has joined.
	MembersChanged(alive []string)
	// SideClaim reads the Lease that settles memberlist partitions; nil
	// when there is none.
	SideClaim(ctx context.Context) (*report.SideClaim, error)
	// RunningSpeakers are the nodes whose SpeakerStatus reads Running.
	RunningSpeakers(ctx context.Context) ([]string, error)
	// SetPartitioned says whether this speaker stands down on the smaller
	// side of a memberlist partition.
	SetPartitioned(on bool)
}

// SpeakerOptions configure a Speaker.
type SpeakerOptions struct {
	NodeName        string
	ConfigNamespace string
	ConfigName      string
	// Protocols by pool mode; a mode without one is not announced.
	Protocols map[config.Mode]Protocol
	// JoinGrace bounds how long a starting speaker waits to meet the other
	// nodes' speakers before it announces on its own. Default 10 s.
	JoinGrace time.Duration
	// BGP, when set, gets the bgp section whenever it, this node's labels or
	// address change.
	BGP BGPConfigurer
	// Status, when set, is told every change of what this node announces.
	Status StatusReporter
	// Filter selects the Services whose addresses are announced, as
	// ironlb-ccm selects those it serves. Default: config.DefaultClassFilter.
	Filter config.ClassFilter
	// Informers, when set, are shared with other speakers of the same
	// process (a simulation); by default each speaker has its own.
	Informers *Informers
	// LocalMeta, when set, says what this node's interfaces are instead of
	// reading the host's, which is then not watched (a simulation, whose
	// speakers share one host).
	LocalMeta func() (membership.Meta, error)
}

// Informers are the caches a speaker reads: the cluster's Services,
// EndpointSlices and Nodes, and the two ConfigMaps of its config.
type Informers struct {
	cluster, config, kept informers.SharedInformerFactory
}

// Start starts the caches that are not running yet; they stop with stop.
// Speakers sharing them start them in Run too, which is then a no-op.
func (i *Informers) Start(stop <-chan struct{}) {
	for _, f := range []informers.SharedInformerFactory{i.cluster, i.config, i.kept} {
		f.Start(stop)
	}
}

// NewInformers returns the caches of one speaker, or of several that share
// them.
func NewInformers(client kubernetes.Interface, configNamespace, configName string) *Informers {
	// One ConfigMap each: a field selector names one object, and RBAC
	// grants only these two.
	oneConfigMap := func(name string) informers.SharedInformerFactory {
		return informers.NewSharedInformerFactoryWithOptions(client, 0,
			informers.WithNamespace(configNamespace),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) {
				o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
			}))
	}
	return &Informers{cluster: informers.NewSharedInformerFactory(client, 0),
		config: oneConfigMap(configName), kept: oneConfigMap(config.LastGoodName(configName))}
}

// joinRetry is how soon unanswered speakers are contacted again; it backs
// off to joinRetryMax while some stay silent.
const (
	joinRetry    = time.Second
	joinRetryMax = 30 * time.Second
)

// Speaker is the per-node controller. It is level-triggered: every change
// that can move an announcement enqueues one key, and a sync gathers the
// whole desired state; the election (election.Table) then redoes only what
// the change can move.
type Speaker struct {
	opts     SpeakerOptions
	client   kubernetes.Interface
	members  Members
	recorder record.EventRecorder

	services   cache.Indexer // cachedService by namespace/name
	sliceIndex cache.Indexer // EndpointSlices by their Service (byServiceIndex)
	nodes      corelisters.NodeLister
	configMaps corelisters.ConfigMapLister
	keptMaps   corelisters.ConfigMapLister
	synced     []cache.InformerSynced
	factories  []informers.SharedInformerFactory
	queue      workqueue.TypedRateLimitingInterface[string]

	mu sync.Mutex
	// cfg is the last valid ironlb-config (nil while it is missing or has
	// never been valid), cfgData its text. kept is what ironlb-ccm keeps in
	// the last-good ConfigMap, keptData its data; layers orders them all
	// (config.Layers): the first that covers an address says how it is
	// announced.
	cfg     *config.Config
	cfgData string
	// invalidData is the invalid ironlb-config text last logged, to log it
	// once rather than on every sync.
	invalidData string
	kept        *config.Kept
	keptData    map[string]string
	layers      config.Layers
	announced   map[netip.Addr]announcement
	// table elects the owners and held is what it was given. Only the sync
	// goroutine uses them.
	table *election.Table
	held  *heldAddresses

	// joined is set once this speaker has met the others (or waited
	// JoinGrace for them): a speaker that has not yet joined sees itself as
	// the only member and would claim every address.
	joined bool
	// nodesChanged wakes joinLoop when the Node list changes.
	nodesChanged chan struct{}
	// bgpApplied is what BGP was last configured with in full, to call it
	// on changes only. bgpFailed is the inputs whose configuration failed
	// (a password Secret missing or unreadable): bgpKey retries them with
	// bgpRetryDelay, doubling, so a Secret created after the config, or an
	// API blip, never leaves a peer out until the next config change.
	// bgpSection is the bgp section the sessions follow (config.Layers.BGP).
	bgpSection    *config.BGP
	bgpApplied    *bgpInputs
	bgpFailed     *bgpInputs
	bgpRetryDelay time.Duration
	// metaMissingSince is when each member without known meta was first
	// seen so; metaGaveUp those elected without after metaWait. Only the
	// sync goroutine uses them.
	metaMissingSince map[string]time.Time
	metaGaveUp       map[string]bool
	// mark and down settle memberlist partitions (partition.go).
	mark *mark
	down *standingDown
}

// bgpInputs is everything the BGP sessions depend on.
type bgpInputs struct {
	cfg      *config.BGP
	labels   map[string]string
	routerID netip.Addr
}

func (in *bgpInputs) same(other *bgpInputs) bool {
	return other != nil && in.cfg == other.cfg && maps.Equal(in.labels, other.labels) && in.routerID == other.routerID
}

// announcement is one address this node announces.
type announcement struct {
	mode     config.Mode
	iface    string
	services []string
	// pool names the pool the address is announced as; fromKept is set when
	// that pool is not in ironlb-config but in a kept config (missing or
	// invalid ironlb-config, or a pool shrunk below the address).
	pool     string
	fromKept bool
	// wholePool is set for a bgp address of the current config whose
	// Services all have externalTrafficPolicy Cluster: every node the pool
	// selects advertises it, so it is reported once per pool, not per
	// address (v1alpha1.SpeakerStatusStatus.BGPPools).
	wholePool bool
	// unserved are the services with externalTrafficPolicy Local holding
	// the address that have no ready endpoint on this node, when no node
	// has one of each.
	unserved []string
}

// The queue's keys: syncKey recomputes everything; membersKey only the
// election among the members; bgpKey only retries a BGP configuration that
// failed; serviceKeyPrefix and a Service's namespace/name sync that
// Service's addresses.
const (
	syncKey    = "all"
	membersKey = "members"
	bgpKey     = "bgp"
)

// How a failed BGP configuration is retried: from bgpRetryMin, doubling,
// up to bgpRetryMax.
const (
	bgpRetryMin = time.Second
	bgpRetryMax = time.Minute
)

// NewSpeaker wires informers; Run starts them.
func NewSpeaker(client kubernetes.Interface, members Members, opts SpeakerOptions) *Speaker {
	if opts.Filter.Class == "" {
		opts.Filter = config.DefaultClassFilter()
	}
	if opts.Informers == nil {
		opts.Informers = NewInformers(client, opts.ConfigNamespace, opts.ConfigName)
	}
	factory, cmFactory, keptFactory := opts.Informers.cluster, opts.Informers.config, opts.Informers.kept
	// The cluster-wide caches go without client-go's namespace index: no
	// lookup here lists by namespace, and at 10,000 Services and 20,000
	// EndpointSlices the index is a few MiB. A Local Service's ready nodes
	// are read per Service (byServiceIndex), not from its namespace's
	// slices.
	svcInformer := factory.InformerFor(&v1.Service{}, func(c kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
		return coreinformers.NewServiceInformer(c, metav1.NamespaceAll, resync, cache.Indexers{})
	})
	sliceInformer := factory.InformerFor(&discoveryv1.EndpointSlice{}, func(c kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
		return discoveryinformers.NewEndpointSliceInformer(c, metav1.NamespaceAll, resync, cache.Indexers{byServiceIndex: sliceService})
	})
	nodeInformer := factory.InformerFor(&v1.Node{}, func(c kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
		return coreinformers.NewNodeInformer(c, resync, cache.Indexers{})
	})
	cmInformer := cmFactory.Core().V1().ConfigMaps()
	keptInformer := keptFactory.Core().V1().ConfigMaps()

	// client-go's spam filter lets 25 Events per object through, then one
	// per 5 min: on a node whose BGP sessions flapped a few times, the next
	// BGPSessionDown would be lost. 100 leaves room for a few dozen
	// flaps of every peer.
	broadcaster := record.NewBroadcaster(record.WithCorrelatorOptions(record.CorrelatorOptions{BurstSize: 100}))
	broadcaster.StartStructuredLogging(3)
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	s := &Speaker{
		opts:       opts,
		client:     client,
		members:    members,
		recorder:   broadcaster.NewRecorder(scheme.Scheme, v1.EventSource{Component: "ironlb-speaker", Host: opts.NodeName}),
		services:   svcInformer.GetIndexer(),
		sliceIndex: sliceInformer.GetIndexer(),
		nodes:      corelisters.NewNodeLister(nodeInformer.GetIndexer()),
		configMaps: cmInformer.Lister(),
		keptMaps:   keptInformer.Lister(),
		factories:  []informers.SharedInformerFactory{factory, cmFactory, keptFactory},
		synced: []cache.InformerSynced{svcInformer.HasSynced, sliceInformer.HasSynced,
			nodeInformer.HasSynced, cmInformer.Informer().HasSynced, keptInformer.Informer().HasSynced},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "ironlb-speaker"}),
		kept:             &config.Kept{},
		metaMissingSince: map[string]time.Time{},
		metaGaveUp:       map[string]bool{},
		announced:        map[netip.Addr]announcement{},
		table:            election.NewTable(opts.NodeName),
		nodesChanged:     make(chan struct{}, 1),
	}
	for informer, slim := range map[cache.SharedIndexInformer]cache.TransformFunc{
		svcInformer: slimService, sliceInformer: slimEndpointSlice, nodeInformer: slimNode,
	} {
		_ = informer.SetTransform(slim) // fails only once started
	}
	// Only a change that can move an announcement costs a sync: Node
	// heartbeats, ClusterIP Services and the EndpointSlices of Services
	// that are not Local load balancers are the bulk of the events a
	// cluster sends, and change nothing here.
	for _, h := range []struct {
		informer cache.SharedIndexInformer
		matters  func(old, cur any) bool
		key      func(obj any) string
	}{
		{svcInformer, s.serviceChangeMatters, serviceQueueKey},
		{sliceInformer, s.sliceChangeMatters, sliceQueueKey},
		{nodeInformer, nodeChangeMatters, syncAll},
		{cmInformer.Informer(), anyChange, syncAll},
		{keptInformer.Informer(), anyChange, syncAll},
	} {
		_, _ = h.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) {
				if h.matters(nil, obj) {
					s.queue.Add(h.key(obj))
				}
			},
			UpdateFunc: func(old, cur any) {
				if h.matters(old, cur) {
					s.queue.Add(h.key(cur))
				}
			},
			DeleteFunc: func(obj any) {
				if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
					obj = d.Obj
				}
				if h.matters(obj, nil) {
					s.queue.Add(h.key(obj))
				}
			},
		})
	}
	_, _ = nodeInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { s.wakeJoin() },
		UpdateFunc: func(old, cur any) {
			if !nodeAddressesEqual(old.(*v1.Node), cur.(*v1.Node)) {
				s.wakeJoin()
			}
		},
	})
	return s
}

func anyChange(_, _ any) bool { return true }

// The queue key an object's change syncs: a Service or EndpointSlice its
// Service alone, anything else everything.
func syncAll(any) string { return syncKey }

func serviceQueueKey(obj any) string {
	key, err := cache.MetaNamespaceKeyFunc(obj)
	if err != nil {
		return syncKey
	}
	return serviceKeyPrefix + key
}

func sliceQueueKey(obj any) string {
	keys, _ := sliceService(obj)
	if len(keys) != 1 {
		return syncKey
	}
	return serviceKeyPrefix + keys[0]
}

// byServiceIndex indexes EndpointSlices by their Service, namespace/name.
const byServiceIndex = "service"

func sliceService(obj any) ([]string, error) {
	sl, ok := obj.(*endpointSliceNodes)
	if !ok || sl.service.Value() == "" {
		return nil, nil
	}
	return []string{sl.namespace.Value() + "/" + sl.service.Value()}, nil
}

// nodeChangeMatters: a Node added or removed, or its labels (nodeSelector,
// BGP peers) or addresses (router ID) changed; not a status heartbeat.
func nodeChangeMatters(old, cur any) bool {
	o, ok1 := old.(*v1.Node)
	c, ok2 := cur.(*v1.Node)
	if !ok1 || !ok2 {
		return true
	}
	return !maps.Equal(o.Labels, c.Labels) || !nodeAddressesEqual(o, c) || o.UID != c.UID
}

// announcedView is what the speaker reads of a Service: nil when it
// announces nothing for it.
func (s *Speaker) announcedView(obj any) *announcedService {
	svc, ok := obj.(*cachedService)
	if !ok || !svc.servedBy(s.opts.Filter) || len(svc.ips) == 0 {
		return nil
	}
	return &announcedService{ips: svc.ips, local: svc.local}
}

type announcedService struct {
	ips   []netip.Addr
	local bool
}

// serviceChangeMatters: a Service ironlb announces for came, went, or
// changed its addresses or traffic policy.
func (s *Speaker) serviceChangeMatters(old, cur any) bool {
	o, c := s.announcedView(old), s.announcedView(cur)
	if o == nil || c == nil {
		return o != c
	}
	return o.local != c.local || !slices.Equal(o.ips, c.ips)
}

// sliceChangeMatters: an EndpointSlice of a Local Service ironlb announces
// for, whose endpoints' nodes or readiness changed.
func (s *Speaker) sliceChangeMatters(old, cur any) bool {
	o, _ := old.(*endpointSliceNodes)
	c, _ := cur.(*endpointSliceNodes)
	ref := c
	if ref == nil {
		ref = o
	}
	if ref == nil {
		return true
	}
	svc := s.serviceByKey(ref.namespace.Value() + "/" + ref.service.Value())
	if svc == nil {
		return false // its Service's own event syncs when it comes
	}
	if v := s.announcedView(svc); v == nil || !v.local {
		return false
	}
	return o == nil || c == nil || !slices.Equal(o.ready, c.ready) // handles compare as their strings do
}

// readyOnNodes lists the nodes with a ready endpoint of sl, sorted, each
// once.
func readyOnNodes(sl *discoveryv1.EndpointSlice) []string {
	var nodes []string
	for _, ep := range sl.Endpoints {
		if ep.NodeName != nil && (ep.Conditions.Ready == nil || *ep.Conditions.Ready) {
			nodes = append(nodes, *ep.NodeName)
		}
	}
	slices.Sort(nodes)
	return slices.Compact(nodes)
}

// Run serves until ctx ends, then withdraws every announcement.
func (s *Speaker) Run(ctx context.Context) error {
	defer s.queue.ShutDown()
	for _, f := range s.factories {
		f.Start(ctx.Done())
	}
	if !cache.WaitForNamedCacheSync("ironlb-speaker", ctx.Done(), s.synced...) {
		return fmt.Errorf("caches did not sync")
	}
	go s.joinLoop(ctx)
	s.publishMeta()
	go s.watchKubeProxy(ctx)
	if s.opts.LocalMeta == nil {
		go watchAddresses(ctx, func() {
			s.publishMeta()
			s.queue.Add(syncKey)
		})
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				s.queue.ShutDown()
				return
			case <-s.members.Changes():
				memberCount.Set(float64(len(s.members.Alive())))
				s.queue.Add(membersKey)
			}
		}
	}()
	s.queue.Add(syncKey)
	for s.processNext(ctx) {
	}
	return nil
}

// Withdraw stops every announcement (on shutdown, after leaving membership).
func (s *Speaker) Withdraw(ctx context.Context) {
	for mode, p := range s.opts.Protocols {
		if err := p.SetAnnounced(ctx, map[netip.Addr]string{}); err != nil {
			klog.ErrorS(err, "Withdrawing announcements failed", "mode", mode)
		}
	}
	s.mu.Lock()
	s.announced = map[netip.Addr]announcement{}
	s.mu.Unlock()
	announcedAddresses.Reset()
}

func (s *Speaker) processNext(ctx context.Context) bool {
	key, quit := s.queue.Get()
	if quit {
		return false
	}
	defer s.queue.Done(key)
	var err error
	start := time.Now()
	kind := "all"
	switch {
	case key == bgpKey:
		s.retryBGP(ctx)
		return true
	case strings.HasPrefix(key, serviceKeyPrefix):
		kind = "service"
		err = s.syncService(ctx, strings.TrimPrefix(key, serviceKeyPrefix))
	case key == membersKey:
		kind = "members"
		err = s.syncMembers(ctx)
	default:
		err = s.sync(ctx)
	}
	syncDuration.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	if err != nil {
		klog.ErrorS(err, "Sync failed; retrying")
		s.queue.AddRateLimited(key)
		return true
	}
	s.queue.Forget(key)
	return true
}

func (s *Speaker) publishMeta() {
	read := LocalMeta
	if s.opts.LocalMeta != nil {
		read = s.opts.LocalMeta
	}
	meta, err := read()
	if err != nil {
		klog.ErrorS(err, "Reading local interfaces failed")
		return
	}
	if err := s.members.UpdateMeta(meta, 2*time.Second); err != nil {
		klog.ErrorS(err, "Publishing interfaces to other speakers failed")
	}
}

// sync computes what this node announces and hands it to the protocols.
func (s *Speaker) sync(ctx context.Context) error {
	return s.syncWith(ctx, true)
}

// syncMembers is sync after a membership change: the Services and the config
// are as the last sync gathered them, so only the election absorbs the
// members that came, went or changed.
func (s *Speaker) syncMembers(ctx context.Context) error {
	return s.syncWith(ctx, s.held == nil)
}

func (s *Speaker) syncWith(ctx context.Context, gather bool) error {
	if !s.hasJoined() {
		return nil // joinLoop enqueues a sync once it has
	}
	var layers config.Layers
	var currentValid bool
	var services []*cachedService
	if gather {
		layers, currentValid = s.loadConfig()
		services = s.allServices()
	}
	members := s.members.Alive()
	memberCount.Set(float64(len(members)))
	alive, waiting := s.withKnownMeta(members, time.Now())
	if waiting {
		again := membersKey
		if gather {
			again = syncKey
		}
		s.queue.AddAfter(again, 100*time.Millisecond)
		return nil
	}
	// Membership (reported, and compared across a partition) counts every
	// member; only the election leaves out one without interfaces.
	names := make([]string, len(members))
	for i, m := range members {
		names[i] = m.Name
	}
	slices.Sort(names)
	if s.opts.Status != nil {
		s.opts.Status.MembersChanged(names)
	}
	s.standsDown(ctx, names) // sets s.down, which apply reads

	nodes := s.electionNodes(alive)
	if !gather {
		s.table.UpdateNodes(nodes)
		return s.apply(ctx)
	}
	addrs, bgpLayers := s.gatherHeld(services, layers, currentValid)
	s.table.Update(nodes, addrs)
	if err := s.configureBGP(ctx, layers.BGP(bgpLayers), false); err != nil {
		s.scheduleBGPRetry(err)
	}
	return s.apply(ctx)
}

// apply hands each protocol the addresses this node announces in its mode
// and records what changed. Every protocol gets its set even when another
// fails: one mode's trouble must not freeze the others.
func (s *Speaker) apply(ctx context.Context) error {
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	want := map[netip.Addr]announcement{}
	for ip, d := range s.table.Mine() {
		h := s.held.byIP[ip]
		if down != nil && h.pool.Mode != config.ModeBGP && s.servedElsewhere(h.pool, h.local, down.other) {
			continue // the larger side announces it
		}
		want[ip] = announcement{mode: h.pool.Mode, iface: d.Interface, services: h.services,
			pool: h.pool.Name, fromKept: h.fromKept, unserved: d.Unserved,
			wholePool: h.pool.Mode == config.ModeBGP && !h.fromKept && len(h.local) == 0}
	}
	var errs []error
	for mode, p := range s.opts.Protocols {
		set := map[netip.Addr]string{}
		for ip, a := range want {
			if a.mode == mode {
				set[ip] = a.iface
			}
		}
		if err := p.SetAnnounced(ctx, set); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", mode, err))
		}
		announcedAddresses.WithLabelValues(string(mode)).Set(float64(len(set)))
	}
	s.recordChanges(want)
	return errors.Join(errs...)
}

// metaWait bounds how long elections wait for a member's interfaces.
const metaWait = 2 * time.Second

// withKnownMeta returns the members to elect among. Electing without a
// member's interfaces would pick an owner that changes a moment later, so
// while a member's meta is on the way the election waits (waiting is true);
// but one whose meta never arrives (unreadable, or dropped on the way) must
// not pause every election: after metaWait it is left out, and said so.
func (s *Speaker) withKnownMeta(alive []membership.Member, now time.Time) ([]membership.Member, bool) {
	known := alive[:0:0]
	waiting := false
	seen := map[string]bool{}
	for _, m := range alive {
		if m.MetaKnown {
			known = append(known, m)
			continue
		}
		seen[m.Name] = true
		since, ok := s.metaMissingSince[m.Name]
		if !ok {
			s.metaMissingSince[m.Name] = now
			since = now
		}
		switch {
		case now.Sub(since) < metaWait:
			klog.V(2).InfoS("Waiting for a member's interfaces before electing", "member", m.Name)
			waiting = true
		case !s.metaGaveUp[m.Name]:
			s.metaGaveUp[m.Name] = true
			klog.ErrorS(nil, "A member's interfaces never arrived; electing without it until they do", "member", m.Name, "waited", metaWait)
		}
	}
	for name := range s.metaMissingSince {
		if !seen[name] {
			delete(s.metaMissingSince, name)
			delete(s.metaGaveUp, name)
		}
	}
	return known, waiting
}

// servedElsewhere reports whether one of nodes (the other side of a
// partition) may announce an address of pool: selected by the pool's
// nodeSelector and, with Local holders (local), holding a ready endpoint of
// one. Their interfaces cannot be known across the partition; they are
// assumed to have one. A side that stands down keeps announcing what the
// other side cannot serve: nobody would, otherwise.
func (s *Speaker) servedElsewhere(pool *config.Pool, local []election.LocalHolder, nodes []string) bool {
	for _, name := range nodes {
		if s.selects(pool, name) && (len(local) == 0 || slices.ContainsFunc(local, func(h election.LocalHolder) bool {
			_, ok := slices.BinarySearch(h.Ready, name)
			return ok
		})) {
			return true
		}
	}
	return false
}

// selects reports whether pool's nodeSelector picks node.
func (s *Speaker) selects(pool *config.Pool, node string) bool {
	n, err := s.nodes.Get(node)
	return err == nil && pool.NodeSelector.Matches(labels.Set(n.Labels))
}

// electionNodes are the alive members with a Node object, as the election
// takes them: the Node's labels, the member's interfaces. A member without
// a Node object is no pool's candidate.
func (s *Speaker) electionNodes(alive []membership.Member) []election.Node {
	out := make([]election.Node, 0, len(alive))
	for _, m := range alive {
		n, err := s.nodes.Get(m.Name)
		if err != nil {
			continue
		}
		out = append(out, election.Node{Name: m.Name, Labels: n.Labels, Interfaces: interfacesOf(m.Meta)})
	}
	return out
}

// localHolders are the services with externalTrafficPolicy Local among
// holders, each with the nodes that have a ready endpoint of it.
func (s *Speaker) localHolders(holders []*cachedService) []election.LocalHolder {
	var out []election.LocalHolder
	for _, svc := range holders {
		if svc.local {
			out = append(out, election.LocalHolder{Key: svc.key(), Ready: s.readyNodes(svc)})
		}
	}
	slices.SortFunc(out, func(a, b election.LocalHolder) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// readyNodes are the nodes with a ready endpoint of svc, sorted.
func (s *Speaker) readyNodes(svc *cachedService) []string {
	objs, err := s.sliceIndex.ByIndex(byServiceIndex, svc.key())
	if err != nil {
		return nil
	}
	var nodes []string
	for _, obj := range objs {
		nodes = append(nodes, obj.(*endpointSliceNodes).readyNodes()...)
	}
	slices.Sort(nodes)
	return slices.Compact(nodes)
}

// Ready reports whether the speaker serves: its caches are synced and it has
// joined the other speakers, so it announces what it should. A rolling
// update waits for it before restarting the next node's speaker.
func (s *Speaker) Ready() bool {
	return s.hasJoined()
}

func (s *Speaker) hasJoined() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.joined
}

// joinLoop contacts the speakers of every node this one does not know yet,
// off the sync path (a join to a silent address blocks for seconds). It
// marks the speaker joined once all answered or the join grace is over.
func (s *Speaker) joinLoop(ctx context.Context) {
	grace := time.NewTimer(s.joinGrace())
	defer grace.Stop()
	retry := joinRetry
	for {
		missing := s.joinNodes()
		switch {
		case s.hasJoined():
		case missing == 0:
			s.markJoined("met every speaker")
		case len(s.members.Alive()) > 1:
			// Another speaker joined this one meanwhile; a node that stays
			// silent is down as far as that member's view goes.
			s.markJoined("joined the cluster")
		}
		wait := joinRetryMax
		if missing > 0 {
			wait, retry = retry, min(2*retry, joinRetryMax)
		} else {
			retry = joinRetry
		}
		select {
		case <-ctx.Done():
			return
		case <-grace.C:
			if !s.hasJoined() {
				s.markJoined("join grace over; some nodes' speakers did not answer")
			}
		case <-s.nodesChanged:
		case <-time.After(wait):
		}
	}
}

func (s *Speaker) markJoined(why string) {
	s.mu.Lock()
	s.joined = true
	s.mu.Unlock()
	klog.InfoS("Announcing from now on", "reason", why, "members", len(s.members.Alive()))
	s.queue.Add(syncKey)
}

func (s *Speaker) joinGrace() time.Duration {
	if s.opts.JoinGrace > 0 {
		return s.opts.JoinGrace
	}
	return 10 * time.Second
}

// joinNodes asks membership to contact node speakers it does not know yet,
// and returns how many stay unknown. Nodes are found from the Node list:
// their InternalIP. A node without a speaker (not running yet, or excluded
// from the DaemonSet) counts as unknown until the join grace ends.
//
// Up to joinFanout of them, picked at random, are contacted at once: one
// join to a node that is down waits out a TCP timeout, and the other
// speakers elect this one as soon as any join reaches them, so this speaker
// announces from the first answer on, not after the slowest. More at once
// would not help: one answer brings the whole cluster's view (a push-pull
// of every member's state), and a starting speaker contacting all of a
// thousand nodes would pull that view a thousand times. Until one answers,
// each failed contact is replaced by the next node; once joined, the
// others are contacted on the next rounds, if still unknown by then.
func (s *Speaker) joinNodes() int {
	nodes, err := s.nodes.List(labels.Everything())
	if err != nil {
		return 0
	}
	addrs := s.unknownAddresses(nodes)
	if len(addrs) == 0 {
		return 0
	}
	rand.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
	answered := make(chan bool, len(addrs))
	inFlight, next := 0, 0
	contact := func() {
		addr := addrs[next]
		next++
		inFlight++
		go func() {
			n, err := s.members.Join([]string{addr})
			if err != nil {
				klog.V(2).InfoS("A speaker did not answer yet", "address", addr, "err", err)
			}
			answered <- err == nil && n > 0
		}()
	}
	for next < len(addrs) && inFlight < joinFanout {
		contact()
	}
	// A speaker that has not joined yet replaces each contact that fails
	// with the next node until one answers: many nodes may run no speaker
	// (a DaemonSet with a nodeSelector), and it must not announce alone.
	// One that has joined contacts one window per round.
	seeking := !s.hasJoined()
	missing := len(addrs)
	for inFlight > 0 {
		ok := <-answered
		inFlight--
		if ok {
			missing--
			if !s.hasJoined() {
				// Joining one member syncs its whole view of the cluster.
				s.markJoined("joined the cluster")
			}
		}
		if seeking && !s.hasJoined() && next < len(addrs) {
			contact()
		}
	}
	if missing < len(addrs) {
		// The answers brought the others' views: count again.
		missing = len(s.unknownAddresses(nodes))
	}
	return missing
}

// joinFanout bounds the speakers a join round contacts at once.
const joinFanout = 8

// unknownAddresses are the InternalIPs of the nodes that are not members.
func (s *Speaker) unknownAddresses(nodes []*v1.Node) []string {
	known := map[string]bool{}
	for _, m := range s.members.Alive() {
		known[m.Name] = true
	}
	var addrs []string
	for _, n := range nodes {
		if known[n.Name] {
			continue
		}
		for _, a := range n.Status.Addresses {
			if a.Type == v1.NodeInternalIP {
				addrs = append(addrs, a.Address)
				break
			}
		}
	}
	return addrs
}

// retryBGP configures BGP again after a failure, and schedules the next try
// if it fails again.
func (s *Speaker) retryBGP(ctx context.Context) {
	s.mu.Lock()
	section := s.bgpSection
	s.mu.Unlock()
	if err := s.configureBGP(ctx, section, true); err != nil {
		s.scheduleBGPRetry(err)
		return
	}
	s.bgpRetryDelay = 0
}

func (s *Speaker) scheduleBGPRetry(err error) {
	s.bgpRetryDelay = min(max(2*s.bgpRetryDelay, bgpRetryMin), bgpRetryMax)
	klog.ErrorS(err, "Configuring BGP sessions failed; retrying", "retryIn", s.bgpRetryDelay)
	s.queue.AddAfter(bgpKey, s.bgpRetryDelay)
}

// configureBGP hands the BGP protocol the bgp section, this node's labels
// and its router ID when one of them changed, or when retry asks to try a
// failed configuration again. Peer passwords are read from their Secrets
// then: rotating a password means touching the config. A peer whose
// password cannot be read is left out and reported (its session state and
// a BGPSessionDown Event) until a retry reads it.
func (s *Speaker) configureBGP(ctx context.Context, section *config.BGP, retry bool) error {
	if s.opts.BGP == nil {
		return nil
	}
	s.mu.Lock()
	s.bgpSection = section
	s.mu.Unlock()
	node, err := s.nodes.Get(s.opts.NodeName)
	if err != nil {
		return fmt.Errorf("this node's object: %w", err)
	}
	in := &bgpInputs{cfg: section, labels: node.Labels, routerID: nodeIPv4(node)}
	if in.same(s.bgpApplied) || (!retry && in.same(s.bgpFailed)) {
		return nil // applied, or failed with its retry already scheduled
	}
	passwords := map[string]string{}
	var errs []error
	if in.cfg != nil {
		for _, p := range in.cfg.Peers {
			if p.PasswordSecretRef == nil {
				continue
			}
			secret, err := s.client.CoreV1().Secrets(s.opts.ConfigNamespace).Get(ctx, p.PasswordSecretRef.Name, metav1.GetOptions{})
			if err != nil {
				errs = append(errs, fmt.Errorf("peer %s: password Secret %s/%s: %w", p.Name, s.opts.ConfigNamespace, p.PasswordSecretRef.Name, err))
				continue
			}
			passwords[p.Name] = string(secret.Data[p.PasswordSecretRef.Key])
		}
	}
	// The reporter learns the peers first: it drops session events about
	// peers it does not know.
	if s.opts.Status != nil {
		s.opts.Status.SetBGPPeers(peersOf(in.cfg, in.labels))
	}
	if err := s.opts.BGP.SetConfig(ctx, in.cfg, s.opts.NodeName, in.labels, passwords, in.routerID); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		s.bgpApplied, s.bgpFailed = nil, in
		return err
	}
	s.bgpApplied, s.bgpFailed = in, nil
	return nil
}

// peersOf names the peers this node has sessions with, and their addresses.
func peersOf(cfg *config.BGP, nodeLabels map[string]string) map[string]string {
	peers := map[string]string{}
	if cfg == nil {
		return peers
	}
	for _, p := range cfg.Peers {
		if p.Selects(labels.Set(nodeLabels)) {
			peers[p.Name] = p.Address.String()
		}
	}
	return peers
}

func nodeIPv4(node *v1.Node) netip.Addr {
	for _, a := range node.Status.Addresses {
		if ip, err := netip.ParseAddr(a.Address); err == nil && a.Type == v1.NodeInternalIP && ip.Is4() {
			return ip
		}
	}
	return netip.Addr{}
}

// AdvertisementOf is how ip is advertised in bgp mode: as the first config
// layer covering it says. That is the bgp section in force for the valid
// ironlb-config's pools; a held address that only a kept config covers
// keeps that config's own advertisement (communities, LOCAL_PREF,
// aggregation), as the config it was announced under said, whatever the
// section in force says of pools it does not know.
func (s *Speaker) AdvertisementOf(ip netip.Addr, inForce *config.BGP) *config.BGPAdvertisement {
	s.mu.Lock()
	layers := s.layers
	s.mu.Unlock()
	p, i := layers.PoolFor(ip)
	switch {
	case p == nil:
		return nil
	case layers[i].BGP != nil:
		return layers[i].BGP.AdvertisementFor(p.Name)
	case inForce != nil:
		return inForce.AdvertisementFor(p.Name)
	}
	return nil
}

// BGPSessionChanged records a BGP session going up or down: a metric, a log
// line and an Event on this node with the reason.
func (s *Speaker) BGPSessionChanged(peer string, up bool, reason string) {
	value, eventType, what := 0.0, v1.EventTypeWarning, "BGPSessionDown"
	if up {
		value, eventType, what = 1, v1.EventTypeNormal, "BGPSessionUp"
	}
	bgpSessionUp.WithLabelValues(peer, s.opts.NodeName).Set(value)
	klog.InfoS("BGP session changed", "peer", peer, "up", up, "reason", reason)
	s.reportSession(peer, up, reason)
	if reason == bgp.ReasonConnecting {
		return // a peer just configured is connecting, not down: no Warning
	}
	s.nodeEvent(eventType, what, "BGP session with %s on %s: %s", peer, s.opts.NodeName, reason)
}

// reportSession hands a session change to the status reporter, with the
// peer's address from the config in force.
func (s *Speaker) reportSession(peer string, up bool, reason string) {
	if s.opts.Status == nil {
		return
	}
	session := v1alpha1.BGPSession{Peer: peer, State: v1alpha1.BGPDown, Reason: reason}
	switch {
	case up:
		session.State = v1alpha1.BGPEstablished
	case reason == bgp.ReasonConnecting:
		session.State = v1alpha1.BGPConnecting
	}
	s.opts.Status.SetBGPSession(session)
}

// nodeEvent records an Event on this node.
func (s *Speaker) nodeEvent(eventType, reason, format string, args ...any) {
	node := &v1.ObjectReference{Kind: "Node", Name: s.opts.NodeName, UID: s.NodeUID(), APIVersion: "v1"}
	s.recorder.Event(node, eventType, reason, fmt.Sprintf(format, args...))
}

// NodeUID is this node's UID, "" while the Node is not in the cache.
func (s *Speaker) NodeUID() types.UID {
	if n, err := s.nodes.Get(s.opts.NodeName); err == nil {
		return n.UID
	}
	return ""
}

// BGPPeerRemoved forgets a peer this node no longer talks to.
func (s *Speaker) BGPPeerRemoved(peer string) {
	bgpSessionUp.DeleteLabelValues(peer, s.opts.NodeName)
}

// loadConfig parses ironlb-config and the kept configs when they changed,
// and returns the layers addresses are announced by, and whether the first
// is a valid ironlb-config. An invalid ironlb-config leaves the last valid
// one in force; a missing one leaves the kept configs (written by
// ironlb-ccm, so a speaker started meanwhile reads them too). The controller
// manager reports an invalid or missing config with an Event; speakers only
// log, so N nodes do not repeat it N times.
func (s *Speaker) loadConfig() (config.Layers, bool) {
	cm, err := s.configMaps.ConfigMaps(s.opts.ConfigNamespace).Get(s.opts.ConfigName)
	keptCM, keptErr := s.keptMaps.ConfigMaps(s.opts.ConfigNamespace).Get(config.LastGoodName(s.opts.ConfigName))
	s.mu.Lock()
	defer s.mu.Unlock()
	invalid := false
	switch {
	case apierrors.IsNotFound(err):
		if s.cfg != nil {
			klog.InfoS("ironlb-config is missing; announcing from the kept configs", "configMap", klog.KRef(s.opts.ConfigNamespace, s.opts.ConfigName))
		}
		s.cfg, s.cfgData = nil, ""
	case err != nil:
	case cm.Data[config.ConfigMapKey] == s.invalidData:
		invalid = true
	case s.cfg == nil || cm.Data[config.ConfigMapKey] != s.cfgData:
		data := cm.Data[config.ConfigMapKey]
		cfg, errs := config.Parse([]byte(data))
		if len(errs) > 0 {
			invalid = true
			if data != s.invalidData {
				klog.ErrorS(errs.ToAggregate(), "Ignoring invalid config; the last good one keeps serving")
				s.invalidData = data
			}
			break
		}
		s.cfg, s.cfgData = cfg, data
	}
	if !invalid {
		s.invalidData = ""
	}
	switch {
	case apierrors.IsNotFound(keptErr):
		s.kept, s.keptData = &config.Kept{}, nil
	case keptErr != nil:
	case !maps.Equal(keptCM.Data, s.keptData):
		kept, err := config.ParseKept(keptCM.Data)
		if err != nil {
			klog.ErrorS(err, "Some kept configs do not parse; they are left out")
		}
		s.kept, s.keptData = kept, keptCM.Data
	}
	if invalid || s.cfg == nil && s.kept.LastGood != nil {
		configStale.Set(1)
	} else {
		configStale.Set(0)
	}
	s.layers = config.NewLayers(s.cfg, s.cfgData, s.kept)
	return s.layers, s.cfg != nil
}

// recordChanges logs, counts and reports ownership changes on this node.
// Its cost grows with what this node announces, not with the Services.
func (s *Speaker) recordChanges(want map[netip.Addr]announcement) {
	s.mu.Lock()
	before := s.announced
	s.announced = want
	s.mu.Unlock()
	var acquired, kept, unserved []netip.Addr
	keptCount := 0
	for ip, a := range want {
		prev, had := before[ip]
		if !had || prev.iface != a.iface || prev.mode != a.mode {
			acquired = append(acquired, ip)
		}
		if a.fromKept {
			keptCount++
			if !had || !prev.fromKept || prev.pool != a.pool {
				kept = append(kept, ip)
			}
		}
		if len(a.unserved) > 0 && (!had || !slices.Equal(prev.unserved, a.unserved)) {
			unserved = append(unserved, ip)
		}
	}
	for _, ip := range slices.SortedFunc(slices.Values(acquired), netip.Addr.Compare) {
		a := want[ip]
		ownershipChanges.WithLabelValues("acquired").Inc()
		klog.InfoS("Announcing", "ip", ip, "interface", a.iface, "mode", a.mode, "services", a.services)
		if a.wholePool {
			// Every node the pool selects advertises it: an Event from each
			// would cost the API a write per node per Service, and say
			// nothing about this node.
			continue
		}
		msg := fmt.Sprintf("%s announces %s on %s (%s)", s.opts.NodeName, ip, a.iface, a.mode)
		switch {
		case a.mode == config.ModeBGP:
			msg = fmt.Sprintf("%s announces %s to its BGP peers (bgp)", s.opts.NodeName, ip)
		case a.iface == "":
			msg = fmt.Sprintf("%s announces %s on its off-subnet interface (%s)", s.opts.NodeName, ip, a.mode)
		}
		for _, svc := range s.servicesByKey(a.services) {
			s.recorder.Event(svc.eventTarget(), v1.EventTypeNormal, "Announcing", msg)
		}
	}
	s.reportKept(slices.SortedFunc(slices.Values(kept), netip.Addr.Compare), want)
	keptAddresses.Set(float64(keptCount))
	s.reportUnserved(slices.SortedFunc(slices.Values(unserved), netip.Addr.Compare), want)
	for ip, a := range before {
		if _, still := want[ip]; !still {
			ownershipChanges.WithLabelValues("released").Inc()
			klog.InfoS("Stopped announcing", "ip", ip, "interface", a.iface, "mode", a.mode)
		}
	}
	if s.opts.Status != nil {
		s.opts.Status.SetAnnouncements(statusOf(want))
	}
}

// statusOf is what a node's SpeakerStatus says it announces: each address,
// except the bgp addresses every selected node advertises alike, which are
// named by their pools.
func statusOf(want map[netip.Addr]announcement) ([]v1alpha1.Announcement, []string) {
	list := make([]v1alpha1.Announcement, 0, len(want))
	pools := map[string]bool{}
	for ip, a := range want {
		if a.wholePool {
			pools[a.pool] = true
			continue
		}
		list = append(list, v1alpha1.Announcement{IP: ip.String(), Mode: string(a.mode), Interface: a.iface, Services: a.services})
	}
	return list, slices.Sorted(maps.Keys(pools))
}

// reportKept says, once per address (ips: those that began being announced
// from a kept config), a Warning on its services and a log line. Nothing is
// withdrawn for it: the address is held until its service releases it.
func (s *Speaker) reportKept(ips []netip.Addr, want map[netip.Addr]announcement) {
	for _, ip := range ips {
		a := want[ip]
		klog.InfoS("Announcing from a kept config", "ip", ip, "pool", a.pool, "mode", a.mode)
		for _, svc := range s.servicesByKey(a.services) {
			s.recorder.Eventf(svc.eventTarget(), v1.EventTypeWarning, "AnnouncedFromKeptConfig",
				"%s is in no pool of a valid %s; %s announces it as pool %s of the last config that covered it (%s) until the service releases it",
				ip, s.opts.ConfigName, s.opts.NodeName, a.pool, config.LastGoodName(s.opts.ConfigName))
		}
	}
}

// reportUnserved warns, once per change (ips), the services sharing an
// address with externalTrafficPolicy Local whose traffic this node drops:
// no node has a ready endpoint of every service holding the address, and
// this one serves the most of them.
func (s *Speaker) reportUnserved(ips []netip.Addr, want map[netip.Addr]announcement) {
	for _, ip := range ips {
		a := want[ip]
		klog.InfoS("No node has a ready endpoint of every service sharing an address; announcing for the most", "ip", ip, "unserved", a.unserved)
		for _, svc := range s.servicesByKey(a.unserved) {
			s.recorder.Eventf(svc.eventTarget(), v1.EventTypeWarning, "NoLocalEndpoint",
				"no node has a ready endpoint of every service sharing %s (externalTrafficPolicy Local); %s announces it for the others, and this service's traffic is dropped there until it has a ready endpoint on that node",
				ip, s.opts.NodeName)
		}
	}
}

// addressesOf maps every load-balancer address of the services ironlb serves
// to the services holding it. An address another implementation assigned is
// never announced, even inside an ironlb pool.
func addressesOf(services []*cachedService, filter config.ClassFilter) map[netip.Addr][]*cachedService {
	out := map[netip.Addr][]*cachedService{}
	for _, svc := range services {
		if !svc.servedBy(filter) {
			continue
		}
		for _, ip := range svc.ips {
			out[ip] = append(out[ip], svc)
		}
	}
	return out
}

func serviceKeys(svcs []*cachedService) []string {
	keys := make([]string, 0, len(svcs))
	for _, s := range svcs {
		keys = append(keys, s.key())
	}
	slices.Sort(keys)
	return keys
}

func (s *Speaker) wakeJoin() {
	select {
	case s.nodesChanged <- struct{}{}:
	default:
	}
}

func nodeAddressesEqual(a, b *v1.Node) bool {
	return slices.Equal(a.Status.Addresses, b.Status.Addresses)
}
