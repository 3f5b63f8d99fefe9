package announcer

import (
	"context"
	"math/rand/v2"
	"slices"
	"time"

	"k8s.io/klog/v2"
)

// Joining: a starting speaker contacts the others (from the Node objects'
// addresses) and announces nothing until it has met them or its grace has
// passed, so that it does not elect alone and take every address.

// joinRetry is how soon unanswered speakers are contacted again; it backs
// off to joinRetryMax while some stay silent.
const (
	joinRetry    = time.Second
	joinRetryMax = 30 * time.Second
)

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
//
// A speaker that has joined contacts each unknown node only with a chance
// of joinHelpers in the members it knows. Every member sees the same
// unknown node (a new Node whose speaker starts, a speaker that cannot
// reach them): contacted by all of them, a new node of a thousand-node
// cluster would serve a thousand pulls of the whole view. Contacted by a
// few each round, it still merges with the cluster, as do two halves of
// one that never met.
func (s *Speaker) joinNodes() int {
	nodes := s.nodes.list()
	addrs, members := s.unknownAddresses(nodes)
	if len(addrs) == 0 {
		return 0
	}
	unknown := len(addrs)
	seeking := !s.hasJoined()
	if !seeking && members > joinHelpers {
		chance := float64(joinHelpers) / float64(members)
		addrs = slices.DeleteFunc(addrs, func(string) bool { return rand.Float64() >= chance })
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
	missing := unknown
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
	if missing < unknown {
		// The answers brought the others' views: count again.
		addrs, _ := s.unknownAddresses(nodes)
		missing = len(addrs)
	}
	return missing
}

// joinFanout bounds the speakers a join round contacts at once.
const joinFanout = 8

// joinHelpers is how many of the joined speakers contact, on average, each
// node that is not a member, each round.
const joinHelpers = 3

// unknownAddresses are the InternalIPs of the nodes that are not members,
// and how many members there are.
func (s *Speaker) unknownAddresses(nodes []*cachedNode) ([]string, int) {
	alive := s.members.Alive()
	known := make(map[string]bool, len(alive))
	for _, m := range alive {
		known[m.Name] = true
	}
	var addrs []string
	for _, n := range nodes {
		if !known[n.name] && n.internalIP != "" {
			addrs = append(addrs, n.internalIP)
		}
	}
	return addrs, len(alive)
}

func (s *Speaker) wakeJoin() {
	select {
	case s.nodesChanged <- struct{}{}:
	default:
	}
}
