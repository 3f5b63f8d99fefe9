package announcer

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
)

// A memberlist partition (port 7946 blocked between some nodes) makes each
// side see the other as dead and elect its own owner for every layer2 and
// vip address: two nodes answer ARP for one address. The API is the second
// channel that tells a partition from a death. When a speaker loses
// another, the lowest alive speaker marks the lost one's SpeakerStatus
// Unreachable (announcer/report). A speaker that finds itself marked while
// it runs knows the marker's side is alive. Once the marker is gone from its
// own view too, the side with fewer speakers (on a tie, the one without the
// lowest name) stands down: it stops its layer2 and vip announcements until
// it meets a speaker of the other side again. bgp addresses are announced by
// every eligible node anyway and stay.

// markPatience is how long a mark is weighed: this speaker's memberlist may
// take a few seconds longer than the marker's to give up on the other side
// (memberlist slows the probes of a node that looks unhealthy to itself),
// and loses its members one at a time. A marker still alive here after that
// saw a blip.
const markPatience = 15 * time.Second

type mark struct {
	by string
	at time.Time
	// speakers is the API's list of speakers, read once per mark.
	speakers []string
}

// standingDown is this speaker's side of a partition it lost.
type standingDown struct {
	// others are the speakers of the other side(s).
	others []string
}

// MarkedUnreachable is told that speaker by marked this one Unreachable.
func (s *Speaker) MarkedUnreachable(by string) {
	klog.InfoS("Another speaker marked this one Unreachable", "by", by)
	s.mu.Lock()
	s.mark = &mark{by: by, at: time.Now()}
	s.mu.Unlock()
	s.queue.Add(syncKey)
}

// standsDown reports whether this speaker is on the losing side of a
// memberlist partition, given the alive members' names (sorted). A mark is
// weighed again at every membership change until it is settled or
// markPatience is over.
func (s *Speaker) standsDown(ctx context.Context, alive []string) bool {
	s.mu.Lock()
	pending, down := s.mark, s.down
	s.mu.Unlock()
	if down != nil {
		if !slices.ContainsFunc(down.others, func(n string) bool { return slices.Contains(alive, n) }) {
			return true
		}
		s.setDown(nil)
		klog.InfoS("Memberlist partition over: announcing as usual", "members", alive)
		s.nodeEvent(v1.EventTypeNormal, "MembershipRejoined", "%s meets the other speakers again and announces as usual", s.opts.NodeName)
		return false
	}
	if pending == nil || s.opts.Status == nil {
		return false
	}
	if time.Since(pending.at) > markPatience {
		s.clearMark(pending)
		return false
	}
	// Until settled, look again shortly even without a membership change.
	s.queue.AddAfter(syncKey, 500*time.Millisecond)
	if slices.Contains(alive, pending.by) {
		return false // this side has not lost the marker (yet)
	}
	if pending.speakers == nil {
		speakers, err := s.opts.Status.Speakers(ctx)
		if err != nil {
			klog.ErrorS(err, "Cannot count the speakers to settle a memberlist partition; announcing as usual")
			return false
		}
		pending.speakers = append(speakers, pending.by)
	}
	var others []string
	for _, n := range pending.speakers {
		if !slices.Contains(alive, n) && !slices.Contains(others, n) {
			others = append(others, n)
		}
	}
	slices.Sort(others)
	if !minority(alive, others) {
		klog.V(2).InfoS("Memberlist partition: this side keeps announcing", "side", alive, "others", others)
		return false
	}
	s.clearMark(pending)
	s.setDown(&standingDown{others: others})
	klog.InfoS("Memberlist partition: this side is the smaller and stops its layer2 and vip announcements", "side", alive, "others", others)
	s.nodeEvent(v1.EventTypeWarning, "MembershipPartitioned",
		"%s reaches the API but not the speakers of %s through memberlist (is port 7946 blocked?); with %d of %d speakers its side is the smaller, so it stops its layer2 and vip announcements until it meets them again",
		s.opts.NodeName, strings.Join(others, ","), len(alive), len(alive)+len(others))
	return true
}

// minority: fewer speakers, or as many without the lowest name.
func minority(mine, others []string) bool {
	if len(others) == 0 {
		return false
	}
	if len(mine) != len(others) {
		return len(mine) < len(others)
	}
	return slices.Min(mine) > slices.Min(others)
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
}

// nodeEvent records an Event on this node.
func (s *Speaker) nodeEvent(eventType, reason, format string, args ...any) {
	node := &v1.ObjectReference{Kind: "Node", Name: s.opts.NodeName, APIVersion: "v1"}
	if n, err := s.nodes.Get(s.opts.NodeName); err == nil {
		node.UID = n.UID
	}
	s.recorder.Event(node, eventType, reason, fmt.Sprintf(format, args...))
}
