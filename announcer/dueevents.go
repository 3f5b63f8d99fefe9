package announcer

import (
	"context"
	"net/netip"
	"sync"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/client-go/util/workqueue"
)

// The Events about the addresses this node announces (Announcing, and the
// Warnings AnnouncedFromKeptConfig and NoLocalEndpoint) fall due per
// address and are written at the pace of the speaker's API client, saying
// what the node announces when they are written, not when they fell due.
//
// Handed to client-go's recorder at once, they would be queued there, at
// most 1,000, the rest dropped with an error line each, while its client
// writes 5 a second: a node that takes over more than a thousand
// addresses at once (one of three nodes failing under 6,000 Services), or
// restarts with them, would lose those past the thousandth; and an
// address that moved on while its Event waited would get one naming this
// node. Here an address waits once however often it changes, and one
// that is no longer announced here gets no Event.

// dueEvent is a kind of Event due for an address.
type dueEvent uint8

const (
	eventAnnouncing dueEvent = 1 << iota // Announcing: this node announces it
	eventKept                            // AnnouncedFromKeptConfig
	eventUnserved                        // NoLocalEndpoint
)

// dueEvents are the addresses with Events due, in the order they fell due.
type dueEvents struct {
	mu    sync.Mutex
	due   map[netip.Addr]dueEvent
	queue workqueue.TypedInterface[netip.Addr]
	// pace lets one address's Events through at the client's rate
	// (the speaker's clientset keeps client-go's default): faster would
	// only fill the recorder's queue. An address whose Events are no
	// longer warranted takes no turn.
	pace flowcontrol.RateLimiter
}

func newDueEvents() *dueEvents {
	return &dueEvents{
		due:   map[netip.Addr]dueEvent{},
		queue: workqueue.NewTypedWithConfig(workqueue.TypedQueueConfig[netip.Addr]{Name: "ironlb-speaker-events"}),
		pace:  flowcontrol.NewTokenBucketRateLimiter(rest.DefaultQPS, rest.DefaultBurst),
	}
}

// add makes kind due for ip.
func (d *dueEvents) add(ip netip.Addr, kind dueEvent) {
	d.mu.Lock()
	d.due[ip] |= kind
	d.mu.Unlock()
	d.queue.Add(ip)
	eventsWaiting.Set(float64(d.queue.Len()))
}

// next waits for an address with Events due and takes them; false once
// the queue is shut down.
func (d *dueEvents) next() (netip.Addr, dueEvent, bool) {
	ip, quit := d.queue.Get()
	if quit {
		return ip, 0, false
	}
	// Done first: what falls due from here on queues the address again,
	// and is found then if not taken now.
	d.queue.Done(ip)
	eventsWaiting.Set(float64(d.queue.Len()))
	d.mu.Lock()
	kinds := d.due[ip]
	delete(d.due, ip)
	d.mu.Unlock()
	return ip, kinds, true
}

// recordDueEvents writes the Events as they fall due, until ctx ends.
func (s *Speaker) recordDueEvents(ctx context.Context) {
	go func() {
		<-ctx.Done()
		s.dueEvents.queue.ShutDown()
	}()
	for s.recordNextDueEvents(ctx) {
	}
}

// recordNextDueEvents writes the Events due for the next address that
// what this node announces still warrants, in their turn: an address that
// went meanwhile takes none, so the backlog of a start, where addresses
// move by the thousand while the speakers meet, drains at once but for
// the Events still true.
func (s *Speaker) recordNextDueEvents(ctx context.Context) bool {
	ip, kinds, ok := s.dueEvents.next()
	if !ok {
		return false
	}
	if _, warranted := s.warrantedEvents(ip, kinds); warranted == 0 {
		return true
	}
	if err := s.dueEvents.pace.Wait(ctx); err != nil {
		return false
	}
	// Read again: the wait may have been long.
	a, warranted := s.warrantedEvents(ip, kinds)
	if warranted&eventAnnouncing != 0 {
		s.announcingEvent(ip, a)
	}
	if warranted&eventKept != 0 {
		s.keptEvent(ip, a)
	}
	if warranted&eventUnserved != 0 {
		s.unservedEvent(ip, a)
	}
	return true
}

// warrantedEvents are the kinds of Events of those due for ip that what
// this node announces now warrants, and that announcement.
func (s *Speaker) warrantedEvents(ip netip.Addr, due dueEvent) (announcement, dueEvent) {
	s.mu.Lock()
	a, announced := s.announced[ip]
	s.mu.Unlock()
	if !announced {
		return a, 0
	}
	// Every node the pool selects advertises a wholePool address: an Event
	// from each would cost the API a write per node per Service, and say
	// nothing about this node.
	if a.wholePool {
		due &^= eventAnnouncing
	}
	if !a.fromKept {
		due &^= eventKept
	}
	if len(a.unserved) == 0 {
		due &^= eventUnserved
	}
	return a, due
}
