package announcer

import (
	"context"
	"net/netip"
	"slices"

	"github.com/ironlb/ironlb/announcer/election"
	"github.com/ironlb/ironlb/config"
)

// heldAddress is an address some Services hold, as the election and the
// protocols take it.
type heldAddress struct {
	services []string // the holders, namespace/name, sorted
	// pool is the pool covering the address, nil when none does or its
	// mode has no protocol here: the address is held but not announced.
	pool     *config.Pool
	layer    int  // the config layer of pool (config.Layers)
	fromKept bool // pool is not from a valid ironlb-config
	local    []election.LocalHolder
}

// announced reports whether a pool covers h for a protocol this node runs.
func (h *heldAddress) announced() bool { return h != nil && h.pool != nil }

// heldAddresses are the addresses the Services hold, kept current by a full
// sync and, between full syncs, by the sync of one Service: a Service or
// EndpointSlice change costs the addresses of that Service, not a pass over
// every Service.
type heldAddresses struct {
	// byIP are every held address, also those no pool covers;
	// ofService the addresses each Service holds. One entry per address
	// and Service: at 10,000 Services each speaker keeps them all.
	byIP      map[netip.Addr]*heldAddress
	ofService map[string][]netip.Addr
	// bgpLayers counts, per config layer, the addresses it announces in
	// bgp mode: the BGP sessions follow the layers with some
	// (config.Layers.BGP).
	bgpLayers map[int]int
	// layers and currentValid are the config the addresses were resolved
	// with; a Service's sync resolves its own the same way.
	layers       config.Layers
	currentValid bool
}

// usedBGPLayers are the layers announcing some address in bgp mode.
func (h *heldAddresses) usedBGPLayers() []int {
	var used []int
	for layer, n := range h.bgpLayers {
		if n > 0 {
			used = append(used, layer)
		}
	}
	slices.Sort(used)
	return used
}

// count adds (or, with -1, removes) a resolved address in the bgp tally.
func (h *heldAddresses) count(a *heldAddress, delta int) {
	if a.announced() && a.pool.Mode == config.ModeBGP {
		h.bgpLayers[a.layer] += delta
	}
}

// serviceKeyPrefix marks the queue keys that sync one Service (its
// namespace/name follows).
const serviceKeyPrefix = "service/"

// gatherHeld rebuilds the held addresses from every Service, resolved with
// layers (currentValid: the first is a valid ironlb-config), and returns
// them as the election takes them, with the config layers announcing in
// bgp mode.
func (s *Speaker) gatherHeld(services []*cachedService, layers config.Layers, currentValid bool) ([]election.Address, []int) {
	held := &heldAddresses{byIP: map[netip.Addr]*heldAddress{}, ofService: map[string][]netip.Addr{},
		bgpLayers: map[int]int{}, layers: layers, currentValid: currentValid}
	var addrs []election.Address
	for ip, holders := range addressesOf(services, s.opts.Filter) {
		h := s.resolve(ip, holders, held)
		held.byIP[ip] = h
		for _, key := range h.services {
			held.ofService[key] = append(held.ofService[key], ip)
		}
		if h.announced() {
			held.count(h, 1)
			addrs = append(addrs, election.Address{IP: ip, Pool: h.pool, Local: h.local})
		}
	}
	s.held = held
	return addrs, held.usedBGPLayers()
}

// resolve is how ip, held by holders, is announced: the pool of the first
// of held's config layers covering it, none when none does or its mode has
// no protocol; nil when no Service holds ip.
func (s *Speaker) resolve(ip netip.Addr, holders []*cachedService, held *heldAddresses) *heldAddress {
	if len(holders) == 0 {
		return nil
	}
	h := &heldAddress{services: serviceKeys(holders)}
	pool, layer := held.layers.PoolFor(ip)
	if pool == nil || s.opts.Protocols[pool.Mode] == nil {
		return h
	}
	h.pool, h.layer, h.fromKept = pool, layer, layer > 0 || !held.currentValid
	h.local = s.localHolders(holders)
	return h
}

// syncService brings the addresses key's Service held and holds up to date,
// elects for those alone and applies the result. Until the first full sync
// there is nothing to update: that sync covers the Service.
func (s *Speaker) syncService(ctx context.Context, key string) error {
	if !s.hasJoined() || s.held == nil {
		return nil
	}
	held := s.held
	now := s.addressesOfService(key)
	before := held.ofService[key]
	if len(now) > 0 {
		held.ofService[key] = now
	} else {
		delete(held.ofService, key)
	}
	var changed []election.Address
	var released []netip.Addr
	usedBefore := held.usedBGPLayers()
	affected := slices.Concat(before, now)
	slices.SortFunc(affected, netip.Addr.Compare)
	for _, ip := range slices.Compact(affected) {
		prev := held.byIP[ip]
		var keys []string
		if prev != nil {
			keys = prev.services
		}
		if slices.Contains(now, ip) {
			if !slices.Contains(keys, key) {
				keys = slices.Sorted(slices.Values(append(slices.Clone(keys), key)))
			}
		} else {
			keys = slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return k == key })
		}
		h := s.resolve(ip, s.servicesByKey(keys), held)
		held.count(prev, -1)
		held.count(h, 1)
		if h == nil {
			delete(held.byIP, ip)
		} else {
			held.byIP[ip] = h
		}
		switch {
		case h.announced():
			changed = append(changed, election.Address{IP: ip, Pool: h.pool, Local: h.local})
		case prev.announced():
			released = append(released, ip)
		}
	}
	if !slices.Equal(usedBefore, held.usedBGPLayers()) {
		s.queue.Add(syncKey) // the BGP sessions may follow another config layer
	}
	s.table.UpdateAddresses(changed, released)
	return s.applyFor(ctx, affected)
}

// addressesOfService are the addresses the Service key holds, if ironlb
// announces for it; none once it is gone.
func (s *Speaker) addressesOfService(key string) []netip.Addr {
	svc := s.serviceByKey(key)
	if svc == nil {
		return nil
	}
	var out []netip.Addr
	for ip := range addressesOf([]*cachedService{svc}, s.opts.Filter) {
		out = append(out, ip)
	}
	return out
}

// servicesByKey are the Services named by keys that still exist.
func (s *Speaker) servicesByKey(keys []string) []*cachedService {
	out := make([]*cachedService, 0, len(keys))
	for _, key := range keys {
		if svc := s.serviceByKey(key); svc != nil {
			out = append(out, svc)
		}
	}
	return out
}

// serviceByKey is the Service namespace/name as cached, or nil.
func (s *Speaker) serviceByKey(key string) *cachedService {
	obj, ok, err := s.services.GetByKey(key)
	if err != nil || !ok {
		return nil
	}
	svc, _ := obj.(*cachedService)
	return svc
}

// allServices are every Service as cached.
func (s *Speaker) allServices() []*cachedService { return listAs[*cachedService](s.services) }

// addressesOf maps every load-balancer address of the services ironlb serves
// to the services holding it. An address another implementation assigned is
// never announced, even inside an ironlb pool.
func addressesOf(services []*cachedService, filter config.ClassFilter) map[netip.Addr][]*cachedService {
	out := map[netip.Addr][]*cachedService{}
	for _, svc := range services {
		if !svc.servedBy(filter) {
			continue
		}
		for _, ip := range svc.ips {
			out[ip] = append(out[ip], svc)
		}
	}
	return out
}

func serviceKeys(svcs []*cachedService) []string {
	keys := make([]string, 0, len(svcs))
	for _, s := range svcs {
		keys = append(keys, s.key)
	}
	slices.Sort(keys)
	return keys
}
