package netlab

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// Labs to close when the process is told to stop (see register).
var (
	openMu   sync.Mutex
	openLabs = map[*Lab]struct{}{}
	sigOnce  sync.Once
)

// register arranges for l to be closed on SIGINT, SIGTERM or SIGHUP. The
// first registration installs the handler: it closes every registered lab,
// then restores the signal's default action and re-raises it, so the process
// ends as it would have without us (a test binary does not catch ^C, and
// t.Cleanup never runs then).
func register(l *Lab) {
	openMu.Lock()
	openLabs[l] = struct{}{}
	openMu.Unlock()
	sigOnce.Do(func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
		go func() {
			sig := <-ch
			openMu.Lock()
			labs := make([]*Lab, 0, len(openLabs))
			for l := range openLabs {
				labs = append(labs, l)
			}
			openMu.Unlock()
			var wg sync.WaitGroup
			for _, l := range labs {
				wg.Go(func() { _ = l.Close() })
			}
			wg.Wait()
			signal.Reset(sig)
			_ = syscall.Kill(os.Getpid(), sig.(syscall.Signal))
		}()
	})
}

// unregister forgets a closed lab.
func unregister(l *Lab) {
	openMu.Lock()
	delete(openLabs, l)
	openMu.Unlock()
}
