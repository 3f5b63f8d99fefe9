package migrate

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestAnyOf(t *testing.T) {
	label := func(k, v string) metav1.LabelSelector {
		return metav1.LabelSelector{MatchLabels: map[string]string{k: v}}
	}
	expr := func(k string, op metav1.LabelSelectorOperator, values ...string) metav1.LabelSelector {
		return metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: k, Operator: op, Values: values}}}
	}
	cases := []struct {
		name string
		sels []metav1.LabelSelector
		want string // "" for match-everything
		ok   bool
	}{
		{"none", nil, "", true},
		{"one", []metav1.LabelSelector{label("a", "1")}, "a=1", true},
		{"duplicates", []metav1.LabelSelector{label("a", "1"), label("a", "1")}, "a=1", true},
		{"an empty one matches all", []metav1.LabelSelector{label("a", "1"), {}}, "", true},
		{"same key", []metav1.LabelSelector{label("a", "2"), expr("a", metav1.LabelSelectorOpIn, "1", "3")}, "a in (1,2,3)", true},
		{"exists wins", []metav1.LabelSelector{label("a", "2"), expr("a", metav1.LabelSelectorOpExists)}, "a", true},
		{"different keys", []metav1.LabelSelector{label("a", "1"), label("b", "1")}, "", false},
		{"two requirements", []metav1.LabelSelector{{MatchLabels: map[string]string{"a": "1", "b": "2"}}, label("a", "3")}, "", false},
		{"NotIn", []metav1.LabelSelector{label("a", "1"), expr("a", metav1.LabelSelectorOpNotIn, "2")}, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sel, ok := anyOf(tc.sels)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			got := ""
			if sel != nil {
				got = metav1.FormatLabelSelector(sel)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRankPriorities(t *testing.T) {
	ranks := rankPriorities([]int64{50, 10, 50, -1 << 62, 1 << 62})
	want := map[int64]int32{-1 << 62: 4, 10: 3, 50: 2, 1 << 62: 1}
	for v, r := range want {
		if ranks[v] != r {
			t.Errorf("rank of %d = %d, want %d", v, ranks[v], r)
		}
	}
	if len(ranks) != len(want) {
		t.Errorf("ranks %v", ranks)
	}
}

func TestNamesClaim(t *testing.T) {
	n := newNames()
	for _, tc := range []struct{ want, got string }{
		{"web", "web"},
		{"web", "web-2"},
		{"Web.Pool_1", "web-pool-1"},
		{"---", "pool"},
		{"", "pool-2"},
		{"a123456789012345678901234567890123456789012345678901234567890123456789", "a12345678901234567890123456789012345678901234567890123456789012"},
		{"a123456789012345678901234567890123456789012345678901234567890123456789", "a123456789012345678901234567890123456789012345678901234567890-2"},
	} {
		if got := n.claim(tc.want, "pool"); got != tc.got {
			t.Errorf("claim(%q) = %q, want %q", tc.want, got, tc.got)
		}
	}
}

func TestMasked(t *testing.T) {
	if m, changed := masked("198.51.100.77/26"); !changed || m != "198.51.100.64/26" {
		t.Errorf("masked = %s, %v", m, changed)
	}
	if _, changed := masked("198.51.100.64/26"); changed {
		t.Error("a masked CIDR changed")
	}
}
