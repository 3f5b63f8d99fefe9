package framework

import (
	"testing"
)

// NewForTest starts a control plane for t and stops it when t finishes. It
// never skips: a missing binary fails the test with instructions. If the test
// fails, the servers' log tails are written to the test log before they are
// removed.
func NewForTest(t testing.TB, opts Options) *ControlPlane {
	t.Helper()
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	cp, err := StartControlPlane(t.Context(), opts)
	if err != nil {
		// Errors about missing binaries say how to get them.
		t.Fatalf("start control plane: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("control plane logs (test failed):\n%s", cp.LogTails(failureLogLines))
		}
		cp.Stop()
	})
	return cp
}
