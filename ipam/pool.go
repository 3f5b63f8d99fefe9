package ipam

import (
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"sort"
)

// PoolSpec is one address pool as the allocator sees it.
type PoolSpec struct {
	Name   string
	Ranges []Range
	// AvoidBuggyIPs skips IPv4 addresses ending in .0 and .255 when handing
	// out addresses; IPv6 is unaffected.
	AvoidBuggyIPs bool
}

// pool is the allocator's live state for one PoolSpec.
type pool struct {
	name          string
	avoidBuggyIPs bool
	v4, v6        *poolFamily // nil when the pool has no range of that family
}

// poolFamily is the part of a pool in one family.
type poolFamily struct {
	size  *big.Int
	free  *freeList
	inUse int // held addresses, however many services share each
}

func (p *pool) family(f Family) *poolFamily {
	switch f {
	case IPv4:
		return p.v4
	case IPv6:
		return p.v6
	}
	return nil
}

func (p *pool) addRange(r Range) {
	slot := &p.v6
	if r.Family() == IPv4 {
		slot = &p.v4
	}
	if *slot == nil {
		*slot = &poolFamily{
			size: new(big.Int),
			free: newFreeList(p.avoidBuggyIPs && r.Family() == IPv4),
		}
	}
	(*slot).size.Add((*slot).size, r.Size())
	(*slot).free.add(span{first: r.First, last: r.Last})
}

// poolRange is one configured range and the pool it belongs to.
type poolRange struct {
	Range
	pool *pool
}

// rangeIndex holds every configured range sorted by First; ranges never
// overlap, so the pool of an address is found by binary search.
type rangeIndex []poolRange

func (x rangeIndex) lookup(a netip.Addr) (*pool, bool) {
	// Only the last range starting at or before a can contain it.
	i := sort.Search(len(x), func(i int) bool { return a.Less(x[i].First) })
	if i == 0 || !x[i-1].Contains(a) {
		return nil, false
	}
	return x[i-1].pool, true
}

// buildPools validates specs and builds fresh pools, with every address free.
func buildPools(specs []PoolSpec) (map[string]*pool, rangeIndex, error) {
	pools := make(map[string]*pool, len(specs))
	var index rangeIndex
	for i, spec := range specs {
		if spec.Name == "" {
			return nil, nil, fmt.Errorf("pool %d has an empty name", i)
		}
		if _, dup := pools[spec.Name]; dup {
			return nil, nil, fmt.Errorf("pool %q is defined more than once", spec.Name)
		}
		p := &pool{name: spec.Name, avoidBuggyIPs: spec.AvoidBuggyIPs}
		pools[spec.Name] = p
		for j, r := range spec.Ranges {
			if err := r.validate(); err != nil {
				return nil, nil, fmt.Errorf("pool %q, range %d: %w", spec.Name, j, err)
			}
			index = append(index, poolRange{Range: r, pool: p})
		}
	}
	// Stable, so that among ranges starting together the error names them in
	// configuration order.
	slices.SortStableFunc(index, func(x, y poolRange) int { return x.First.Compare(y.First) })
	// Sorted by First, ranges are disjoint if and only if each ends before
	// the next starts.
	for i := 1; i < len(index); i++ {
		prev, cur := index[i-1], index[i]
		if prev.Overlaps(cur.Range) {
			return nil, nil, overlapError(prev, cur)
		}
	}
	for _, pr := range index {
		pr.pool.addRange(pr.Range)
	}
	return pools, index, nil
}

func overlapError(a, b poolRange) error {
	if a.pool == b.pool {
		return fmt.Errorf("pool %q: ranges %s and %s overlap", a.pool.name, a.Range, b.Range)
	}
	return fmt.Errorf("range %s of pool %q overlaps range %s of pool %q", a.Range, a.pool.name, b.Range, b.pool.name)
}
