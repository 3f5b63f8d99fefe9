package netnstest

import (
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
)

// Thread is an OS thread switched into a network namespace, running the
// functions handed to it. Sockets belong to the namespace of the thread that
// opens them, so this is how a test opens sockets inside A or B.
type Thread struct {
	fns  chan func()
	done chan struct{}
}

// StartThread starts a thread in the namespace name. It ends with the test.
func StartThread(t *testing.T, name string) *Thread {
	t.Helper()
	th := startThread(t, name)
	t.Cleanup(th.stop)
	return th
}

// InNS runs fn on a fresh thread in the namespace name and waits for it. The
// thread is thrown away afterwards, so fn may change per-thread state such
// as capabilities.
func InNS(t *testing.T, name string, fn func()) {
	t.Helper()
	th := startThread(t, name)
	defer th.stop()
	th.Do(fn)
}

// Do runs fn on the thread and waits for it.
func (th *Thread) Do(fn func()) {
	finished := make(chan struct{})
	th.fns <- func() {
		defer close(finished)
		fn()
	}
	<-finished
}

func startThread(t *testing.T, name string) *Thread {
	t.Helper()
	th := &Thread{fns: make(chan func()), done: make(chan struct{})}
	ready := make(chan error)
	go func() {
		defer close(th.done)
		// Never unlocked: when this goroutine ends its thread is thrown away
		// instead of returning to the scheduler inside the test namespace.
		runtime.LockOSThread()
		h, err := netns.GetFromName(name)
		if err == nil {
			err = netns.Set(h)
			_ = h.Close()
		}
		ready <- err
		if err != nil {
			return
		}
		for fn := range th.fns {
			fn()
		}
	}()
	if err := <-ready; err != nil {
		t.Fatalf("entering namespace %s: %v", name, err)
	}
	return th
}

// stop ends the thread once the function it runs, if any, returns.
func (th *Thread) stop() {
	close(th.fns)
	<-th.done
}
