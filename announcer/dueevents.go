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
// writes 5 a second: a node that takes over 1,650 addresses (one of three
// nodes failing under 5,000 Services) or restarts with them would lose
// 650; and an address that moved on while its Event waited would get one
// naming this node. Here an address waits once however often it changes,
// and one that is no longer announced here gets no Event.

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
	// pace lets one address's Events through at the client's rate: faster
	// would only fill the recorder's queue.
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

// next waits for an address with Events due and its turn, and takes them;
// false once the queue is shut down or ctx ends.
func (d *dueEvents) next(ctx context.Context) (netip.Addr, dueEvent, bool) {
	ip, quit := d.queue.Get()
	if quit {
		return ip, 0, false
	}
	// Done first: what falls due from here on queues the address again,
	// and is found then if not taken now.
	d.queue.Done(ip)
	eventsWaiting.Set(float64(d.queue.Len()))
	if err := d.pace.Wait(ctx); err != nil {
		return ip, 0, false
	}
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

// recordNextDueEvents writes the Events due for the next address, as what
// this node announces now warrants them.
func (s *Speaker) recordNextDueEvents(ctx context.Context) bool {
	ip, kinds, ok := s.dueEvents.next(ctx)
	if !ok {
		return false
	}
	s.mu.Lock()
	a, announced := s.announced[ip]
	s.mu.Unlock()
	if !announced {
		return true
	}
	// Every node the pool selects advertises a wholePool address: an Event
	// from each would cost the API a write per node per Service, and say
	// nothing about this node.
	if kinds&eventAnnouncing != 0 && !a.wholePool {
		s.announcingEvent(ip, a)
	}
	if kinds&eventKept != 0 && a.fromKept {
		s.keptEvent(ip, a)
	}
	if kinds&eventUnserved != 0 && len(a.unserved) > 0 {
		s.unservedEvent(ip, a)
	}
	return true
}
