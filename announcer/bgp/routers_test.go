package bgp_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ironlb/ironlb/test/routers"
)

// The routers (FRR, BIRD) run from test/routers, as in the end-to-end
// tests; these wrappers fail the test instead of returning errors.

// waitRoute waits until the router's paths for prefix have exactly the next
// hops want (none: withdrawn), and returns the route and how long it took.
func waitRoute(t testing.TB, r routers.RouteReader, prefix netip.Prefix, timeout time.Duration, want ...netip.Addr) (routers.Route, time.Duration) {
	t.Helper()
	route, took, err := routers.WaitRoute(t.Context(), r, prefix, timeout, want...)
	if err != nil {
		t.Fatal(err)
	}
	return route, took
}

// waitRouteWith waits (5 s at most) until ok holds for the router's route
// for prefix.
func waitRouteWith(t testing.TB, r routers.RouteReader, prefix netip.Prefix, ok func(routers.Route) bool) {
	t.Helper()
	if _, err := routers.WaitRouteWith(t.Context(), r, prefix, 5*time.Second, ok); err != nil {
		t.Fatal(err)
	}
}

// frrPeerState returns FRR's BGP state for a neighbour (Established,
// Active, …).
func frrPeerState(t testing.TB, f *routers.FRR, addr netip.Addr) string {
	t.Helper()
	state, err := f.NeighborState(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	return state
}
