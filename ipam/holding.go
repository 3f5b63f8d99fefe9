package ipam

import (
	"slices"
	"strings"
)

// holder is one service holding an address, with the sharing it declared.
type holder struct {
	service string
	sharing Sharing
}

// holding is an address held by one service or, when their sharing allows
// it, by several.
type holding struct {
	pool    *pool    // the pool that contains the address; nil for an orphan
	holders []holder // sorted by service, so that errors name holders deterministically
}

func (h *holding) poolName() string {
	if h.pool == nil {
		return ""
	}
	return h.pool.name
}

func (h *holding) indexOf(service string) (int, bool) {
	return slices.BinarySearchFunc(h.holders, service, func(hd holder, s string) int {
		return strings.Compare(hd.service, s)
	})
}

// conflict returns the first holder, other than service itself, that a
// service with sharing s may not share the address with.
func (h *holding) conflict(service string, s Sharing) (holder, bool) {
	for _, hd := range h.holders {
		if hd.service != service && !s.compatible(hd.sharing) {
			return hd, true
		}
	}
	return holder{}, false
}

// hasKey reports whether some holder shares under key.
func (h *holding) hasKey(key string) bool {
	return slices.ContainsFunc(h.holders, func(hd holder) bool { return hd.sharing.Key == key })
}
