package ipam

import (
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net/netip"
	"slices"
	"sync"

	"github.com/google/btree"
)

// Allocator hands out addresses from pools to services. It is safe for
// concurrent use.
type Allocator struct {
	mu sync.RWMutex

	pools  map[string]*pool
	ranges rangeIndex

	held      map[netip.Addr]*holding
	byService map[string][]netip.Addr // each sorted
	orphans   map[netip.Addr]struct{} // held addresses that no pool contains

	// byKey lists, per sharing key, the addresses some holder shares under
	// that key, in order, so that a service joins the lowest shared address
	// without walking every allocation.
	byKey map[string]*btree.BTreeG[netip.Addr]
	// keyNodes is the node free list all byKey trees share, so that each key
	// does not bring a free list of its own.
	keyNodes *btree.FreeListG[netip.Addr]
}

// New returns an allocator with no pools.
func New() *Allocator {
	return &Allocator{
		pools:     map[string]*pool{},
		held:      map[netip.Addr]*holding{},
		byService: map[string][]netip.Addr{},
		orphans:   map[netip.Addr]struct{}{},
		byKey:     map[string]*btree.BTreeG[netip.Addr]{},
		keyNodes:  btree.NewFreeListG[netip.Addr](btree.DefaultFreeListSize),
	}
}

// SetPools replaces the pool set, as on a live configuration reload. It
// refuses, changing nothing, empty or duplicate pool names, invalid ranges
// (such as mixed families or a reversed range) and any overlap between two
// ranges, within a pool or across pools, naming both.
//
// Holdings are never dropped: an address that no pool contains any more stays
// held by its services as an orphan, and is handed to nobody else; an address
// that is held and lies in a new pool is not free in that pool.
func (a *Allocator) SetPools(specs []PoolSpec) error {
	pools, ranges, err := buildPools(specs)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pools, a.ranges = pools, ranges
	clear(a.orphans)
	for addr, h := range a.held {
		a.place(addr, h)
	}
	return nil
}

// Seed records that service already holds addr, whatever the pools say: at
// start-up the allocator learns existing assignments from the services'
// status before any Allocate. Seeding the same service and address twice is a
// no-op. It fails, recording nothing, when addr is held by a service whose
// sharing is incompatible with sharing.
func (a *Allocator) Seed(service string, addr netip.Addr, sharing Sharing) error {
	if service == "" {
		return errEmptyService
	}
	if !addr.IsValid() {
		return errors.New("address is missing")
	}
	if err := checkPlain(addr); err != nil {
		return fmt.Errorf("%s %w", addr, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if h := a.held[addr]; h != nil {
		if _, ok := h.indexOf(service); ok {
			return nil
		}
		if other, bad := h.conflict(service, sharing); bad {
			return sharingError(addr, sharing, other)
		}
	}
	a.hold(addr, service, sharing.clone())
	return nil
}

// Release frees every address the service holds, except that an address
// shared with other services stays held by them. It returns the addresses the
// service held, sorted.
func (a *Allocator) Release(service string) []netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	addrs := slices.Clone(a.byService[service])
	for _, addr := range addrs {
		a.unhold(addr, service)
	}
	return addrs
}

// Addresses returns what the service holds, IPv4 first, then by address, all
// with Kept set.
func (a *Allocator) Addresses(service string) []Assignment {
	a.mu.RLock()
	defer a.mu.RUnlock()
	addrs := a.byService[service]
	if len(addrs) == 0 {
		return nil
	}
	out := make([]Assignment, len(addrs))
	for i, addr := range addrs {
		out[i] = Assignment{Addr: addr, Pool: a.held[addr].poolName(), Kept: true}
	}
	return out
}

// PoolOf returns the name of the pool whose ranges contain addr.
func (a *Allocator) PoolOf(addr netip.Addr) (string, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	p, ok := a.ranges.lookup(addr)
	if !ok {
		return "", false
	}
	return p.name, true
}

// Orphans returns the held addresses that no pool contains, each with its
// holders, sorted.
func (a *Allocator) Orphans() map[netip.Addr][]string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make(map[netip.Addr][]string, len(a.orphans))
	for addr := range a.orphans {
		holders := a.held[addr].holders
		names := make([]string, len(holders))
		for i, hd := range holders {
			names[i] = hd.service
		}
		out[addr] = names
	}
	return out
}

// PoolStats describes the addresses of one family in one pool.
type PoolStats struct {
	Pool   string
	Family Family
	// Size counts every address in the pool's ranges of this family,
	// including those AvoidBuggyIPs keeps from being handed out.
	Size *big.Int
	// InUse counts held addresses; an address shared by several services
	// counts once.
	InUse int
}

// Stats returns one row per pool and family the pool has, sorted by pool name
// then family.
func (a *Allocator) Stats() []PoolStats {
	a.mu.RLock()
	defer a.mu.RUnlock()
	var out []PoolStats
	for _, name := range slices.Sorted(maps.Keys(a.pools)) {
		p := a.pools[name]
		for _, f := range []Family{IPv4, IPv6} {
			if pf := p.family(f); pf != nil {
				out = append(out, PoolStats{Pool: name, Family: f, Size: new(big.Int).Set(pf.size), InUse: pf.inUse})
			}
		}
	}
	return out
}

// hold makes service a holder of addr. The caller has checked that the
// sharing is compatible with the other holders.
func (a *Allocator) hold(addr netip.Addr, service string, s Sharing) {
	h := a.held[addr]
	if h == nil {
		h = &holding{}
		a.held[addr] = h
		a.place(addr, h)
	}
	i, _ := h.indexOf(service)
	h.holders = slices.Insert(h.holders, i, holder{service: service, sharing: s})
	a.indexKey(addr, s.Key)

	addrs := a.byService[service]
	j, _ := slices.BinarySearchFunc(addrs, addr, netip.Addr.Compare)
	a.byService[service] = slices.Insert(addrs, j, addr)
}

// unhold removes service from the holders of addr, and frees addr when
// nobody holds it any more.
func (a *Allocator) unhold(addr netip.Addr, service string) {
	h := a.held[addr]
	if h == nil {
		return
	}
	i, ok := h.indexOf(service)
	if !ok {
		return
	}
	key := h.holders[i].sharing.Key
	h.holders = slices.Delete(h.holders, i, i+1)
	a.unindexKey(addr, h, key)

	addrs := a.byService[service]
	if j, ok := slices.BinarySearchFunc(addrs, addr, netip.Addr.Compare); ok {
		addrs = slices.Delete(addrs, j, j+1)
	}
	if len(addrs) == 0 {
		delete(a.byService, service)
	} else {
		a.byService[service] = addrs
	}

	if len(h.holders) == 0 {
		delete(a.held, addr)
		a.unplace(addr, h)
	}
}

// setSharing records a new sharing for a holder of addr. The caller has
// checked that it is compatible with the other holders.
func (a *Allocator) setSharing(addr netip.Addr, service string, s Sharing) {
	h := a.held[addr]
	i, _ := h.indexOf(service)
	old := h.holders[i].sharing.Key
	h.holders[i].sharing = s
	a.unindexKey(addr, h, old)
	a.indexKey(addr, s.Key)
}

// place records which pool, if any, contains the newly held addr, and takes
// it out of that pool's free addresses.
func (a *Allocator) place(addr netip.Addr, h *holding) {
	p, ok := a.ranges.lookup(addr)
	if !ok {
		h.pool = nil
		a.orphans[addr] = struct{}{}
		return
	}
	h.pool = p
	pf := p.family(FamilyOf(addr))
	pf.free.take(addr)
	pf.inUse++
}

// unplace undoes place for an address nobody holds any more.
func (a *Allocator) unplace(addr netip.Addr, h *holding) {
	if h.pool == nil {
		delete(a.orphans, addr)
		return
	}
	pf := h.pool.family(FamilyOf(addr))
	pf.free.release(addr)
	pf.inUse--
}

func (a *Allocator) indexKey(addr netip.Addr, key string) {
	if key == "" {
		return
	}
	t := a.byKey[key]
	if t == nil {
		t = btree.NewWithFreeListG(btreeDegree, netip.Addr.Less, a.keyNodes)
		a.byKey[key] = t
	}
	t.ReplaceOrInsert(addr)
}

// unindexKey drops addr from key's index unless a remaining holder of h still
// shares under key.
func (a *Allocator) unindexKey(addr netip.Addr, h *holding, key string) {
	if key == "" || h.hasKey(key) {
		return
	}
	t := a.byKey[key]
	if t == nil {
		return
	}
	t.Delete(addr)
	if t.Len() == 0 {
		delete(a.byKey, key)
	}
}
