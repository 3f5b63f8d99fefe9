package announcer

import (
	"context"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
)

// A memberlist partition (port 7946 blocked between some nodes) makes each
// side see the other as dead and elect its own owner for every layer2 and
// vip address: two nodes answer ARP for one address. The API is the second
// channel that tells a partition from a death. When speakers lose another,
// the lowest-named of them marks the lost one's SpeakerStatus Unreachable
// (announcer/report); each speaker also publishes the members it sees. A
// speaker that finds itself marked while it runs knows the marker's side is
// alive. Once the marker is gone from its own view too, and as long as the
// marker's published view still leaves this speaker out (a marker that died
// after the blip it marked had met this speaker again), it compares its side
// with the marker's: the smaller side (on a tie, the side whose lowest name,
// the marker's on the other side, is higher) stands down. It stops
// its layer2 and vip announcements until it meets a speaker from outside
// its side again. bgp addresses are announced by every eligible node anyway
// and stay. A death leaves no mark on the survivors: it stops no one.

// markPatience is how long a mark is weighed: this speaker's memberlist may
// take a few seconds longer than the marker's to give up on the other side
// (memberlist slows the probes of a node that looks unhealthy to itself),
// and loses its members one at a time. A marker still alive here after that
// saw a blip.
const markPatience = 15 * time.Second

// peerReadTimeout bounds reading the marker's view: it happens on the sync
// path, and during a partition the API may be slow.
const peerReadTimeout = 2 * time.Second

type mark struct {
	by string
	at time.Time
}

// standingDown is this speaker's side of a partition it lost, and the
// marker's side as the marker reported it.
type standingDown struct {
	side, other []string
}

// MarkedUnreachable is told that speaker by marked this one Unreachable.
func (s *Speaker) MarkedUnreachable(by string) {
	klog.InfoS("Another speaker marked this one Unreachable", "by", by)
	s.mu.Lock()
	s.mark = &mark{by: by, at: time.Now()}
	s.mu.Unlock()
	s.queue.Add(membersKey)
}

// standsDown reports whether this speaker is on the losing side of a
// memberlist partition, given the alive members' names (sorted), and if so
// returns the sides (nil otherwise). A mark is weighed again at every sync
// until it is settled or markPatience is over.
func (s *Speaker) standsDown(ctx context.Context, alive []string) *standingDown {
	s.mu.Lock()
	pending, down := s.mark, s.down
	s.mu.Unlock()
	if down != nil {
		if !slices.ContainsFunc(alive, func(n string) bool { return !slices.Contains(down.side, n) }) {
			s.clearMark(pending) // the marks of a partition already settled
			return down
		}
		s.clearMark(pending)
		s.setDown(nil)
		klog.InfoS("Memberlist partition over: announcing as usual", "members", alive)
		s.nodeEvent(v1.EventTypeNormal, "MembershipRejoined", "%s meets the other speakers again and announces as usual", s.opts.NodeName)
		return nil
	}
	if pending == nil || s.opts.Status == nil {
		return nil
	}
	if time.Since(pending.at) > markPatience {
		s.clearMark(pending)
		return nil
	}
	// Until settled, look again shortly even without a membership change.
	s.queue.AddAfter(membersKey, 500*time.Millisecond)
	if slices.Contains(alive, pending.by) {
		return nil // this side has not lost the marker (yet)
	}
	readCtx, cancel := context.WithTimeout(ctx, peerReadTimeout)
	defer cancel()
	theirs, err := s.opts.Status.MembersSeenBy(readCtx, pending.by)
	if err != nil {
		klog.ErrorS(err, "Cannot read the other side to settle a memberlist partition; announcing as usual", "marker", pending.by)
		return nil
	}
	if slices.Contains(theirs, s.opts.NodeName) {
		// The marker has met this speaker since (or died right after): no
		// partition left to settle.
		s.clearMark(pending)
		return nil
	}
	if !minority(alive, len(theirs), pending.by) {
		klog.V(2).InfoS("Memberlist partition: this side keeps announcing", "side", alive, "otherSide", theirs, "marker", pending.by)
		return nil
	}
	s.clearMark(pending)
	down = &standingDown{side: alive, other: theirs}
	s.setDown(down)
	klog.InfoS("Memberlist partition: this side is the smaller and stops its layer2 and vip announcements", "side", alive, "otherSide", theirs, "marker", pending.by)
	s.nodeEvent(v1.EventTypeWarning, "MembershipPartitioned",
		"%s reaches the API but not the speakers of %s through memberlist (is port 7946 blocked?); its side has %d of them, so it stops its layer2 and vip announcements until it meets them again",
		s.opts.NodeName, strings.Join(theirs, ","), len(alive))
	return down
}

// minority: this side (mine, sorted) has fewer speakers than the marker's
// (theirs), or as many and a higher lowest name; the marker is the lowest
// name of its side.
func minority(mine []string, theirs int, marker string) bool {
	if len(mine) != theirs {
		return len(mine) < theirs
	}
	return mine[0] > marker
}

func (s *Speaker) clearMark(m *mark) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mark == m {
		s.mark = nil
	}
}

func (s *Speaker) setDown(d *standingDown) {
	s.mu.Lock()
	s.down = d
	s.mu.Unlock()
	value := 0.0
	if d != nil {
		value = 1
	}
	partitioned.Set(value)
	if s.opts.Status != nil {
		s.opts.Status.SetPartitioned(d != nil)
	}
}
