package nodelab

import (
	"os"
	"testing"

	"github.com/ironlb/ironlb/test/netlab"
)

// StartForTest builds a lab with labOpts (its control plane with
// ApiserverArgs added), starts a cluster on it with opts, and tears both
// down when t ends; when t failed, the components' log tails come first.
// It never skips: without root the test fails, saying so.
func StartForTest(t testing.TB, labOpts netlab.Options, opts Options) *Cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal(netlab.ErrNotRoot)
	}
	labOpts.ControlPlane.ExtraApiserverArgs = append(append([]string(nil), ApiserverArgs...), labOpts.ControlPlane.ExtraApiserverArgs...)
	lab := netlab.NewForTest(t, labOpts)
	cp, err := lab.StartControlPlane(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	opts.Lab, opts.ControlPlane = lab, cp
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	c, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("node lab logs (test failed):\n%s", c.LogTails(20))
		}
		c.Close()
	})
	return c
}
