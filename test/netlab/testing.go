package netlab

import (
	"os"
	"testing"
)

// NewForTest builds a lab for t and closes it when t finishes (and on ^C).
// It never skips: without root the test fails, saying so. If the test
// failed, the control plane's log tails (if one was started) are logged
// before everything goes.
func NewForTest(t testing.TB, opts Options) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal(ErrNotRoot)
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	l, err := New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.mu.Lock()
		cp := l.controlPlane
		l.mu.Unlock()
		if t.Failed() && cp != nil {
			t.Logf("control plane logs (test failed):\n%s", cp.LogTails(30))
		}
		if err := l.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
	})
	return l
}
