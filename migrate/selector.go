package migrate

import (
	"reflect"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// anyOf returns one label selector that matches exactly what at least one
// of sels matches (the sources' lists of selectors are ORed; ironlb takes
// one), and whether there is such a selector. A nil result with ok
// matches everything.
//
// It finds one when there is at most one distinct selector, when one of
// them is empty (it matches everything, and so does the OR), or when each
// is a single requirement on the same key: key=v1 or key in (v2, v3)
// become key in (v1, v2, v3), and any key exists makes it key exists.
func anyOf(sels []metav1.LabelSelector) (*metav1.LabelSelector, bool) {
	var distinct []metav1.LabelSelector
	for _, s := range sels {
		if len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0 {
			return nil, true
		}
		if !slices.ContainsFunc(distinct, func(d metav1.LabelSelector) bool { return reflect.DeepEqual(d, s) }) {
			distinct = append(distinct, s)
		}
	}
	switch len(distinct) {
	case 0:
		return nil, true
	case 1:
		return &distinct[0], true
	}
	var key string
	var values []string
	exists := false
	for i, s := range distinct {
		req, ok := single(s)
		if !ok || (i > 0 && req.Key != key) {
			return nil, false
		}
		key = req.Key
		switch req.Operator {
		case metav1.LabelSelectorOpIn:
			values = append(values, req.Values...)
		case metav1.LabelSelectorOpExists:
			exists = true
		default:
			return nil, false
		}
	}
	if exists {
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: metav1.LabelSelectorOpExists}}}, true
	}
	slices.Sort(values)
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: key, Operator: metav1.LabelSelectorOpIn, Values: slices.Compact(values)},
	}}, true
}

// single returns the one requirement s makes, with key=value written as
// key in (value).
func single(s metav1.LabelSelector) (metav1.LabelSelectorRequirement, bool) {
	switch {
	case len(s.MatchLabels) == 1 && len(s.MatchExpressions) == 0:
		for k, v := range s.MatchLabels {
			return metav1.LabelSelectorRequirement{Key: k, Operator: metav1.LabelSelectorOpIn, Values: []string{v}}, true
		}
	case len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 1:
		return s.MatchExpressions[0], true
	}
	return metav1.LabelSelectorRequirement{}, false
}

// namespacesSelector writes a list of namespaces as a selector on the
// label Kubernetes puts on every namespace, so that it can be ORed with
// other namespace selectors.
func namespacesSelector(namespaces []string) metav1.LabelSelector {
	return metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: slices.Clone(namespaces)},
	}}
}
