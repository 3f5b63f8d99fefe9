package main

import (
	"context"
	"sync"
	"time"

	"github.com/ironlb/ironlb/announcer/membership"
)

// deathWatch records when each speaker's memberlist stopped counting a killed
// node as alive. It splits a takeover in two: memberlist's failure detection
// (the kill until the first speaker declares the node dead, then until the
// new owners know) and the speakers' own part (from the new owners knowing to
// their announcing).
type deathWatch struct {
	start time.Time
	tick  time.Duration
	stop  context.CancelFunc
	done  chan struct{}

	mu   sync.Mutex
	seen map[string]time.Time // speaker → when it no longer had the victim
}

// watchDeath polls every speaker alive now that counts victim alive, once
// per tick, until each has dropped it, stop is called, or bound passes.
func (sim *simulation) watchDeath(ctx context.Context, victim string, start time.Time, tick, bound time.Duration) *deathWatch {
	sim.mu.Lock()
	watched := make(map[string]*membership.Members, len(sim.running))
	for n, s := range sim.running {
		// One that does not count the victim alive now (its view still
		// disagrees after a false failure) has nothing to detect.
		if n != victim && s.members.Has(victim) {
			watched[n] = s.members
		}
	}
	sim.mu.Unlock()
	ctx, stop := context.WithTimeout(ctx, bound)
	w := &deathWatch{start: start, tick: tick, stop: stop, done: make(chan struct{}), seen: make(map[string]time.Time, len(watched))}
	go func() {
		defer close(w.done)
		ticker := time.NewTicker(tick)
		defer ticker.Stop()
		for len(watched) > 0 {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
			now := time.Now()
			for n, m := range watched {
				if !m.Has(victim) {
					w.mu.Lock()
					w.seen[n] = now
					w.mu.Unlock()
					delete(watched, n)
				}
			}
		}
	}()
	return w
}

// end stops the watch and waits for it.
func (w *deathWatch) end() {
	w.stop()
	<-w.done
}

// first is how long after start the first speaker dropped the victim; false
// when none has.
func (w *deathWatch) first() (time.Duration, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var first time.Time
	for _, at := range w.seen {
		if first.IsZero() || at.Before(first) {
			first = at
		}
	}
	return first.Sub(w.start), !first.IsZero()
}

// allOf is how long after start the last of nodes dropped the victim; false
// when one of them has not within a few ticks. A new owner can drop the
// victim and announce between two ticks, so the tracker may see the
// takeover before the watch sees its cause.
func (w *deathWatch) allOf(nodes map[string]bool) (time.Duration, bool) {
	for range 20 {
		if last, ok := w.lastOf(nodes); ok {
			return last.Sub(w.start), true
		}
		time.Sleep(w.tick)
	}
	return 0, false
}

func (w *deathWatch) lastOf(nodes map[string]bool) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var last time.Time
	for n := range nodes {
		at, ok := w.seen[n]
		if !ok {
			return time.Time{}, false
		}
		if at.After(last) {
			last = at
		}
	}
	return last, !last.IsZero()
}
