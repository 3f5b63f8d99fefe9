package main

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestParseSyncs(t *testing.T) {
	got, err := parseSyncs("1, 10,4")
	if err != nil || !slices.Equal(got, []int{1, 10, 4}) {
		t.Errorf("parseSyncs = %v, %v; want [1 10 4]", got, err)
	}
	for _, bad := range []string{"", "0", "1,,2", "x", "-3"} {
		if _, err := parseSyncs(bad); err == nil {
			t.Errorf("parseSyncs(%q) succeeded, want an error", bad)
		}
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}, {0.001, time.Millisecond}} {
		if got := percentile(d, tc.p); got != tc.want {
			t.Errorf("percentile(1..100ms, %v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile(nil) = %v, want 0", got)
	}
}

// The pool must hold n Services plus the warm-up one, and never overlap the
// service CIDR.
func TestPoolPrefixes(t *testing.T) {
	svc := netip.MustParsePrefix(serviceCIDR)
	for _, n := range []int{1, smallPoolMax, smallPoolMax + 1, maxServices} {
		var size int
		for _, p := range poolPrefixes(n) {
			if p.Overlaps(svc) {
				t.Errorf("n=%d: pool %v overlaps the service CIDR %v", n, p, svc)
			}
			size += 1 << (32 - p.Bits())
		}
		if size < n+1 {
			t.Errorf("n=%d: pool holds %d addresses, want at least %d", n, size, n+1)
		}
	}
	want := "pools:\n- name: bench\n  addresses: [198.51.100.0/24, 203.0.113.0/24]\n"
	if got := poolConfig(poolPrefixes(10)); got != want {
		t.Errorf("poolConfig = %q, want %q", got, want)
	}
}

func TestParseMetrics(t *testing.T) {
	m := parseMetrics(`# HELP workqueue_adds_total [ALPHA] Total number of adds
# TYPE workqueue_adds_total counter
workqueue_adds_total{name="node"} 7
workqueue_adds_total{name="service"} 12
workqueue_queue_duration_seconds_sum{name="service"} 3
workqueue_queue_duration_seconds_count{name="service"} 12
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="PATCH"} 40
rest_client_requests_total{code="201",host="127.0.0.1:6443",method="POST"} 2
process_start_time_seconds 1.7e+09
`)
	for _, tc := range []struct {
		name string
		got  float64
		want float64
	}{
		{"adds service", m.sum("workqueue_adds_total", `name="service"`), 12},
		{"adds all", m.sum("workqueue_adds_total"), 19},
		{"queue mean", m.mean("workqueue_queue_duration_seconds", `name="service"`), 0.25},
		{"requests", m.sum("rest_client_requests_total"), 42},
		{"posts", m.sum("rest_client_requests_total", `method="POST"`), 2},
		{"no labels", m.sum("process_start_time_seconds"), 1.7e9},
		{"missing mean", m.mean("nope"), 0},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}
