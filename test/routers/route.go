package routers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/netlab"
)

// Route is a prefix as a router's BGP table holds it: one entry per path.
type Route struct {
	Paths []Path
}

// Path is one BGP path of a route, with the attributes the tests check,
// written as the daemon prints them.
type Path struct {
	NextHop netip.Addr
	// Peer is the neighbour the path was learned from (FRR only; the zero
	// Addr from BIRD).
	Peer netip.Addr
	// LocalPref is -1 when the path carries none.
	LocalPref int
	// Communities are standard communities ("64512:100" in FRR,
	// "(64512,100)" in BIRD); LargeCommunities likewise.
	Communities      string
	LargeCommunities string
	// Multipath and Best are FRR's flags (always false from BIRD).
	Multipath bool
	Best      bool
}

// NextHops returns the paths' next hops, sorted.
func (r Route) NextHops() []netip.Addr {
	var out []netip.Addr
	for _, p := range r.Paths {
		out = append(out, p.NextHop)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// RouteReader is a router whose BGP view of a prefix can be read: *FRR and
// *BIRD.
type RouteReader interface {
	// Route returns the paths for prefix; none when it has no route.
	Route(ctx context.Context, prefix netip.Prefix) (Route, error)
}

// pollInterval is how often the waits read the router: vtysh and birdc
// answer in a few milliseconds, and convergence times are measured with
// this resolution.
const pollInterval = 20 * time.Millisecond

// WaitRoute waits until r's paths for prefix have exactly the next hops
// want (none: withdrawn or never announced), and returns the route and how
// long that took. Read errors count as not yet (a daemon may be restarting)
// and are reported if the wait times out.
func WaitRoute(ctx context.Context, r RouteReader, prefix netip.Prefix, timeout time.Duration, want ...netip.Addr) (Route, time.Duration, error) {
	want = slices.Clone(want)
	slices.SortFunc(want, netip.Addr.Compare)
	begin := time.Now()
	last, err := pollRoute(ctx, r, prefix, timeout, func(rt Route) bool { return slices.Equal(rt.NextHops(), want) })
	if err != nil {
		return last, time.Since(begin), fmt.Errorf("route %s: want next hops %v, have %v: %w", prefix, want, last.NextHops(), err)
	}
	return last, time.Since(begin), nil
}

// WaitRouteWith waits until ok holds for r's route for prefix and returns
// that route.
func WaitRouteWith(ctx context.Context, r RouteReader, prefix netip.Prefix, timeout time.Duration, ok func(Route) bool) (Route, error) {
	last, err := pollRoute(ctx, r, prefix, timeout, ok)
	if err != nil {
		return last, fmt.Errorf("route %s: %+v: %w", prefix, last.Paths, err)
	}
	return last, nil
}

// pollRoute reads r's route for prefix until ok holds for it, and returns
// the last route read. Read errors count as not yet; the last one is named
// if the wait times out.
func pollRoute(ctx context.Context, r RouteReader, prefix netip.Prefix, timeout time.Duration, ok func(Route) bool) (Route, error) {
	var last Route
	var lastErr error
	err := framework.WaitFor(ctx, timeout, pollInterval, func(ctx context.Context) (bool, error) {
		var rt Route
		rt, lastErr = r.Route(ctx, prefix)
		if lastErr != nil {
			return false, nil
		}
		last = rt
		return ok(last), nil
	})
	if err != nil && lastErr != nil {
		err = fmt.Errorf("%w (last read: %v)", err, lastErr)
	}
	return last, err
}

// KernelNextHops returns the next hops of host's kernel route for exactly
// prefix, sorted (none without a route): what zebra installed, and what the
// router forwards with.
func KernelNextHops(ctx context.Context, host *netlab.Host, prefix netip.Prefix) ([]netip.Addr, error) {
	family := "-4"
	if prefix.Addr().Is6() {
		family = "-6"
	}
	out, err := host.Exec(ctx, "ip", family, "-j", "route", "show", "exact", prefix.String())
	if err != nil {
		return nil, err
	}
	var routes []struct {
		Gateway  string `json:"gateway"`
		Nexthops []struct {
			Gateway string `json:"gateway"`
		} `json:"nexthops"`
	}
	if err := json.Unmarshal([]byte(out), &routes); err != nil {
		return nil, fmt.Errorf("ip route: %w: %s", err, out)
	}
	var hops []netip.Addr
	add := func(gw string) error {
		a, err := netip.ParseAddr(gw)
		if err != nil {
			return fmt.Errorf("ip route %s: gateway %q: %w", prefix, gw, err)
		}
		hops = append(hops, a)
		return nil
	}
	for _, r := range routes {
		if r.Gateway != "" {
			if err := add(r.Gateway); err != nil {
				return nil, err
			}
		}
		for _, nh := range r.Nexthops {
			if err := add(nh.Gateway); err != nil {
				return nil, err
			}
		}
	}
	slices.SortFunc(hops, netip.Addr.Compare)
	return hops, nil
}

// WaitKernelNextHops waits until host's kernel route for prefix has exactly
// the next hops want (none: no route), and returns how long that took.
func WaitKernelNextHops(ctx context.Context, host *netlab.Host, prefix netip.Prefix, timeout time.Duration, want ...netip.Addr) (time.Duration, error) {
	want = slices.Clone(want)
	slices.SortFunc(want, netip.Addr.Compare)
	begin := time.Now()
	var hops []netip.Addr
	var lastErr error
	err := framework.WaitFor(ctx, timeout, pollInterval, func(ctx context.Context) (bool, error) {
		hops, lastErr = KernelNextHops(ctx, host, prefix)
		return lastErr == nil && slices.Equal(hops, want), nil
	})
	if err != nil {
		if lastErr != nil {
			err = fmt.Errorf("%w (last read: %v)", err, lastErr)
		}
		return time.Since(begin), fmt.Errorf("kernel route %s on %s: next hops %v, want %v: %w", prefix, host.Name, hops, want, err)
	}
	return time.Since(begin), nil
}
