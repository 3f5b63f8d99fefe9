package announcer

import (
	"reflect"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"

	"github.com/ironlb/ironlb/config"
)

// TestSlimObjectsKeepWhatTheSpeakerReads: every decision the speaker takes
// from a Service, an EndpointSlice or a Node is the same on the slim copy.
func TestSlimObjectsKeepWhatTheSpeakerReads(t *testing.T) {
	s := &Speaker{opts: SpeakerOptions{Filter: config.DefaultClassFilter()}}
	for _, k8sObj := range realisticObjects(3, 4) {
		switch obj := k8sObj.(type) {
		case *v1.Service:
			slim, _ := slimService(obj)
			if got, want := s.announcedView(slim), s.announcedView(obj); !reflect.DeepEqual(got, want) {
				t.Errorf("%s: slim view %+v, full %+v", obj.Name, got, want)
			}
			if got := slim.(*v1.Service); got.UID != obj.UID || got.ResourceVersion != obj.ResourceVersion || got.Name != obj.Name || got.Namespace != obj.Namespace {
				t.Errorf("%s: the slim copy lost its identity: %+v", obj.Name, got.ObjectMeta)
			}
		case *discoveryv1.EndpointSlice:
			slim, _ := slimEndpointSlice(obj)
			sl := slim.(*endpointSliceNodes)
			var ready []string
			for _, ep := range obj.Endpoints {
				if ep.NodeName != nil && (ep.Conditions.Ready == nil || *ep.Conditions.Ready) && !slices.Contains(ready, *ep.NodeName) {
					ready = append(ready, *ep.NodeName)
				}
			}
			slices.Sort(ready)
			if !reflect.DeepEqual(sl.readyNodes(), ready) {
				t.Errorf("%s: slim ready nodes %v, full %v", obj.Name, sl.readyNodes(), ready)
			}
			if got, want := must(sliceService(sl)), []string{obj.Namespace + "/" + obj.Labels[discoveryv1.LabelServiceName]}; !reflect.DeepEqual(got, want) {
				t.Errorf("%s: slim service %v, want %v", obj.Name, got, want)
			}
			key, err := cache.MetaNamespaceKeyFunc(sl)
			if m, _ := meta.Accessor(sl); err != nil || key != obj.Namespace+"/"+obj.Name || m.GetResourceVersion() != obj.ResourceVersion {
				t.Errorf("%s: the slim copy is keyed %q (%v), resourceVersion %q", obj.Name, key, err, m.GetResourceVersion())
			}
		case *v1.Node:
			slim, _ := slimNode(obj)
			n := slim.(*v1.Node)
			if !nodeAddressesEqual(n, obj) || !labels.Equals(n.Labels, obj.Labels) || n.UID != obj.UID || nodeIPv4(n) != nodeIPv4(obj) {
				t.Errorf("%s: slim node %+v differs in what the speaker reads", obj.Name, n)
			}
		}
	}
	// Objects that are not of the type (a tombstone, say) pass unchanged.
	for _, slim := range []func(any) (any, error){slimService, slimEndpointSlice, slimNode} {
		if got, _ := slim("tombstone"); got != "tombstone" {
			t.Errorf("a foreign object was changed: %v", got)
		}
	}
}

func must(keys []string, _ error) []string { return keys }
