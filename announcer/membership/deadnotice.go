package membership

import (
	"bytes"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
	"k8s.io/klog/v2"
)

// A member that declares another dead tells it so, directly. memberlist
// refutes a dead message about this member only when the message names
// this member's own incarnation or a later one. A member that refuted a
// suspicion (a new incarnation) whose gossip some others never got is then
// declared dead by them at the old incarnation, ignores that, and stays
// dead to them while it sees them all alive and announces its addresses,
// which they have given to new owners: two owners of an address, until a
// push-pull merges the views, tens of seconds later. Told directly, it
// refutes again, at an incarnation the others take, and is alive to them
// in a few gossip rounds.
//
// A member really dead, or gone, answers nothing: the notices stop after
// deadNoticeBackoff, or once the member is alive again in this view. A
// member that is leaving does not refute.

// deadNotice is the user message that tells a member it was declared dead.
var deadNotice = []byte("ironlb/declared-dead")

// deadNoticeBackoff are the waits before each notice, in probe intervals:
// at once, then while the member stays dead here, 155 intervals in all
// (15.5 s at the default 100 ms; memberlist gossips to a dead member for
// 30 s). On memberlist's clock, so that a slower one (the simulation's
// -dilate) slows them alike.
var deadNoticeBackoff = []time.Duration{0, 5, 10, 20, 40, 80}

// refuteGap is how long a refutation answers every notice: the members
// that declared this one dead tell it at about the same time.
const refuteGap = 500 * time.Millisecond

// tellDead notifies the member n, declared dead here, over TCP, until it is
// alive here again, the notices run out or this member stops.
func (m *Members) tellDead(n memberlist.Node) {
	for _, wait := range m.deadNoticeWaits {
		select {
		case <-m.stopped:
			return
		case <-time.After(wait):
		}
		if m.Has(n.Name) {
			return
		}
		if err := m.list.SendReliable(&n, deadNotice); err != nil {
			klog.V(4).InfoS("Telling a member declared dead failed", "member", n.Name, "err", err)
		}
	}
}

// noticed handles a user message: a dead notice is answered with a
// refutation, one per refuteGap.
func (m *Members) noticed(msg []byte) {
	if !bytes.Equal(msg, deadNotice) {
		return
	}
	select {
	case <-m.stopped:
		return // leaving: dead to the others is right
	default:
	}
	now := time.Now()
	m.mu.Lock()
	due := now.Sub(m.refutedAt) >= refuteGap
	if due {
		m.refutedAt = now
	}
	m.mu.Unlock()
	if due {
		klog.InfoS("Another speaker declared this one dead; refuting through memberlist")
		// Not on memberlist's goroutine that handed the message over.
		go m.Refute()
	}
}

// deadCopy is n as a notice needs it, apart from memberlist's node, whose
// fields it keeps rewriting.
func deadCopy(n *memberlist.Node) memberlist.Node {
	return memberlist.Node{Name: n.Name, Addr: slices.Clone(n.Addr), Port: n.Port}
}
