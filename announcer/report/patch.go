package report

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// patchOp is one JSON patch (RFC 6902) operation.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// statusPatch is the JSON patch that turns the status of the object at
// resourceVersion into want: each announcement that came, went or changed,
// keyed by address, and each other status field that changed. A failover
// that moves one address to this node then writes that one entry, not the
// whole list, so the bytes a membership change writes cluster-wide follow
// the addresses that moved rather than how much each node announces.
//
// The first operation pins the resourceVersion: the apiserver applies the
// patch to the stored object and refuses it with a Conflict when that
// object is not the one the patch was computed from, as an Update would.
func statusPatch(resourceVersion string, current, want v1alpha1.SpeakerStatusStatus) ([]byte, error) {
	cur, err := jsonFields(current)
	if err != nil {
		return nil, err
	}
	next, err := jsonFields(want)
	if err != nil {
		return nil, err
	}
	ops := []patchOp{{Op: "replace", Path: "/metadata/resourceVersion", Value: resourceVersion}}
	fields := maps.Clone(cur)
	maps.Copy(fields, next)
	for _, field := range slices.Sorted(maps.Keys(fields)) {
		before, had := cur[field]
		after, has := next[field]
		switch {
		case !has:
			ops = append(ops, patchOp{Op: "remove", Path: "/status/" + field})
		case had && field == "announcements":
			ops = append(ops, listPatch("/status/"+field, before, after)...)
		case !had || !reflect.DeepEqual(before, after):
			// "add" on a member that exists replaces it.
			ops = append(ops, patchOp{Op: "add", Path: "/status/" + field, Value: after})
		}
	}
	return json.Marshal(ops)
}

// listPatch turns the announcements before into after, by address. It
// removes each entry that went or changed, then inserts each one that came
// or changed at its place. That is exact when the entries kept are in the
// same order in both lists (this reporter writes them sorted); otherwise,
// as after a foreign write, or when more operations than entries would be
// needed, the whole list is replaced.
func listPatch(path string, before, after any) []patchOp {
	replaceAll := []patchOp{{Op: "add", Path: path, Value: after}}
	old, ok1 := before.([]any)
	next, ok2 := after.([]any)
	if !ok1 || !ok2 {
		return replaceAll
	}
	wanted := make(map[string]any, len(next))
	for _, entry := range next {
		ip, ok := entryIP(entry)
		if !ok {
			return replaceAll
		}
		wanted[ip] = entry
	}
	var ops []patchOp
	kept := map[string]bool{}
	var keptOrder []string
	for i := len(old) - 1; i >= 0; i-- {
		ip, ok := entryIP(old[i])
		if !ok {
			return replaceAll
		}
		if w, found := wanted[ip]; found && !kept[ip] && reflect.DeepEqual(w, old[i]) {
			kept[ip] = true
			keptOrder = append(keptOrder, ip)
			continue
		}
		ops = append(ops, patchOp{Op: "remove", Path: fmt.Sprintf("%s/%d", path, i)})
	}
	slices.Reverse(keptOrder)
	var keptInNext []string
	var inserts []patchOp
	for i, entry := range next {
		ip, _ := entryIP(entry)
		if kept[ip] {
			keptInNext = append(keptInNext, ip)
			continue
		}
		inserts = append(inserts, patchOp{Op: "add", Path: fmt.Sprintf("%s/%d", path, i), Value: entry})
	}
	// Out of order, or so many changes that the whole list is as short
	// (the apiserver also refuses patches of over 10,000 operations).
	if !slices.Equal(keptOrder, keptInNext) || len(ops)+len(inserts) > len(next) {
		return replaceAll
	}
	return append(ops, inserts...)
}

func entryIP(entry any) (string, bool) {
	m, ok := entry.(map[string]any)
	if !ok {
		return "", false
	}
	ip, ok := m["ip"].(string)
	return ip, ok
}

// jsonFields is the status as the API holds it: its JSON fields, omitted
// ones absent.
func jsonFields(st v1alpha1.SpeakerStatusStatus) (map[string]any, error) {
	raw, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	var fields map[string]any
	err = json.Unmarshal(raw, &fields)
	return fields, err
}
