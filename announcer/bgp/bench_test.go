package bgp_test

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ironlb/ironlb/test/netlab"
	"github.com/ironlb/ironlb/test/routers"
)

// BenchmarkConvergence measures, end to end on the lab, how long a route
// takes to reach FRR's forwarding table (zebra's kernel route on r1, seen
// through netlink) after SetAnnounced, and to leave it after SetAnnounced
// drops the address and after Stop. Each iteration is one trial of each:
//
//	go test -run '^$' -bench Convergence -benchtime 20x ./announcer/bgp/
//
// Figures are reported as p50 and p99 (the maximum, over few trials) per
// kind, in milliseconds.
func BenchmarkConvergence(b *testing.B) {
	lab := netlab.NewForTest(b, netlab.Options{Nodes: 1, Routers: []string{"r1"}})
	r1, n1 := lab.Routers()[0], lab.Node(1)
	routers.StartFRRForTest(b, r1, routers.FRROptions{BGPD: frrNeighbors(lab, "")})
	fib := watchFIB(b, r1)
	prefix := netip.PrefixFrom(vip4, 32)
	section := fmt.Sprintf("localASN: %d\npeers: [{name: r1, address: %s, asn: %d}]\n", nodeASN, r1.IPv4, routerASN)

	var announce, withdraw, stop []time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		s := startSpeaker(b, lab, n1)
		s.configure(b, section, nodeConfig{})
		s.waitSession(b, "r1", true, "", 20*time.Second)
		b.StartTimer()

		begin := time.Now()
		s.announce(b, vip4.String())
		announce = append(announce, fib.wait(b, prefix, true).Sub(begin))

		begin = time.Now()
		s.announce(b)
		withdraw = append(withdraw, fib.wait(b, prefix, false).Sub(begin))

		s.announce(b, vip4.String())
		fib.wait(b, prefix, true)
		begin = time.Now()
		s.stop(b)
		stop = append(stop, fib.wait(b, prefix, false).Sub(begin))
	}
	b.StopTimer()
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{{"announce", announce}, {"withdraw", withdraw}, {"stop", stop}} {
		p50, p99 := percentiles(m.d)
		b.ReportMetric(float64(p50.Microseconds())/1000, m.name+"-p50-ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, m.name+"-p99-ms")
		b.Logf("%s → FIB on r1, %d trials: p50 %v, p99 %v", m.name, len(m.d), p50.Round(100*time.Microsecond), p99.Round(100*time.Microsecond))
	}
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return at(0.50), at(0.99)
}

// fibWatch follows a host's kernel routes through netlink, so route
// changes are timed when they happen rather than when a poll notices.
type fibWatch struct {
	updates chan netlink.RouteUpdate
}

func watchFIB(tb testing.TB, host *netlab.Host) *fibWatch {
	tb.Helper()
	ns, err := netns.GetFromName(host.Netns)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ns.Close() })
	w := &fibWatch{updates: make(chan netlink.RouteUpdate, 1024)}
	done := make(chan struct{})
	tb.Cleanup(func() { close(done) })
	if err := netlink.RouteSubscribeWithOptions(w.updates, done, netlink.RouteSubscribeOptions{Namespace: &ns}); err != nil {
		tb.Fatal(err)
	}
	return w
}

// wait returns when prefix is added (present) or deleted (!present).
func (w *fibWatch) wait(tb testing.TB, prefix netip.Prefix, present bool) time.Time {
	tb.Helper()
	want := uint16(unix.RTM_DELROUTE)
	if present {
		want = unix.RTM_NEWROUTE
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case u, ok := <-w.updates:
			if !ok {
				tb.Fatal("netlink route subscription ended")
			}
			if u.Type == want && u.Dst != nil && u.Dst.String() == prefix.String() {
				return time.Now()
			}
		case <-timeout:
			tb.Fatalf("route %s not %s within 10s", prefix, map[bool]string{true: "installed", false: "removed"}[present])
		}
	}
}

// BenchmarkSpeakerMemory reports what a Speaker costs in memory: a started
// speaker with no BGP configured (the process's baseline), then gobgp
// running with one established session, then with 1000 /32 routes
// announced. Run it without -race for representative figures:
//
//	go test -run '^$' -bench SpeakerMemory -benchtime 1x ./announcer/bgp/
func BenchmarkSpeakerMemory(b *testing.B) {
	lab := netlab.NewForTest(b, netlab.Options{Nodes: 1, Routers: []string{"r1"}})
	r1, n1 := lab.Routers()[0], lab.Node(1)
	router := routers.StartFRRForTest(b, r1, routers.FRROptions{BGPD: frrNeighbors(lab, "")})
	section := fmt.Sprintf("localASN: %d\npeers: [{name: r1, address: %s, asn: %d}]\n", nodeASN, r1.IPv4, routerASN)
	var many []string
	for i := range 1000 {
		many = append(many, netip.AddrFrom4([4]byte{203, 0, byte(113 - i/256), byte(i % 256)}).String())
	}
	for range b.N {
		s := startSpeaker(b, lab, n1)
		idle := s.memory(b)
		s.configure(b, section, nodeConfig{})
		s.waitSession(b, "r1", true, "", 20*time.Second)
		session := s.memory(b)
		s.announce(b, many...)
		waitRoute(b, router, netip.MustParsePrefix(many[len(many)-1]+"/32"), 20*time.Second, n1.IPv4)
		routes := s.memory(b)
		for _, m := range []struct {
			name string
			m    helperMemory
		}{{"idle", idle}, {"session", session}, {"1000routes", routes}} {
			b.ReportMetric(float64(m.m.RSS)/(1<<20), m.name+"-rss-MiB")
			b.ReportMetric(float64(m.m.HeapInuse)/(1<<20), m.name+"-heap-MiB")
			b.Logf("%-10s RSS %5.1f MiB, heap in use %5.1f MiB, Go sys %5.1f MiB, %d goroutines", m.name,
				float64(m.m.RSS)/(1<<20), float64(m.m.HeapInuse)/(1<<20), float64(m.m.Sys)/(1<<20), m.m.Goroutines)
		}
		s.stop(b)
	}
}
