package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/config/oc"
	bgppacket "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
	"google.golang.org/protobuf/proto"
	"k8s.io/klog/v2"

	"github.com/ironlb/ironlb/config"
)

// Options configure a Speaker.
type Options struct {
	// AdvertisementOf returns how an announced address is advertised
	// (attributes, aggregation), given the bgp section in force: as a rule
	// that section's advertisement for the address's pool, but a held
	// address that only a kept config still covers keeps that config's.
	// Nil, or a nil result, means the section's catch-all.
	AdvertisementOf func(ip netip.Addr, inForce *config.BGP) *config.BGPAdvertisement
	// OnPeerState is told when a peer's session comes up, goes down, or the
	// reason it is down changes. Calls come from one goroutine, in order,
	// never under the Speaker's locks: the hook may block briefly and may
	// call any method but Stop (which waits for queued calls). up is true
	// only with ReasonEstablished; ReasonDeconfigured means the peer is
	// gone for this node.
	OnPeerState func(peer string, up bool, reason string)
}

// Speaker announces this node's load-balancer addresses to the configured
// routers over BGP, with one embedded gobgp server per process. Its methods
// are safe for concurrent use. See the package documentation.
type Speaker struct {
	opts   Options
	events *notifier

	mu      sync.Mutex // serializes the methods; guards the fields below
	started bool
	stopped bool
	life    context.Context
	inst    *instance
	cfg     *config.BGP
	want    []netip.Addr
	// conflicts is the last aggregation clash logged, so a sync does not
	// repeat it.
	conflicts string

	// stateMu guards the session bookkeeping, which gobgp's goroutines
	// update through onPeerEvent and onLogEvent.
	stateMu  sync.Mutex
	byAddr   map[netip.Addr]*peerSpec
	reported map[string]peerReport
}

type peerReport struct {
	up     bool
	reason string
}

// instance is one running gobgp server with its global settings. Changing
// those (AS, router ID, listen port) needs a new one: gobgp cannot restart a
// stopped server.
type instance struct {
	srv       *server.BgpServer
	global    globalConfig
	served    chan struct{} // closed when Serve returns
	stopWatch context.CancelFunc
	peers     map[string]*peerSpec // applied, by name
	routes    routeSet             // announced
}

type globalConfig struct {
	asn        uint32
	routerID   netip.Addr
	listenPort int32
}

// Policy names ironlb installs in gobgp.
const (
	anyPeerSet          = "ironlb-any-peer"
	rejectLearnedPolicy = "ironlb-reject-learned"
	globalRIB           = "global"
)

// New returns a Speaker; Start it before use.
func New(opts Options) *Speaker {
	s := &Speaker{
		opts:     opts,
		byAddr:   map[netip.Addr]*peerSpec{},
		reported: map[string]peerReport{},
	}
	s.events = newNotifier(opts.OnPeerState)
	return s
}

// Start readies the speaker. ctx bounds its life: when ctx ends gobgp is
// stopped at once, closing every session without Stop's explicit
// withdrawals (routers drop the routes on the session's end all the same).
// No BGP session is attempted before SetConfig.
func (s *Speaker) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("bgp: speaker already started")
	}
	s.started, s.life = true, ctx
	go s.events.run(ctx)
	context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.inst != nil {
			stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = s.inst.stop(stopCtx)
			s.inst = nil
		}
	})
	return nil
}

// SetConfig applies cfg for the node nodeName: it peers with the routers
// whose nodeSelector matches nodeLabels, live: new peers are added, changed
// ones updated (gobgp resets a session only when the change needs a new
// OPEN), removed ones deleted. passwords maps peer names to their TCP MD5
// passwords (read from the Secrets the peers reference); a peer whose
// password is missing is left out and reported. routerID is the node's IPv4
// address, used unless cfg sets one. A nil cfg stops all BGP.
//
// Changing localASN, routerID or listenPort restarts gobgp, resetting every
// session; nothing else does.
func (s *Speaker) SetConfig(ctx context.Context, cfg *config.BGP, nodeName string, nodeLabels, passwords map[string]string, routerID netip.Addr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	logger := klog.FromContext(ctx).WithValues("node", nodeName)
	if cfg == nil {
		s.cfg = nil
		if s.inst == nil {
			return nil
		}
		logger.Info("BGP is no longer configured; closing every session")
		err := s.inst.stop(ctx)
		s.inst = nil
		s.forgetPeers()
		return err
	}

	id := cfg.RouterID
	if !id.IsValid() {
		id = routerID.Unmap()
	}
	if !id.Is4() {
		return fmt.Errorf("bgp: no router ID: node %s has no IPv4 address (%v); set bgp.routerID", nodeName, routerID)
	}
	global := globalConfig{asn: cfg.LocalASN, routerID: id, listenPort: cfg.ListenPort}
	if s.inst != nil && s.inst.global != global {
		logger.Info("Restarting gobgp: localASN, routerID or listenPort changed", "asn", global.asn, "routerID", id, "listenPort", global.listenPort)
		err := s.inst.stop(ctx)
		s.inst = nil
		s.markDown("restarting BGP: localASN, routerID or listenPort changed")
		if err != nil {
			return fmt.Errorf("bgp: stop gobgp: %w", err)
		}
	}
	if s.inst == nil {
		inst, err := s.newInstance(ctx, global)
		if err != nil {
			return err
		}
		s.inst = inst
		logger.Info("Started gobgp", "asn", global.asn, "routerID", id, "listenPort", global.listenPort)
	}
	s.cfg = cfg

	specs, missing := peerSpecs(cfg, nodeLabels, passwords)
	errs := s.applyPeers(ctx, logger, specs, missing)
	for _, p := range missing {
		reason := fmt.Sprintf("no TCP MD5 password: key %s of Secret %s is missing or empty", p.PasswordSecretRef.Key, p.PasswordSecretRef.Name)
		s.report(p.Name, false, reason)
		errs = append(errs, fmt.Errorf("bgp: peer %s left out: %s", p.Name, reason))
	}
	if err := s.syncRoutes(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// applyPeers makes gobgp's peers those of specs. Peers in missing are
// configured but cannot be applied; their state is reported by the caller.
func (s *Speaker) applyPeers(ctx context.Context, logger klog.Logger, specs map[string]*peerSpec, missing []*config.BGPPeer) []error {
	var errs []error
	inst := s.inst
	for _, name := range slices.Sorted(maps.Keys(inst.peers)) {
		old := inst.peers[name]
		if cur, ok := specs[name]; ok && cur.addr == old.addr {
			continue
		}
		// Unknown to the reporting side first, so the session's end is not
		// reported as a failure.
		s.setPeer(old.addr, nil)
		if err := inst.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: old.addr.String()}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: delete peer %s (%s): %w", name, old.addr, err))
		}
		delete(inst.peers, name)
		_, kept := specs[name]
		if !kept && !slices.ContainsFunc(missing, func(p *config.BGPPeer) bool { return p.Name == name }) {
			s.report(name, false, ReasonDeconfigured)
		}
		logger.Info("Removed BGP peer", "peer", name, "address", old.addr)
	}
	for _, name := range slices.Sorted(maps.Keys(specs)) {
		cur := specs[name]
		old, ok := inst.peers[name]
		switch {
		case !ok:
			// Reported before gobgp can tell anything about the session.
			s.report(name, false, ReasonConnecting)
			s.setPeer(cur.addr, cur)
			if err := inst.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: cur.peer}); err != nil {
				s.setPeer(cur.addr, nil)
				s.report(name, false, "gobgp refused the peer: "+err.Error())
				errs = append(errs, fmt.Errorf("bgp: add peer %s (%s): %w", name, cur.addr, err))
				continue
			}
			inst.peers[name] = cur
			logger.Info("Added BGP peer", "peer", name, "address", cur.addr, "asn", cur.peer.Conf.PeerAsn)
		case !proto.Equal(old.peer, cur.peer):
			s.setPeer(cur.addr, cur)
			if _, err := inst.srv.UpdatePeer(ctx, &api.UpdatePeerRequest{Peer: cur.peer}); err != nil {
				errs = append(errs, fmt.Errorf("bgp: update peer %s (%s): %w", name, cur.addr, err))
				continue
			}
			inst.peers[name] = cur
			logger.Info("Updated BGP peer", "peer", name, "address", cur.addr)
		}
	}
	return errs
}

// SetAnnounced announces exactly the addresses in want (the speaker's
// Protocol interface; the map's values are unused for BGP): each as its own
// /32 or /128, or as the aggregate its advertisement asks for, with that
// advertisement's attributes. Routes no longer wanted are withdrawn at once.
// Before SetConfig the set is only remembered.
func (s *Speaker) SetAnnounced(ctx context.Context, want map[netip.Addr]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	s.want = slices.Collect(maps.Keys(want))
	return s.syncRoutes(ctx)
}

// syncRoutes makes gobgp's routes those that announce s.want.
func (s *Speaker) syncRoutes(ctx context.Context) error {
	if s.inst == nil || s.cfg == nil {
		return nil
	}
	logger := klog.FromContext(ctx)
	desired, conflicts := desiredRoutes(s.want, s.cfg, s.opts.AdvertisementOf)
	s.logConflicts(logger, conflicts)

	inst := s.inst
	var withdraw []*apiutil.Path
	var gone []netip.Prefix
	for prefix, adv := range inst.routes {
		if _, ok := desired[prefix]; ok {
			continue
		}
		p, err := newPath(prefix, adv, true)
		if err != nil {
			return err
		}
		withdraw, gone = append(withdraw, p), append(gone, prefix)
	}
	if len(withdraw) > 0 {
		if err := inst.srv.DeletePath(apiutil.DeletePathRequest{Paths: withdraw}); err != nil {
			return fmt.Errorf("bgp: withdraw %v: %w", gone, err)
		}
		for _, prefix := range gone {
			delete(inst.routes, prefix)
		}
		logger.V(2).Info("Withdrew BGP routes", "routes", gone)
	}

	var errs []error
	var added []netip.Prefix
	for _, prefix := range slices.SortedFunc(maps.Keys(desired), comparePrefix) {
		adv := desired[prefix]
		if cur, ok := inst.routes[prefix]; ok && cur.Equal(adv) {
			continue
		}
		p, err := newPath(prefix, adv, false)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		// One path per call: gobgp reports only the last error of a batch,
		// not which paths of it were added.
		if _, err := inst.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{p}}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: announce %s: %w", prefix, err))
			continue
		}
		inst.routes[prefix] = adv
		added = append(added, prefix)
	}
	if len(added) > 0 {
		logger.V(2).Info("Announced BGP routes", "routes", added)
	}
	return errors.Join(errs...)
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

func (s *Speaker) logConflicts(logger klog.Logger, conflicts []conflict) {
	var b strings.Builder
	for _, c := range conflicts {
		fmt.Fprintf(&b, "%s: %s's advertisement kept, %s's differs; ", c.prefix, c.kept, c.other)
	}
	if msg := b.String(); msg != s.conflicts {
		s.conflicts = msg
		if msg != "" {
			logger.Error(nil, "Addresses with different BGP advertisements share an aggregate route; the lowest address's attributes are used", "conflicts", msg)
		}
	}
}

// Stop withdraws every route, closes every session (routers drop the
// node's routes at once on the NOTIFICATION, graceful restart or not) and
// stops gobgp. It is the graceful path for SIGTERM; ctx bounds it.
func (s *Speaker) Stop(ctx context.Context) error {
	ok, err := s.stop(ctx)
	if ok {
		// Outside s.mu: the hook may be calling the speaker.
		s.events.close(ctx)
	}
	return err
}

// stop does Stop's work under s.mu; ok is false if there was none to do.
func (s *Speaker) stop(ctx context.Context) (ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started || s.stopped {
		return false, nil
	}
	s.stopped = true
	if s.inst != nil {
		s.want = nil
		// Explicit withdrawals first, though the NOTIFICATION that follows
		// makes routers drop the routes anyway.
		err = s.syncRoutes(ctx)
		err = errors.Join(err, s.inst.stop(ctx))
		s.inst = nil
	}
	s.forgetPeers()
	return true, err
}

func (s *Speaker) usable() error {
	switch {
	case !s.started:
		return errors.New("bgp: speaker not started")
	case s.stopped:
		return errors.New("bgp: speaker stopped")
	case s.life.Err() != nil:
		return fmt.Errorf("bgp: speaker ended: %w", context.Cause(s.life))
	}
	return nil
}

// newInstance starts a gobgp server with global settings g, ready for
// peers: received routes are refused and peer state changes watched.
func (s *Speaker) newInstance(ctx context.Context, g globalConfig) (*instance, error) {
	srv := server.NewBgpServer(server.LoggerOption(slog.New(newLogHandler(s.onLogEvent)), nil))
	inst := &instance{srv: srv, global: g, served: make(chan struct{}), stopWatch: func() {}, peers: map[string]*peerSpec{}, routes: routeSet{}}
	go func() {
		defer close(inst.served)
		srv.Serve()
	}()
	fail := func(err error) (*instance, error) {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return nil, errors.Join(err, inst.stop(stopCtx))
	}
	err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:        g.asn,
		RouterId:   g.routerID.String(),
		ListenPort: g.listenPort,
		// Only the families ironlb announces: gobgp's default, every family
		// it knows, costs about 10 MiB of empty tables.
		Families: []uint32{
			uint32(oc.AfiSafiTypeToIntMap[oc.AFI_SAFI_TYPE_IPV4_UNICAST]),
			uint32(oc.AfiSafiTypeToIntMap[oc.AFI_SAFI_TYPE_IPV6_UNICAST]),
		},
	}})
	if err != nil {
		return fail(fmt.Errorf("bgp: start gobgp (AS %d, router ID %s, listen port %d): %w", g.asn, g.routerID, g.listenPort, err))
	}
	if err := rejectLearnedRoutes(ctx, srv); err != nil {
		return fail(fmt.Errorf("bgp: install import policy: %w", err))
	}
	watchCtx, cancel := context.WithCancel(s.life)
	inst.stopWatch = cancel
	if err := srv.WatchEvent(watchCtx, server.WatchEventMessageCallbacks{OnPeerUpdate: s.onPeerEvent}, server.WatchPeer()); err != nil {
		return fail(fmt.Errorf("bgp: watch peers: %w", err))
	}
	return inst, nil
}

// rejectLearnedRoutes keeps every route the routers send out of gobgp's
// RIB: the node forwards nothing by BGP, so they would only cost memory,
// and gobgp would re-advertise one router's routes to the others, making
// the node a transit. Locally originated routes come from no neighbour and
// pass.
func rejectLearnedRoutes(ctx context.Context, srv *server.BgpServer) error {
	if err := srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: &api.DefinedSet{
		DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR,
		Name:        anyPeerSet,
		List:        []string{"0.0.0.0/0", "::/0"},
	}}); err != nil {
		return err
	}
	policy := &api.Policy{Name: rejectLearnedPolicy, Statements: []*api.Statement{{
		Name:       rejectLearnedPolicy,
		Conditions: &api.Conditions{NeighborSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: anyPeerSet}},
		Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT},
	}}}
	if err := srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: policy}); err != nil {
		return err
	}
	return srv.AddPolicyAssignment(ctx, &api.AddPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name:          globalRIB,
		Direction:     api.PolicyDirection_POLICY_DIRECTION_IMPORT,
		Policies:      []*api.Policy{{Name: rejectLearnedPolicy}},
		DefaultAction: api.RouteAction_ROUTE_ACTION_ACCEPT,
	}})
}

// stop closes every session (a Cease NOTIFICATION to each router) and stops
// the server, within ctx.
func (in *instance) stop(ctx context.Context) error {
	in.stopWatch()
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Stop runs StopBgp, which deconfigures every peer, then stops BFD.
		in.srv.Stop()
		<-in.served
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("bgp: gobgp did not stop: %w", context.Cause(ctx))
	}
}

// setPeer makes addr's events count for spec (nil: ignored).
func (s *Speaker) setPeer(addr netip.Addr, spec *peerSpec) {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if spec == nil {
		delete(s.byAddr, addr)
	} else {
		s.byAddr[addr] = spec
	}
}

// forgetPeers reports every known peer deconfigured and forgets them.
func (s *Speaker) forgetPeers() {
	s.stateMu.Lock()
	names := slices.Sorted(maps.Keys(s.reported))
	s.byAddr = map[netip.Addr]*peerSpec{}
	s.stateMu.Unlock()
	for _, name := range names {
		s.report(name, false, ReasonDeconfigured)
	}
	s.stateMu.Lock()
	s.reported = map[string]peerReport{}
	s.stateMu.Unlock()
}

// markDown reports every configured peer down for reason.
func (s *Speaker) markDown(reason string) {
	s.stateMu.Lock()
	var names []string
	for name, r := range s.reported {
		if r.reason != ReasonDeconfigured {
			names = append(names, name)
		}
	}
	s.byAddr = map[netip.Addr]*peerSpec{}
	s.stateMu.Unlock()
	slices.Sort(names)
	for _, name := range names {
		s.report(name, false, reason)
	}
}

// report records a peer's state and queues OnPeerState if it changed.
func (s *Speaker) report(name string, up bool, reason string) {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	s.reportLocked(name, up, reason)
}

func (s *Speaker) reportLocked(name string, up bool, reason string) {
	r := peerReport{up: up, reason: reason}
	if last, ok := s.reported[name]; ok && last == r {
		return
	}
	s.reported[name] = r
	if up {
		klog.InfoS("BGP session up", "peer", name)
	} else {
		klog.InfoS("BGP session down", "peer", name, "reason", reason)
	}
	s.events.push(peerEvent{peer: name, up: up, reason: reason})
}

// onPeerEvent handles gobgp's peer state changes.
func (s *Speaker) onPeerEvent(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
	if ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	st := ev.Peer.State
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	spec := s.byAddr[st.NeighborAddress]
	if spec == nil {
		return // deleted, or another instance's
	}
	if st.SessionState == bgppacket.BGP_FSM_ESTABLISHED {
		s.reportLocked(spec.name, true, ReasonEstablished)
		return
	}
	wasUp := s.reported[spec.name].up
	reason := disconnectReason(st.DisconnectReason, st.DisconnectMessage, wasUp, spec.rc)
	if reason == ReasonDeconfigured {
		// Peers ironlb removes are forgotten before; this is gobgp
		// re-creating the peer to apply a change to it.
		reason = "session restarted to apply a configuration change"
	}
	if reason == "" {
		if !wasUp {
			return // a step between states, nothing new
		}
		reason = "session down (" + st.SessionState.String() + ")"
	}
	s.reportLocked(spec.name, false, reason)
}

// onLogEvent handles what gobgp tells about sessions only in its log. It
// only explains sessions that are down: an established session's end comes
// with a state event.
func (s *Speaker) onLogEvent(ev peerLogEvent) {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	spec := s.byAddr[ev.addr]
	if spec == nil || s.reported[spec.name].up {
		return
	}
	if reason := logReason(ev, spec.rc); reason != "" {
		s.reportLocked(spec.name, false, reason)
	}
}

// peerEvent is one OnPeerState call.
type peerEvent struct {
	peer   string
	up     bool
	reason string
}

// notifier calls OnPeerState from one goroutine, in the order the state
// changes happened, so the hook never runs under the speaker's locks.
type notifier struct {
	fn    func(peer string, up bool, reason string)
	mu    sync.Mutex
	queue []peerEvent
	wake  chan struct{}
	quit  chan struct{}
	done  chan struct{}
	once  sync.Once
}

func newNotifier(fn func(string, bool, string)) *notifier {
	return &notifier{fn: fn, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
}

func (n *notifier) push(ev peerEvent) {
	if n.fn == nil {
		return
	}
	n.mu.Lock()
	n.queue = append(n.queue, ev)
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// run delivers events until ctx ends or close is called, then delivers
// what is left and returns.
func (n *notifier) run(ctx context.Context) {
	defer close(n.done)
	for {
		select {
		case <-n.wake:
			n.drain()
		case <-ctx.Done():
			n.drain()
			return
		case <-n.quit:
			n.drain()
			return
		}
	}
}

func (n *notifier) drain() {
	for {
		n.mu.Lock()
		batch := n.queue
		n.queue = nil
		n.mu.Unlock()
		if len(batch) == 0 {
			return
		}
		for _, ev := range batch {
			n.fn(ev.peer, ev.up, ev.reason)
		}
	}
}

// close delivers the queued events and stops run, waiting at most for ctx.
func (n *notifier) close(ctx context.Context) {
	n.once.Do(func() { close(n.quit) })
	select {
	case <-n.done:
	case <-ctx.Done():
	}
}
