package migrate

import (
	"cmp"
	"slices"
)

// rankPriorities turns priorities where the lowest number wins (MetalLB,
// OpenELB) into ironlb's, where the highest wins: the best of the k
// distinct values becomes k, the worst 1, so that 0 stays free for pools
// that had none and are tried last, as in the sources. Ranks rather than
// arithmetic keep any int64 within ironlb's int32.
func rankPriorities(values []int64) map[int64]int32 {
	distinct := slices.Clone(values)
	slices.SortFunc(distinct, cmp.Compare[int64])
	distinct = slices.Compact(distinct)
	ranks := make(map[int64]int32, len(distinct))
	for i, v := range distinct {
		ranks[v] = int32(len(distinct) - i)
	}
	return ranks
}
