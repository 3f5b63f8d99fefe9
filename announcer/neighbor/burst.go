package neighbor

import (
	"context"
	"slices"
	"sync"
	"time"
)

// DefaultSchedule returns the offsets, from a takeover, of the gratuitous
// rounds sent by default: 0, 0.5 s, 1.1 s, 2.2 s and 4.4 s. The first round
// goes out at once, so failover does not wait. The later ones land after
// the ~1 s ARP lock time of neighbours that ignored the first because they
// had just learnt the previous owner's MAC, and repair a neighbour that saw
// the previous owner's last packets after ours.
func DefaultSchedule() []time.Duration {
	return []time.Duration{
		0,
		500 * time.Millisecond,
		1100 * time.Millisecond,
		2200 * time.Millisecond,
		4400 * time.Millisecond,
	}
}

// NormalizeSchedule returns the schedule a Burst should follow for the
// configured s: DefaultSchedule if s is nil, otherwise a sorted copy of s
// with negative offsets raised to zero. An empty non-nil s stays empty,
// which means no gratuitous rounds at all.
func NormalizeSchedule(s []time.Duration) []time.Duration {
	if s == nil {
		return DefaultSchedule()
	}
	out := make([]time.Duration, len(s))
	for i, d := range s {
		out[i] = max(d, 0)
	}
	slices.Sort(out)
	return out
}

// Burst is the gratuitous announcement of one address: the same round of
// frames, sent at each offset of a schedule. Stop ends it for good. It is
// safe for concurrent use.
type Burst struct {
	ctx    context.Context
	cancel context.CancelFunc
	// mu orders rounds against Stop: a round checks ctx and sends while
	// holding it, Stop cancels while holding it. So once Stop returns no
	// round is in flight, and none can start.
	mu sync.Mutex
}

// NewBurst returns a burst that ends when ctx does, or on Stop. It sends
// nothing until Run.
func NewBurst(ctx context.Context) *Burst {
	b := &Burst{}
	b.ctx, b.cancel = context.WithCancel(ctx)
	return b
}

// Run calls send with each of frames at start plus each offset of schedule,
// which must be sorted (NormalizeSchedule). It blocks until the last round
// is sent or the burst ends.
//
// send handles its own errors: sending is best effort, since a later round
// repeats the frame, and a neighbour that misses every round still asks when
// its entry goes stale. It must not call Stop.
func (b *Burst) Run(start time.Time, schedule []time.Duration, frames [][]byte, send func(frame []byte)) {
	defer b.cancel()
	for _, at := range schedule {
		if !b.sleepUntil(start.Add(at)) || !b.round(frames, send) {
			return
		}
	}
}

// Stop ends the burst. Once it returns, send is not called again.
func (b *Burst) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cancel()
}

// round sends frames unless the burst ended, which it reports by returning
// false.
func (b *Burst) round(frames [][]byte, send func(frame []byte)) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ctx.Err() != nil {
		return false
	}
	for _, f := range frames {
		send(f)
	}
	return true
}

// sleepUntil waits for t and reports whether the burst is still on.
func (b *Burst) sleepUntil(t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return b.ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-b.ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
