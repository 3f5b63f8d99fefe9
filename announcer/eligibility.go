package announcer

import (
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"

	"github.com/ironlb/ironlb/announcer/election"
	"github.com/ironlb/ironlb/announcer/membership"
	"github.com/ironlb/ironlb/config"
)

// Who may announce: the members the election weighs (those whose
// interfaces are known, with a Node object), each with its Node's labels
// and its interfaces, and the Local holders' ready nodes. The election
// (announcer/election) decides among them.

// metaWait bounds how long elections wait for a member's interfaces.
const metaWait = 2 * time.Second

// withKnownMeta returns the members to elect among. Electing without a
// member's interfaces would pick an owner that changes a moment later, so
// while a member's meta is on the way the election waits (waiting is true);
// but one whose meta never arrives (unreadable, or dropped on the way) must
// not pause every election: after metaWait it is left out, and said so.
func (s *Speaker) withKnownMeta(alive []membership.Member, now time.Time) ([]membership.Member, bool) {
	if len(s.metaMissingSince) == 0 && !slices.ContainsFunc(alive, func(m membership.Member) bool { return !m.MetaKnown }) {
		return alive, false // as nearly always: nothing to copy
	}
	known := make([]membership.Member, 0, len(alive))
	waiting := false
	seen := map[string]bool{}
	for _, m := range alive {
		if m.MetaKnown {
			known = append(known, m)
			continue
		}
		seen[m.Name] = true
		since, ok := s.metaMissingSince[m.Name]
		if !ok {
			s.metaMissingSince[m.Name] = now
			since = now
		}
		switch {
		case now.Sub(since) < metaWait:
			klog.V(2).InfoS("Waiting for a member's interfaces before electing", "member", m.Name)
			waiting = true
		case !s.metaGaveUp[m.Name]:
			s.metaGaveUp[m.Name] = true
			klog.ErrorS(nil, "A member's interfaces never arrived; electing without it until they do", "member", m.Name, "waited", metaWait)
		}
	}
	for name := range s.metaMissingSince {
		if !seen[name] {
			delete(s.metaMissingSince, name)
			delete(s.metaGaveUp, name)
		}
	}
	return known, waiting
}

// servedElsewhere reports whether one of nodes (the other side of a
// partition) may announce an address of pool: selected by the pool's
// nodeSelector and, with Local holders (local), holding a ready endpoint of
// one. Their interfaces cannot be known across the partition; they are
// assumed to have one. A side that stands down keeps announcing what the
// other side cannot serve: nobody would, otherwise.
func (s *Speaker) servedElsewhere(pool *config.Pool, local []election.LocalHolder, nodes []string) bool {
	for _, name := range nodes {
		if s.selects(pool, name) && (len(local) == 0 || slices.ContainsFunc(local, func(h election.LocalHolder) bool {
			_, ok := slices.BinarySearch(h.Ready, name)
			return ok
		})) {
			return true
		}
	}
	return false
}

// selects reports whether pool's nodeSelector picks node.
func (s *Speaker) selects(pool *config.Pool, node string) bool {
	n := s.nodes.get(node)
	return n != nil && pool.NodeSelector.Matches(labels.Set(n.labels))
}

// electionNodes are the alive members with a Node object, as the election
// takes them: the Node's labels, the member's interfaces. A member without
// a Node object is no pool's candidate.
func (s *Speaker) electionNodes(alive []membership.Member) []election.Node {
	out := make([]election.Node, 0, len(alive))
	for _, m := range alive {
		n := s.nodes.get(m.Name)
		if n == nil {
			continue
		}
		parsed, ok := s.memberInterfaces[m.Name]
		if !ok || !parsed.member.SameMeta(m) {
			parsed = parsedInterfaces{member: m, interfaces: interfacesOf(m.Meta)}
			s.memberInterfaces[m.Name] = parsed
		}
		out = append(out, election.Node{Name: m.Name, Labels: n.labels, Interfaces: parsed.interfaces})
	}
	if len(s.memberInterfaces) > len(alive) {
		// Members gone: forget theirs. alive is sorted by name.
		for name := range s.memberInterfaces {
			if _, found := slices.BinarySearchFunc(alive, name, func(m membership.Member, name string) int { return strings.Compare(m.Name, name) }); !found {
				delete(s.memberInterfaces, name)
			}
		}
	}
	return out
}

// localHolders are the services with externalTrafficPolicy Local among
// holders, each with the nodes that have a ready endpoint of it.
func (s *Speaker) localHolders(holders []*cachedService) []election.LocalHolder {
	var out []election.LocalHolder
	for _, svc := range holders {
		if svc.local {
			key := svc.key
			out = append(out, election.LocalHolder{Key: key, Ready: s.slicesOf.readyNodes(key)})
		}
	}
	slices.SortFunc(out, func(a, b election.LocalHolder) int { return strings.Compare(a.Key, b.Key) })
	return out
}
