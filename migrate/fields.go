package migrate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
)

// fields reads one object of a resource (its spec, or an object within it)
// key by key. Every key a source does not read is reported by done, so a
// field of a newer version of the source, or one we never thought of, is
// never lost silently.
type fields struct {
	r    *report
	ref  Ref
	path string
	raw  map[string]json.RawMessage
	used map[string]bool
	// bad marks keys present but unreadable (already reported).
	bad  map[string]bool
	kids []*fields
}

func newFields(r *report, ref Ref, path string, raw json.RawMessage) *fields {
	f := &fields{r: r, ref: ref, path: path, raw: map[string]json.RawMessage{}, used: map[string]bool{}, bad: map[string]bool{}}
	if isNull(raw) {
		return f
	}
	if err := json.Unmarshal(raw, &f.raw); err != nil {
		r.drop(ref, path, "is not an object; not carried over")
	}
	return f
}

// at is the path of key, for messages.
func (f *fields) at(key string) string {
	return f.path + "." + key
}

// set reports whether key is present with a value other than its zero
// value (null, false, 0, "", [] or {}): a source writes those for "unset".
func (f *fields) set(key string) bool {
	v, ok := f.raw[key]
	return ok && !isZero(v)
}

// get decodes key into into. It returns false when the key is absent, null
// or cannot be decoded (reported as not carried over).
func (f *fields) get(key string, into any) bool {
	v, ok := f.raw[key]
	if !ok {
		return false
	}
	f.used[key] = true
	if isNull(v) {
		return false
	}
	if err := json.Unmarshal(v, into); err != nil {
		f.r.drop(f.ref, f.at(key), "cannot be read (%s); not carried over", readError(err))
		f.bad[key] = true
		return false
	}
	return true
}

// failed reports whether any of keys was present but could not be read.
// A restriction that cannot be read must not silently become no
// restriction.
func (f *fields) failed(keys ...string) bool {
	for _, k := range keys {
		if f.bad[k] {
			return true
		}
	}
	return false
}

// object returns the fields of the object at key (empty when absent).
func (f *fields) object(key string) *fields {
	v := f.raw[key]
	f.used[key] = true
	kid := newFields(f.r, f.ref, f.at(key), v)
	f.kids = append(f.kids, kid)
	return kid
}

// list returns the fields of each object in the list at key.
func (f *fields) list(key string) []*fields {
	var items []json.RawMessage
	if !f.get(key, &items) {
		return nil
	}
	out := make([]*fields, 0, len(items))
	for i, item := range items {
		kid := newFields(f.r, f.ref, fmt.Sprintf("%s[%d]", f.at(key), i), item)
		f.kids = append(f.kids, kid)
		out = append(out, kid)
	}
	return out
}

// drop marks key read and, when it is set, reports it as not carried over
// with why.
func (f *fields) drop(key, format string, args ...any) {
	f.used[key] = true
	if f.set(key) {
		f.r.drop(f.ref, f.at(key), format, args...)
	}
}

// ignore marks key read without a word: it means nothing to ironlb and
// losing it changes nothing.
func (f *fields) ignore(keys ...string) {
	for _, k := range keys {
		f.used[k] = true
	}
}

// discard marks everything read: the resource is not carried over, which
// is reported once, so its other fields need no line each.
func (f *fields) discard() {
	for k := range f.raw {
		f.used[k] = true
	}
	f.kids = nil
}

// done reports every key that was set but never read, here and below.
func (f *fields) done() {
	keys := make([]string, 0, len(f.raw))
	for k := range f.raw {
		if !f.used[k] && f.set(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		f.r.drop(f.ref, f.at(k), "ironlb has no equivalent; not carried over")
	}
	for _, kid := range f.kids {
		kid.done()
	}
}

func isNull(v json.RawMessage) bool {
	t := bytes.TrimSpace(v)
	return len(t) == 0 || string(t) == "null"
}

func isZero(v json.RawMessage) bool {
	switch string(bytes.TrimSpace(v)) {
	case "", "null", "false", "0", `""`, "[]", "{}":
		return true
	}
	return false
}
