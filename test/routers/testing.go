package routers

import (
	"testing"

	"github.com/ironlb/ironlb/test/netlab"
)

// logLines is how much of each daemon's output a failed test shows.
const logLines = 40

// StartFRRForTest starts FRR on host for t (a failure to start fails the
// test) and closes it when t finishes, logging the daemons' output first if
// the test failed.
func StartFRRForTest(t testing.TB, host *netlab.Host, opts FRROptions) *FRR {
	t.Helper()
	f, err := StartFRR(t.Context(), host, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("FRR on %s, logs (test failed):\n%s", host.Name, f.LogTails(logLines))
		}
		if err := f.Close(); err != nil {
			t.Errorf("close FRR: %v", err)
		}
	})
	return f
}

// StartBIRDForTest starts BIRD on host for t and closes it when t finishes,
// logging its output first if the test failed.
func StartBIRDForTest(t testing.TB, host *netlab.Host, conf string) *BIRD {
	t.Helper()
	b, err := StartBIRD(t.Context(), host, conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bird log (test failed):\n%s", b.LogTail(logLines))
		}
		if err := b.Close(); err != nil {
			t.Errorf("close BIRD: %v", err)
		}
	})
	return b
}
