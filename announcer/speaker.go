package announcer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	discoveryinformers "k8s.io/client-go/informers/discovery/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

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
	// Refute tells the others this member is alive, overriding their
	// suspicion or death of it (membership.Members.Refute).
	Refute()
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

// Speaker is the per-node controller. It is level-triggered: every change
// that can move an announcement enqueues one key, and a sync gathers the
// whole desired state; the election (election.Table) then redoes only what
// the change can move.
type Speaker struct {
	opts     SpeakerOptions
	client   kubernetes.Interface
	members  Members
	recorder record.EventRecorder
	// dueEvents are the Events about addresses waiting for their turn.
	dueEvents *dueEvents

	services   cache.Indexer // cachedService by namespace/name
	sliceStore cache.Store   // EndpointSlices (endpointSliceNodes)
	// slicesOf indexes them by Service; the slice handler keeps it.
	slicesOf   *slicesByService
	nodes      nodeStore
	configMaps corelisters.ConfigMapLister
	keptMaps   corelisters.ConfigMapLister
	synced     []cache.DoneChecker
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
	// announced is what the protocols were last given; its map is
	// replaced, never changed.
	announced map[netip.Addr]announcement
	// table elects the owners and held is what it was given. Only the sync
	// goroutine uses them.
	table *election.Table
	held  *heldAddresses
	// applyFailed is set while a protocol failed to take the last apply:
	// the next one is whole, whatever changed.
	applyFailed bool

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
	// memberInterfaces are the members' published interfaces, parsed
	// (electionNodes); each is parsed again only when its meta changed.
	// Only the sync goroutine uses them.
	memberInterfaces map[string]parsedInterfaces
	// mark and down settle memberlist partitions (partition.go).
	mark *mark
	down *standingDown
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

func (a *announcement) equal(o *announcement) bool {
	return a.mode == o.mode && a.iface == o.iface && slices.Equal(a.services, o.services) && a.pool == o.pool &&
		a.fromKept == o.fromKept && a.wholePool == o.wholePool && slices.Equal(a.unserved, o.unserved)
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
	// are read per Service (slicesByService), not from its namespace's
	// slices.
	svcInformer := factory.InformerFor(&v1.Service{}, func(c kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
		return coreinformers.NewServiceInformer(c, metav1.NamespaceAll, resync, cache.Indexers{})
	})
	sliceInformer := factory.InformerFor(&discoveryv1.EndpointSlice{}, func(c kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
		return discoveryinformers.NewEndpointSliceInformer(c, metav1.NamespaceAll, resync, cache.Indexers{})
	})
	nodeInformer := factory.InformerFor(&v1.Node{}, func(c kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
		return coreinformers.NewNodeInformer(c, resync, cache.Indexers{})
	})
	cmInformer := cmFactory.Core().V1().ConfigMaps()
	keptInformer := keptFactory.Core().V1().ConfigMaps()

	s := &Speaker{
		opts:       opts,
		client:     client,
		members:    members,
		recorder:   newEventRecorder(client, opts.NodeName),
		dueEvents:  newDueEvents(),
		services:   svcInformer.GetIndexer(),
		sliceStore: sliceInformer.GetStore(),
		slicesOf:   newSlicesByService(),
		nodes:      nodeStore{nodeInformer.GetStore()},
		configMaps: cmInformer.Lister(),
		keptMaps:   keptInformer.Lister(),
		factories:  []informers.SharedInformerFactory{factory, cmFactory, keptFactory},
		synced: []cache.DoneChecker{svcInformer.HasSyncedChecker(), sliceInformer.HasSyncedChecker(),
			nodeInformer.HasSyncedChecker(), cmInformer.Informer().HasSyncedChecker(), keptInformer.Informer().HasSyncedChecker()},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "ironlb-speaker"}),
		kept:             &config.Kept{},
		metaMissingSince: map[string]time.Time{},
		memberInterfaces: map[string]parsedInterfaces{},
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
	s.queueChanges(svcInformer, sliceInformer, nodeInformer, cmInformer.Informer(), keptInformer.Informer())
	return s
}

// Run serves until ctx ends, then withdraws every announcement.
func (s *Speaker) Run(ctx context.Context) error {
	defer s.queue.ShutDown()
	if err := s.startCaches(ctx); err != nil {
		return err
	}
	go s.joinLoop(ctx)
	go s.recordDueEvents(ctx)
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
				// The sync counts the members (memberCount): a copy of
				// them here, on every change, was a quarter of what a
				// thousand simulated speakers allocated.
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
		if a, ok := s.announcementOf(ip, d, down); ok {
			want[ip] = a
		}
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
	s.applyFailed = len(errs) > 0
	return errors.Join(errs...)
}

// applyFor is apply after a change that can only have touched ips (a
// Service's addresses): when none of them is to be announced otherwise
// than it is, nothing else can have changed either, and the protocols and
// the status are left alone. On a node that announces thousands of
// addresses, most Service changes are about addresses of other nodes, and
// a whole apply costs as much as the addresses it announces.
func (s *Speaker) applyFor(ctx context.Context, ips []netip.Addr) error {
	s.mu.Lock()
	down, announced := s.down, s.announced
	s.mu.Unlock()
	if s.applyFailed || slices.ContainsFunc(ips, func(ip netip.Addr) bool {
		a, announce := announcement{}, false
		if d, mine := s.table.Mine()[ip]; mine {
			a, announce = s.announcementOf(ip, d, down)
		}
		before, was := announced[ip]
		return announce != was || (announce && !a.equal(&before))
	}) {
		return s.apply(ctx)
	}
	return nil
}

// announcementOf is how this node announces ip, which the election gave it
// (d), and false when it stands down from it: during a partition (down,
// nil when none), the larger side announces it.
func (s *Speaker) announcementOf(ip netip.Addr, d election.Decision, down *standingDown) (announcement, bool) {
	h := s.held.byIP[ip]
	if down != nil && h.pool.Mode != config.ModeBGP && s.servedElsewhere(h.pool, h.local, down.other) {
		return announcement{}, false
	}
	return announcement{mode: h.pool.Mode, iface: d.Interface, services: h.services,
		pool: h.pool.Name, fromKept: h.fromKept, unserved: d.Unserved,
		wholePool: h.pool.Mode == config.ModeBGP && !h.fromKept && len(h.local) == 0}, true
}

// nodeEvent records an Event on this node.
func (s *Speaker) nodeEvent(eventType, reason, format string, args ...any) {
	node := &v1.ObjectReference{Kind: "Node", Name: s.opts.NodeName, UID: s.NodeUID(), APIVersion: "v1"}
	s.recorder.Event(node, eventType, reason, fmt.Sprintf(format, args...))
}

// NodeUID is this node's UID, "" while the Node is not in the cache.
func (s *Speaker) NodeUID() types.UID {
	if n := s.nodes.get(s.opts.NodeName); n != nil {
		return n.uid
	}
	return ""
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
