package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// FamilyRequest asks for one address of one family.
type FamilyRequest struct {
	Family Family
	// Required is false for best effort, such as the secondary family of a
	// PreferDualStack service: when no pool has an address left, the family
	// is skipped instead of failing the request.
	Required bool
	// IP is a specific requested address, or the zero Addr.
	IP netip.Addr
	// Pools are the pools to allocate from, in order of preference; the
	// caller has already applied priorities and policies.
	Pools []string
	// Explicit says the user chose the IP or the pools, so an address the
	// service holds outside of them is given up rather than kept.
	Explicit bool
}

// Request asks for the addresses of one service.
type Request struct {
	Service  string // "namespace/name"
	Sharing  Sharing
	Families []FamilyRequest // at most one per family
}

// Assignment is one address given to a service.
type Assignment struct {
	Addr netip.Addr
	Pool string // the pool that contains Addr now; "" if none does any more
	Kept bool   // the service already held Addr before the call
}

var errEmptyService = errors.New("service name is empty")

// Allocate gives the service one address per requested family, atomically:
// either every required family succeeds and the whole result is committed, or
// nothing changes and the error says why. Each family is served by the first
// rule that applies:
//
//  1. A requested IP must lie in one of the request's pools. If other
//     services hold it, the service joins them only if its sharing is
//     compatible with each of them.
//  2. An address of the family the service already holds is kept if it lies
//     in one of the pools, or whatever its pool if the request is not
//     Explicit: addresses are sticky, and a pool that is removed, shrunk or
//     no longer admits the service does not take them away.
//  3. Otherwise each pool in turn offers first its lowest address already
//     shared under the service's sharing key without a port collision, then
//     its lowest free address.
//  4. If nothing is found, a required family fails the request (for instance
//     "no free IPv4 address in pools [a b]") and a best-effort one is skipped.
//
// Two services may share an address when they have the same non-empty
// sharing key and no port of the same protocol and number; kept addresses are
// checked again against the service's current sharing, as its ports or key
// may have changed. Errors name the blocking holder, the smallest by name:
// "203.0.113.9 is held by default/web" or "port TCP/53 collides with
// default/dns-tcp on 203.0.113.9".
//
// On success the service holds exactly the returned addresses, in the order
// of the requested families, and gives up any other. Repeating a request
// returns the same addresses, now with Kept set.
func (a *Allocator) Allocate(req Request) ([]Assignment, error) {
	if err := req.validate(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()

	// Decide every family before changing anything, so that a failure leaves
	// no trace. The families' choices are independent: no address is of two
	// families.
	picks := make([]pick, 0, len(req.Families))
	for _, fr := range req.Families {
		p, found, err := a.choose(req, fr)
		if err != nil {
			return nil, err
		}
		if found {
			picks = append(picks, p)
		}
	}

	// Commit: give up what is no longer wanted, then take or update the picks.
	sharing := req.Sharing.clone()
	for _, addr := range slices.Clone(a.byService[req.Service]) {
		if !slices.ContainsFunc(picks, func(p pick) bool { return p.addr == addr }) {
			a.unhold(addr, req.Service)
		}
	}
	out := make([]Assignment, len(picks))
	for i, p := range picks {
		if p.kept {
			a.setSharing(p.addr, req.Service, sharing)
		} else {
			a.hold(p.addr, req.Service, sharing)
		}
		out[i] = Assignment{Addr: p.addr, Pool: a.held[p.addr].poolName(), Kept: p.kept}
	}
	return out, nil
}

// pick is the address chosen for one family.
type pick struct {
	addr netip.Addr
	kept bool // the service holds addr already
}

func (r Request) validate() error {
	if r.Service == "" {
		return errEmptyService
	}
	var seen []Family
	for _, fr := range r.Families {
		if !fr.Family.valid() {
			return fmt.Errorf("unknown address family %d", int(fr.Family))
		}
		if slices.Contains(seen, fr.Family) {
			return fmt.Errorf("%s is requested more than once", fr.Family)
		}
		seen = append(seen, fr.Family)
		if fr.IP.IsValid() {
			if err := checkPlain(fr.IP); err != nil {
				return fmt.Errorf("requested IP %s %w", fr.IP, err)
			}
			if FamilyOf(fr.IP) != fr.Family {
				return fmt.Errorf("requested IP %s is not an %s address", fr.IP, fr.Family)
			}
		}
	}
	return nil
}

// choose applies the rules of Allocate to one family, changing nothing.
func (a *Allocator) choose(req Request, fr FamilyRequest) (pick, bool, error) {
	if fr.IP.IsValid() {
		p, err := a.chooseRequested(req, fr)
		return p, err == nil, err
	}
	if p, found, err := a.chooseHeld(req, fr); found || err != nil {
		return p, found, err
	}
	return a.chooseFromPools(req, fr)
}

func (a *Allocator) chooseRequested(req Request, fr FamilyRequest) (pick, error) {
	addr := fr.IP
	p, ok := a.ranges.lookup(addr)
	switch {
	case !ok:
		return pick{}, fmt.Errorf("%s is in no pool", addr)
	case len(fr.Pools) == 0:
		return pick{}, fmt.Errorf("%s is in pool %q, but no pools allow this service", addr, p.name)
	case !slices.Contains(fr.Pools, p.name):
		return pick{}, fmt.Errorf("%s is in pool %q, not in %v", addr, p.name, fr.Pools)
	}
	h := a.held[addr]
	if h == nil {
		if p.avoidBuggyIPs && isBuggy(addr) {
			return pick{}, fmt.Errorf("%s ends in .0 or .255, which pool %q avoids", addr, p.name)
		}
		return pick{addr: addr}, nil
	}
	if other, bad := h.conflict(req.Service, req.Sharing); bad {
		return pick{}, sharingError(addr, req.Sharing, other)
	}
	_, kept := h.indexOf(req.Service)
	return pick{addr: addr, kept: kept}, nil
}

// chooseHeld picks the address of the family the service already holds and
// may keep: preferably one in the most preferred pool, else, unless the
// request is explicit, the lowest.
func (a *Allocator) chooseHeld(req Request, fr FamilyRequest) (pick, bool, error) {
	var inPools, lowest netip.Addr
	rank := len(fr.Pools)
	// Seeding can leave a service holding several addresses of one family.
	for _, addr := range a.byService[req.Service] {
		if FamilyOf(addr) != fr.Family {
			continue
		}
		if !lowest.IsValid() {
			lowest = addr
		}
		if name := a.held[addr].poolName(); name != "" {
			if r := slices.Index(fr.Pools, name); r >= 0 && r < rank {
				inPools, rank = addr, r
			}
		}
	}
	addr := inPools
	if !addr.IsValid() && !fr.Explicit {
		addr = lowest
	}
	if !addr.IsValid() {
		return pick{}, false, nil
	}
	// The service's ports or key may have changed since it got the address.
	if other, bad := a.held[addr].conflict(req.Service, req.Sharing); bad {
		return pick{}, false, sharingError(addr, req.Sharing, other)
	}
	return pick{addr: addr, kept: true}, true, nil
}

func (a *Allocator) chooseFromPools(req Request, fr FamilyRequest) (pick, bool, error) {
	hasFamily := false
	for _, name := range fr.Pools {
		p := a.pools[name]
		if p == nil || p.family(fr.Family) == nil {
			continue
		}
		hasFamily = true
		if addr, ok := a.sharedAddr(p, fr.Family, req); ok {
			return pick{addr: addr}, true, nil
		}
		if addr, ok := p.family(fr.Family).free.lowest(); ok {
			return pick{addr: addr}, true, nil
		}
	}
	switch {
	case !fr.Required:
		return pick{}, false, nil
	case len(fr.Pools) == 0:
		return pick{}, false, errors.New("no pools allow this service")
	case !hasFamily:
		return pick{}, false, fmt.Errorf("no pool with %s addresses among %v", fr.Family, fr.Pools)
	}
	return pick{}, false, fmt.Errorf("no free %s address in pools %v", fr.Family, fr.Pools)
}

// sharedAddr returns the lowest address of family f in pool p that the
// service may join under its sharing key.
func (a *Allocator) sharedAddr(p *pool, f Family, req Request) (netip.Addr, bool) {
	if req.Sharing.Key == "" {
		return netip.Addr{}, false
	}
	index := a.byKey[req.Sharing.Key]
	if index == nil {
		return netip.Addr{}, false
	}
	var found netip.Addr
	index.AscendGreaterOrEqual(f.lowest(), func(addr netip.Addr) bool {
		if FamilyOf(addr) != f {
			return false
		}
		// The service holds no address of f in p: rule 2 would have kept it.
		h := a.held[addr]
		if h.pool != p {
			return true
		}
		if _, bad := h.conflict(req.Service, req.Sharing); bad {
			return true
		}
		found = addr
		return false
	})
	return found, found.IsValid()
}
