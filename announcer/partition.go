package announcer

import (
	"context"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/ironlb/ironlb/announcer/report"
)

// A memberlist partition (port 7946 blocked between some nodes) makes each
// side see the other as dead and elect its own owner for every layer2 and
// vip address: two nodes answer ARP for one address. The API is the second
// channel that tells a partition from a death. When speakers lose another,
// the lowest-named of them marks the lost one's SpeakerStatus Unreachable
// (announcer/report). A speaker that finds itself marked while it runs, by
// a speaker it no longer sees, reads the side Lease (announcer/report/
// side.go): held and renewed by the sweeper of a larger side (on a tie, the
// side with the lower lowest name), it means this side is the smaller one.
// This side then stops its layer2 and vip announcements that the other side
// can serve. It announces as usual again when it meets a speaker from
// outside its side, or when the Lease is no longer renewed by a larger side
// it cannot see (that side died, or shrank): a standing down side is
// silenced no longer than the Lease's duration after the other side stops
// renewing. bgp addresses are announced by every eligible node anyway and
// stay. A death leaves no mark on the survivors: it stops no one. Every
// mark is also answered with a memberlist refutation (MarkedUnreachable), which
// ends the other lopsided case: the others lost this node while it still
// sees them all.

// markPatience is how long a mark is weighed: this speaker's memberlist may
// take a few seconds longer than the marker's to give up on the other side
// (memberlist slows the probes of a node that looks unhealthy to itself),
// and loses its members one at a time, and the other side's sweeper takes
// the Lease on its next round.
const markPatience = 15 * time.Second

// peerReadTimeout bounds reading the Lease and the Running speakers: it
// happens on the sync path, and during a partition the API may be slow.
const peerReadTimeout = 2 * time.Second

// downRecheck is how often a side that stood down reads the Lease again.
const downRecheck = 2 * time.Second

type mark struct {
	by string
	at time.Time
}

// standingDown is this speaker's side of a partition it lost, the speakers
// counted on the other side and the Lease holder they were counted for,
// when it stood down, and when the Lease was last read.
type standingDown struct {
	side, other    []string
	holder         string
	since, checked time.Time
}

// otherSettles is how long after standing down the other side is counted
// again at each read of the Lease: objects this side's sweeper had just
// marked read Running again, and dead nodes the other side's sweeper had
// not marked yet are marked, within a sweep or two.
const otherSettles = 25 * time.Second

// MarkedUnreachable is told that speaker by marked this one Unreachable.
// It answers every mark with a memberlist refutation. A mark says the
// marker's memberlist lost this node. In a partition the refutation reaches
// only this side and changes nothing. But when this node sees the marker
// alive, memberlist itself may never refute: a node that refuted a suspicion
// whose answer was lost ignores the dead message that follows, and stays
// dead to every other speaker, which elect new owners for its addresses
// while it goes on announcing them (two owners, until a push-pull tens of
// seconds later). A refutation revives it within a few gossip rounds, and
// the addresses go back to it.
func (s *Speaker) MarkedUnreachable(by string) {
	klog.InfoS("Another speaker marked this one Unreachable; refuting through memberlist", "by", by)
	s.members.Refute()
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
		s.clearMark(pending) // the marks of a partition already settled
		return s.stillDown(ctx, down, alive)
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
	claim, err := s.opts.Status.SideClaim(readCtx)
	if err != nil {
		klog.ErrorS(err, "Cannot read the side Lease to settle a memberlist partition; announcing as usual", "marker", pending.by)
		return nil
	}
	if claim == nil || slices.Contains(alive, claim.Holder) || claim.Expired(time.Now()) {
		return nil // the other side has not claimed it (yet)
	}
	running, err := s.opts.Status.RunningSpeakers(readCtx)
	if err != nil {
		klog.ErrorS(err, "Cannot list the running speakers to settle a memberlist partition; announcing as usual", "marker", pending.by)
		return nil
	}
	wins, others := report.OtherSideWins(alive, *claim, running, time.Now())
	if !wins {
		klog.V(2).InfoS("Memberlist partition: this side keeps announcing", "side", alive, "holder", claim.Holder, "holderMembers", claim.Members, "otherSide", others)
		return nil
	}
	s.clearMark(pending)
	now := time.Now()
	down = &standingDown{side: alive, other: others, holder: claim.Holder, since: now, checked: now}
	s.setDown(down)
	s.queue.AddAfter(membersKey, downRecheck)
	klog.InfoS("Memberlist partition: this side is the smaller and stops its layer2 and vip announcements", "side", alive, "otherSide", others, "holder", claim.Holder)
	s.nodeEvent(v1.EventTypeWarning, "MembershipPartitioned",
		"%s reaches the API but not the speakers of %s through memberlist (is port 7946 blocked?); its side has %d of them, so it stops its layer2 and vip announcements until it meets them again",
		s.opts.NodeName, strings.Join(others, ","), len(alive))
	return down
}

// stillDown keeps a side standing down while it meets no one from outside
// it and a larger side it cannot see keeps the Lease renewed; it reads the
// Lease every downRecheck. A Lease it cannot read leaves it as it is: the
// API being slow is no news about the other side.
func (s *Speaker) stillDown(ctx context.Context, down *standingDown, alive []string) *standingDown {
	if slices.ContainsFunc(alive, func(n string) bool { return !slices.Contains(down.side, n) }) {
		s.setDown(nil)
		klog.InfoS("Memberlist partition over: announcing as usual", "members", alive)
		s.nodeEvent(v1.EventTypeNormal, "MembershipRejoined", "%s meets the other speakers again and announces as usual", s.opts.NodeName)
		return nil
	}
	s.queue.AddAfter(membersKey, downRecheck)
	if time.Since(down.checked) < downRecheck {
		return down
	}
	readCtx, cancel := context.WithTimeout(ctx, peerReadTimeout)
	defer cancel()
	claim, err := s.opts.Status.SideClaim(readCtx)
	if err != nil {
		klog.ErrorS(err, "Cannot read the side Lease while standing down; still standing down")
		return down
	}
	now := time.Now()
	stays := claim != nil && !slices.Contains(alive, claim.Holder) && !claim.Expired(now) && minority(alive, claim.Members, claim.Holder)
	next := *down
	next.checked = now
	if stays && (claim.Holder != down.holder || now.Sub(down.since) < otherSettles) {
		// Count the other side again: while it settles, and for a new
		// holder, whose count the Running speakers must bear out.
		running, err := s.opts.Status.RunningSpeakers(readCtx)
		if err != nil {
			klog.ErrorS(err, "Cannot list the running speakers while standing down; still standing down")
			return down
		}
		stays, next.other = report.OtherSideWins(alive, *claim, running, now)
		next.holder = claim.Holder
	}
	if stays {
		s.setDown(&next)
		return &next
	}
	s.setDown(nil)
	why := "the other side is no longer the larger"
	switch {
	case claim == nil:
		why = "the side Lease is gone"
	case claim.Expired(now) || slices.Contains(alive, claim.Holder):
		// This side's sweeper takes an expired Lease over, maybe before
		// this read.
		why = "the other side's speakers stopped renewing the side Lease"
	}
	klog.InfoS("Memberlist partition: announcing as usual again", "reason", why, "members", alive)
	s.nodeEvent(v1.EventTypeWarning, "PartitionOtherSideGone",
		"%s still does not meet the speakers of %s, but %s: it announces as usual again", s.opts.NodeName, strings.Join(down.other, ","), why)
	return nil
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
