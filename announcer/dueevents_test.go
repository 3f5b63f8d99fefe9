package announcer

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/ironlb/ironlb/config"
)

// writeDueEvents writes every Event due so far, unpaced, as Run would in
// its time.
func writeDueEvents(tb testing.TB, ctx context.Context, s *Speaker) {
	tb.Helper()
	s.dueEvents.pace = flowcontrol.NewFakeAlwaysRateLimiter()
	for s.dueEvents.queue.Len() > 0 {
		if !s.recordNextDueEvents(ctx) {
			tb.Fatal("the Event queue shut down")
		}
	}
}

// cachedSpeaker is a speaker of node n1 whose caches hold what client
// does, started until ctx ends.
func cachedSpeaker(t *testing.T, ctx context.Context, client *fake.Clientset) *Speaker {
	t.Helper()
	s := NewSpeaker(client, &fakeMembers{changes: make(chan struct{})},
		SpeakerOptions{NodeName: "n1", ConfigNamespace: config.DefaultNamespace, ConfigName: config.DefaultConfigMapName})
	t.Cleanup(s.queue.ShutDown)
	if err := s.startCaches(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDueEventsSayWhatIsAnnouncedWhenWritten: an address's Events are
// written once however often it changed while they waited, and say what
// the node announces when they are written.
func TestDueEventsSayWhatIsAnnouncedWhenWritten(t *testing.T) {
	web := netip.MustParseAddr("203.0.113.5")
	on := func(iface string) map[netip.Addr]announcement {
		return map[netip.Addr]announcement{web: {mode: config.ModeLayer2, iface: iface, services: []string{"default/web"}, pool: "lan"}}
	}
	kept := func() map[netip.Addr]announcement {
		w := on("eth0")
		a := w[web]
		a.fromKept = true
		w[web] = a
		return w
	}
	none := map[netip.Addr]announcement{}
	tests := []struct {
		name    string
		changes []map[netip.Addr]announcement
		want    []string
	}{
		{"taken", []map[netip.Addr]announcement{on("eth0")},
			[]string{"Normal Announcing n1 announces 203.0.113.5 on eth0 (layer2)"}},
		{"taken and let go before its Event was written", []map[netip.Addr]announcement{on("eth0"), none}, nil},
		{"flapping while its Event waited", []map[netip.Addr]announcement{on("eth0"), none, on("eth0"), none, on("eth0")},
			[]string{"Normal Announcing n1 announces 203.0.113.5 on eth0 (layer2)"}},
		{"moved to another interface while its Event waited", []map[netip.Addr]announcement{on("eth0"), on("eth1")},
			[]string{"Normal Announcing n1 announces 203.0.113.5 on eth1 (layer2)"}},
		{"from a kept config", []map[netip.Addr]announcement{kept()},
			[]string{"Normal Announcing n1 announces 203.0.113.5 on eth0 (layer2)", "Warning AnnouncedFromKeptConfig 203.0.113.5 is in no pool"}},
		{"kept, then in the valid config again before the Warning", []map[netip.Addr]announcement{kept(), on("eth0")},
			[]string{"Normal Announcing n1 announces 203.0.113.5 on eth0 (layer2)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := cachedSpeaker(t, t.Context(), fake.NewClientset(lbWithIP("web", web.String(), false)))
			events := record.NewFakeRecorder(10)
			s.recorder = events
			for _, want := range tt.changes {
				s.recordChanges(want)
			}
			writeDueEvents(t, t.Context(), s)
			var got []string
			for len(events.Events) > 0 {
				got = append(got, <-events.Events)
			}
			if len(got) != len(tt.want) || slices.ContainsFunc(tt.want, func(prefix string) bool {
				return !slices.ContainsFunc(got, func(e string) bool { return strings.HasPrefix(e, prefix) })
			}) {
				t.Errorf("Events %q, want one each starting with %q", got, tt.want)
			}
		})
	}
}

// TestATakeoverOfManyAddressesLosesNoEvent: a node that takes over more
// addresses at once than client-go's recorder queues (1,000) records an
// Event for each, the API writing them slower than the takeover. In a
// speaker the pace is the client's rate, which its writes keep; here it
// follows the fake API's writes, whatever the machine's speed. Handed to
// the recorder unpaced, 200 or more of these Events are dropped.
func TestATakeoverOfManyAddressesLosesNoEvent(t *testing.T) {
	const addresses = 1200
	var objs []runtime.Object
	want := map[netip.Addr]announcement{}
	ip := netip.MustParseAddr("2001:db8::")
	for i := range addresses {
		ip = ip.Next()
		name := fmt.Sprintf("svc-%04d", i)
		objs = append(objs, lbWithIP(name, ip.String(), false))
		want[ip] = announcement{mode: config.ModeLayer2, iface: "eth0", services: []string{"default/" + name}, pool: "lan"}
	}
	client := fake.NewClientset(objs...)
	// The API takes 0.5 ms or more per Event: far slower than a takeover
	// hands them over.
	var written atomic.Int64
	client.PrependReactor("create", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		time.Sleep(500 * time.Microsecond)
		written.Add(1)
		return false, nil, nil
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s := cachedSpeaker(t, ctx, client)
	s.dueEvents.pace = &apiPace{written: &written}
	go s.recordDueEvents(ctx)
	s.recordChanges(want)
	var got int
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := client.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		got = 0
		for _, e := range list.Items {
			if e.Reason == "Announcing" && e.Type == v1.EventTypeNormal {
				got++
			}
		}
		return got == addresses, nil
	}); err != nil {
		t.Fatalf("%d Announcing Events written, want %d: %v", got, addresses, err)
	}
}

// apiPace lets an Event through once the API has written all but a burst
// of those let through before it.
type apiPace struct {
	flowcontrol.RateLimiter
	written *atomic.Int64
	turns   int64
}

func (p *apiPace) Wait(ctx context.Context) error {
	p.turns++
	return wait.PollUntilContextTimeout(ctx, time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return p.written.Load() >= p.turns-10, nil
	})
}

// countingPace lets everything through and counts the turns taken.
type countingPace struct {
	flowcontrol.RateLimiter
	turns int
}

func (c *countingPace) Wait(context.Context) error {
	c.turns++
	return nil
}

// TestOnlyWarrantedEventsTakeATurn: after a start where a node held a
// thousand addresses for a moment and kept a few, the backlog takes a turn
// of the API client's pace only for the Events of the few.
func TestOnlyWarrantedEventsTakeATurn(t *testing.T) {
	var objs []runtime.Object
	held := map[netip.Addr]announcement{}
	ip := netip.MustParseAddr("2001:db8::")
	for i := range 1000 {
		ip = ip.Next()
		name := fmt.Sprintf("svc-%04d", i)
		objs = append(objs, lbWithIP(name, ip.String(), false))
		held[ip] = announcement{mode: config.ModeLayer2, iface: "eth0", services: []string{"default/" + name}, pool: "lan"}
	}
	s := cachedSpeaker(t, t.Context(), fake.NewClientset(objs...))
	events := record.NewFakeRecorder(1000)
	s.recorder = events
	s.recordChanges(held)
	kept := map[netip.Addr]announcement{}
	for ip, a := range held {
		if len(kept) == 3 {
			break
		}
		kept[ip] = a
	}
	s.recordChanges(kept)
	pace := &countingPace{}
	s.dueEvents.pace = pace
	for s.dueEvents.queue.Len() > 0 {
		s.recordNextDueEvents(t.Context())
	}
	if pace.turns != 3 || len(events.Events) != 3 {
		t.Errorf("%d turns taken and %d Events recorded for the 3 addresses kept of 1,000, want 3 and 3", pace.turns, len(events.Events))
	}
}
