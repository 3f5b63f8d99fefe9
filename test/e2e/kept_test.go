package e2e

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/labenv"
	"github.com/ironlb/ironlb/test/netlab"
)

// gapWindow is how long an address is watched after a change.
const gapWindow = 3 * time.Second

// gapWatch probes an address from the client every 100 ms in the background
// and records the longest time it went unanswered.
type gapWatch struct {
	stop    context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	longest time.Duration
	probes  int
}

// watchGaps starts probing vip with probe until the returned watch is
// stopped.
func watchGaps(t *testing.T, vip netip.Addr, probe func(ctx context.Context) bool) *gapWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	w := &gapWatch{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		var since time.Time // when the current gap began; zero while answered
		for ctx.Err() == nil {
			now := time.Now() // a probe is timed from when it was sent
			ok := probe(ctx)
			w.mu.Lock()
			w.probes++
			// A gap runs from the first unanswered probe to the next
			// answered one (or to now, while it lasts).
			switch {
			case ok && !since.IsZero():
				w.longest = max(w.longest, now.Sub(since))
				since = time.Time{}
			case !ok && since.IsZero():
				since = now
			case !ok:
				w.longest = max(w.longest, now.Sub(since))
			}
			w.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(w.halt)
	return w
}

func (w *gapWatch) halt() {
	w.stop()
	<-w.done
}

// check probes for a further window, stops the watch and fails t if the
// address went unanswered for longer than bound. The window is what makes a
// withdrawal that follows the change, rather than one that precedes it,
// show.
func (w *gapWatch) check(t *testing.T, what string, bound time.Duration) {
	t.Helper()
	time.Sleep(gapWindow)
	w.halt()
	w.mu.Lock()
	defer w.mu.Unlock()
	t.Logf("%s: longest unanswered gap %v over %d probes", what, w.longest.Round(time.Millisecond), w.probes)
	if w.longest > bound {
		t.Errorf("%s: the address went unanswered for %v (bound %v)", what, w.longest.Round(time.Millisecond), bound)
	}
}

// httpAnswered probes vip over HTTP from the client.
func httpAnswered(env *labenv.Env, vip netip.Addr) func(ctx context.Context) bool {
	return func(ctx context.Context) bool {
		_, err := env.Answering(ctx, vip, 500*time.Millisecond)
		return err == nil
	}
}

// arpAnswered probes vip with one ARP request from the client: HTTP alone
// would go on reaching the last owner through the client's neighbour cache
// after every node stopped answering for the address.
func arpAnswered(env *labenv.Env, vip netip.Addr) func(ctx context.Context) bool {
	return func(ctx context.Context) bool {
		// Habets arping exits 0 once answered, non-zero after the 0.3 s
		// deadline without an answer: gaps show to within about 0.4 s.
		_, err := env.Lab.Client().Exec(ctx, "arping", "-q", "-c", "1", "-w", "0.3", "-i", netlab.Iface, vip.String())
		return err == nil
	}
}

// ndpAnswered probes an IPv6 vip with one Neighbor Solicitation from the
// client (ndisc6), as arpAnswered does for IPv4.
func ndpAnswered(env *labenv.Env, vip netip.Addr) func(ctx context.Context) bool {
	return func(ctx context.Context) bool {
		// ndisc6 exits 0 on the first advertisement, non-zero when none
		// came within the 0.3 s wait.
		_, err := env.Lab.Client().Exec(ctx, "ndisc6", "-q", "-1", "-r", "1", "-w", "300", vip.String(), netlab.Iface)
		return err == nil
	}
}

// deleteConfig deletes ironlb-config and waits until every speaker has
// seen it go (its config_stale metric), so what is checked next is the
// speakers' answer to the deletion, not the state before it.
func deleteConfig(t *testing.T, env *labenv.Env) {
	t.Helper()
	if err := env.Client.CoreV1().ConfigMaps(framework.IronLBNamespace).Delete(t.Context(), framework.ConfigMapName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := framework.WaitForEvent(t.Context(), env.Client, framework.IronLBNamespace, framework.ConfigMapName, "ConfigMissing", "the last good config", ipTimeout); err != nil {
		t.Errorf("no ConfigMissing Event from ironlb-ccm: %v", err)
	}
	for _, n := range env.Lab.Nodes() {
		waitMetric(t, env, n.Name, "ironlb_speaker_config_stale 1")
	}
}

// waitKeptPruned waits until the kept configs hold only the config in
// force: nothing is held outside its pools any more.
func waitKeptPruned(t *testing.T, env *labenv.Env) {
	t.Helper()
	var data map[string]string
	err := framework.WaitFor(t.Context(), ipTimeout, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
		cm, err := env.Client.CoreV1().ConfigMaps(framework.IronLBNamespace).Get(ctx, config.LastGoodName(framework.ConfigMapName), metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		data = cm.Data
		return len(data) == 1 && data[config.ConfigMapKey] != "", nil
	})
	if err != nil {
		t.Errorf("kept configs not pruned to the config in force: keys %d: %v", len(data), err)
	}
}
