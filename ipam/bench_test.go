package ipam

import (
	"runtime"
	"strconv"
	"testing"
)

// BenchmarkAllocateRelease16With50kLive measures one service coming and going
// in a /16 that already holds 50,000 allocations, with holes left by earlier
// releases so that the free list has thousands of spans.
func BenchmarkAllocateRelease16With50kLive(b *testing.B) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	a := newAllocator(b, poolSpec(b, "bench", "198.18.0.0/16"))
	families := []FamilyRequest{v4("bench")}
	const live, every = 55_000, 11
	for i := range live {
		mustAllocate(b, a, Request{Service: "live/" + strconv.Itoa(i), Families: families})
	}
	for i := 0; i < live; i += every {
		a.Release("live/" + strconv.Itoa(i))
	}
	churn := Request{Service: "bench/churn", Families: families}
	runtime.GC()
	runtime.ReadMemStats(&after)

	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Allocate(churn); err != nil {
			b.Fatal(err)
		}
		a.Release(churn.Service)
	}
	// The allocator's heap with 50,000 live allocations, service names included.
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB-heap")
}

// BenchmarkAllocate100kFromV6Slash64 measures allocations from an IPv6 /64,
// on a fresh allocator every 100,000, and reports the heap each allocation
// costs ("B/alloc", measured over 100,000 of them; the service names, which
// belong to the caller, are not counted).
func BenchmarkAllocate100kFromV6Slash64(b *testing.B) {
	const count = 100_000
	pools := []PoolSpec{poolSpec(b, "v6", "2001:db8::/64")}
	families := []FamilyRequest{v6("v6")}
	names := make([]string, count)
	for i := range names {
		names[i] = "bench/svc-" + strconv.Itoa(i)
	}
	fill := func(a *Allocator, n int) {
		for _, name := range names[:n] {
			if _, err := a.Allocate(Request{Service: name, Families: families}); err != nil {
				b.Fatal(err)
			}
		}
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	measured := newAllocator(b, pools...)
	fill(measured, count)
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(measured)
	bytesPerAlloc := float64(after.HeapAlloc-before.HeapAlloc) / count

	b.ReportAllocs()
	a, n := newAllocator(b, pools...), 0
	for b.Loop() {
		if n == count {
			b.StopTimer()
			a, n = newAllocator(b, pools...), 0
			b.StartTimer()
		}
		if _, err := a.Allocate(Request{Service: names[n], Families: families}); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(bytesPerAlloc, "B/alloc")
}
