package neighbor

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestNormalizeSchedule(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []time.Duration
		want []time.Duration
	}{
		{"nil means the default", nil, DefaultSchedule()},
		{"empty means none", []time.Duration{}, []time.Duration{}},
		{"sorted, negatives raised to zero", []time.Duration{time.Second, -time.Second, 0}, []time.Duration{0, 0, time.Second}},
	} {
		got := NormalizeSchedule(tc.in)
		if !slices.Equal(got, tc.want) || got == nil {
			t.Errorf("%s: NormalizeSchedule(%v) = %v, want %v", tc.name, tc.in, got, tc.want)
		}
	}
	in := []time.Duration{2, 1}
	NormalizeSchedule(in)
	if in[0] != 2 {
		t.Errorf("NormalizeSchedule sorted its argument in place: %v", in)
	}
}

// recorder records the frames a burst sends, and when.
type recorder struct {
	mu    sync.Mutex
	times []time.Duration
	sent  [][]byte
	start time.Time
}

func (r *recorder) send(frame []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.times = append(r.times, time.Since(r.start))
	r.sent = append(r.sent, frame)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sent)
}

func TestBurstSendsEveryRound(t *testing.T) {
	r := &recorder{start: time.Now()}
	frames := [][]byte{[]byte("a"), []byte("b")}
	schedule := []time.Duration{0, 0, 50 * time.Millisecond, 100 * time.Millisecond}
	NewBurst(t.Context()).Run(r.start, schedule, frames, r.send)

	if got := r.count(); got != len(schedule)*len(frames) {
		t.Fatalf("%d frames sent, want %d", got, len(schedule)*len(frames))
	}
	for i, at := range schedule {
		for j := range frames {
			k := i*len(frames) + j
			if string(r.sent[k]) != string(frames[j]) {
				t.Errorf("frame %d is %q, want %q", k, r.sent[k], frames[j])
			}
			if r.times[k] < at {
				t.Errorf("round %d sent after %v, before its offset %v", i, r.times[k], at)
			}
		}
	}
}

func TestBurstStop(t *testing.T) {
	t.Run("before Run", func(t *testing.T) {
		r := &recorder{start: time.Now()}
		b := NewBurst(t.Context())
		b.Stop()
		b.Run(r.start, []time.Duration{0}, [][]byte{[]byte("a")}, r.send)
		if got := r.count(); got != 0 {
			t.Errorf("a stopped burst sent %d frames", got)
		}
	})

	t.Run("between rounds", func(t *testing.T) {
		r := &recorder{start: time.Now()}
		b := NewBurst(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			b.Run(r.start, []time.Duration{0, time.Minute}, [][]byte{[]byte("a")}, r.send)
		}()
		for r.count() == 0 {
			time.Sleep(time.Millisecond)
		}
		b.Stop()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Run still sleeping 5s after Stop")
		}
		if got := r.count(); got != 1 {
			t.Errorf("%d frames sent, want the first round's 1", got)
		}
	})

	t.Run("with its context", func(t *testing.T) {
		r := &recorder{start: time.Now()}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		NewBurst(ctx).Run(r.start, []time.Duration{0}, [][]byte{[]byte("a")}, r.send)
		if got := r.count(); got != 0 {
			t.Errorf("a burst whose context ended sent %d frames", got)
		}
	})
}

// Once Stop returns nothing more is sent, even when it races a round.
func TestBurstStopIsFinal(t *testing.T) {
	for range 100 {
		var (
			mu      sync.Mutex
			stopped bool
			late    int
		)
		b := NewBurst(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			b.Run(time.Now(), make([]time.Duration, 1000), [][]byte{nil}, func([]byte) {
				mu.Lock()
				defer mu.Unlock()
				if stopped {
					late++
				}
			})
		}()
		b.Stop()
		mu.Lock()
		stopped = true
		mu.Unlock()
		<-done
		if late != 0 {
			t.Fatalf("%d frames sent after Stop returned", late)
		}
	}
}
