package announcer

import (
	"slices"
	"testing"
	"unique"
)

func TestSlicesByService(t *testing.T) {
	slice := func(namespace, name, service string, ready ...string) *endpointSliceNodes {
		sl := &endpointSliceNodes{namespace: unique.Make(namespace), name: name, service: service}
		for _, n := range ready {
			sl.ready = append(sl.ready, unique.Make(n))
		}
		return sl
	}
	x := newSlicesByService()
	a1, a2 := slice("ns", "a-1", "a", "n1", "n3"), slice("ns", "a-2", "a", "n2", "n3")
	other := slice("other", "a-1", "a", "n9") // same names, another namespace
	orphan := slice("ns", "orphan", "", "n5")
	steps := []struct {
		name     string
		old, cur *endpointSliceNodes
		want     map[string][]string // service key → ready nodes
	}{
		{"first slice", nil, a1, map[string][]string{"ns/a": {"n1", "n3"}, "other/a": nil}},
		{"second slice merges", nil, a2, map[string][]string{"ns/a": {"n1", "n2", "n3"}}},
		{"another namespace apart", nil, other, map[string][]string{"ns/a": {"n1", "n2", "n3"}, "other/a": {"n9"}}},
		{"a slice without a Service is left out", nil, orphan, map[string][]string{"ns/": nil, "ns/orphan": nil}},
		{"an update replaces the slice", a1, slice("ns", "a-1", "a", "n4"), map[string][]string{"ns/a": {"n2", "n3", "n4"}}},
		{"a slice moves to another Service", a2, slice("ns", "a-2", "b", "n2"), map[string][]string{"ns/a": {"n4"}, "ns/b": {"n2"}}},
		{"deleted", slice("ns", "a-1", "a", "n4"), nil, map[string][]string{"ns/a": nil, "ns/b": {"n2"}}},
		{"deleting an unknown slice", slice("ns", "gone", "c"), nil, map[string][]string{"ns/c": nil, "ns/b": {"n2"}}},
	}
	for _, step := range steps {
		x.update(step.old, step.cur)
		for key, want := range step.want {
			if got := x.readyNodes(key); !slices.Equal(got, want) {
				t.Errorf("%s: ready nodes of %s = %v, want %v", step.name, key, got, want)
			}
		}
	}
	if len(x.byService) != 2 {
		t.Errorf("%d Services indexed, want 2 (ns/b, other/a): %v", len(x.byService), x.byService)
	}
	if got := x.readyNodes("not/a/key"); got != nil {
		t.Errorf("a malformed key reads %v", got)
	}
}
