package main

import (
	"errors"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

// TestClusterSize: the Nodes are counted from a list of one, with the
// count the API server gives of the rest.
func TestClusterSize(t *testing.T) {
	one := v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	for _, tc := range []struct {
		name string
		list *v1.NodeList
		err  error
		want int
	}{
		{"the whole list fits", &v1.NodeList{Items: []v1.Node{one}}, nil, 1},
		{"no Nodes", &v1.NodeList{}, nil, 0},
		{"more remain", &v1.NodeList{ListMeta: metav1.ListMeta{Continue: "c", RemainingItemCount: ptr.To[int64](999)}, Items: []v1.Node{one}}, nil, 1000},
		{"more remain, uncounted", &v1.NodeList{ListMeta: metav1.ListMeta{Continue: "c"}, Items: []v1.Node{one}}, nil, 0},
		{"the list fails", nil, errors.New("forbidden"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := fake.NewClientset()
			client.PrependReactor("list", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
				if tc.err != nil {
					return true, nil, tc.err
				}
				return true, tc.list, nil
			})
			if got := clusterSize(t.Context(), client); got != tc.want {
				t.Errorf("clusterSize = %d, want %d", got, tc.want)
			}
		})
	}
}
