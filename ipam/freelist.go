package ipam

import (
	"net/netip"

	"github.com/google/btree"
)

// btreeDegree suits small items such as spans and addresses: nodes of up to
// 31 items keep trees shallow without making each insert copy much.
const btreeDegree = 16

// span is an inclusive run of consecutive free addresses.
type span struct {
	first, last netip.Addr
}

func spanLess(a, b span) bool {
	return a.first.Less(b.first)
}

// freeList holds the free addresses of one pool and family as maximal spans
// (no two spans touch), so that its size follows the number of allocations
// and ranges rather than the number of addresses.
type freeList struct {
	spans *btree.BTreeG[span]

	// usable indexes the spans that hold an address that may be handed out.
	// It exists only when the pool avoids buggy IPv4 addresses; otherwise
	// every span qualifies and spans serves. Without it, a pool whose free
	// addresses are .255/.0 pairs wedged between held addresses would be
	// walked pair by pair to find the lowest usable address.
	usable *btree.BTreeG[span]
}

func newFreeList(avoidBuggyIPs bool) *freeList {
	f := &freeList{spans: btree.NewG(btreeDegree, spanLess)}
	if avoidBuggyIPs {
		f.usable = btree.NewG(btreeDegree, spanLess)
	}
	return f
}

// add makes every address of s free. None of them may be free already.
func (f *freeList) add(s span) {
	if before := s.first.Prev(); before.IsValid() {
		if prev, ok := f.spanContaining(before); ok {
			f.remove(prev)
			s.first = prev.first
		}
	}
	if after := s.last.Next(); after.IsValid() {
		if next, ok := f.spans.Get(span{first: after}); ok {
			f.remove(next)
			s.last = next.last
		}
	}
	f.insert(s)
}

// release makes a free again.
func (f *freeList) release(a netip.Addr) {
	f.add(span{first: a, last: a})
}

// take removes a from the free addresses; it does nothing if a is not free.
func (f *freeList) take(a netip.Addr) {
	s, ok := f.spanContaining(a)
	if !ok {
		return
	}
	f.remove(s)
	if s.first.Less(a) {
		f.insert(span{first: s.first, last: a.Prev()})
	}
	if a.Less(s.last) {
		f.insert(span{first: a.Next(), last: s.last})
	}
}

// isFree reports whether a is free.
func (f *freeList) isFree(a netip.Addr) bool {
	_, ok := f.spanContaining(a)
	return ok
}

// lowest returns the lowest free address that may be handed out.
func (f *freeList) lowest() (netip.Addr, bool) {
	index := f.usable
	if index == nil {
		index = f.spans
	}
	s, ok := index.Min()
	if !ok {
		return netip.Addr{}, false
	}
	return f.firstUsable(s)
}

func (f *freeList) spanContaining(a netip.Addr) (span, bool) {
	var found span
	var ok bool
	f.spans.DescendLessOrEqual(span{first: a}, func(s span) bool {
		found, ok = s, !s.last.Less(a)
		return false
	})
	return found, ok
}

func (f *freeList) firstUsable(s span) (netip.Addr, bool) {
	if f.usable == nil {
		return s.first, true
	}
	// Buggy addresses come at most two in a row (x.255, x+1.0), so the third
	// address of a span, if it has one, is usable.
	for a, i := s.first, 0; i < 3; a, i = a.Next(), i+1 {
		if !isBuggy(a) {
			return a, true
		}
		if a == s.last {
			break
		}
	}
	return netip.Addr{}, false
}

func (f *freeList) insert(s span) {
	f.spans.ReplaceOrInsert(s)
	if f.usable != nil {
		if _, ok := f.firstUsable(s); ok {
			f.usable.ReplaceOrInsert(s)
		}
	}
}

func (f *freeList) remove(s span) {
	f.spans.Delete(s)
	if f.usable != nil {
		f.usable.Delete(s)
	}
}

// isBuggy reports whether a is an IPv4 address ending in .0 or .255, which
// some old client firmware mistakes for a network or broadcast address.
func isBuggy(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	last := a.As4()[3]
	return last == 0 || last == 255
}
