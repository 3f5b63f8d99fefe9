package announcer

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/reference"

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
			var want *announcedService
			if s.opts.Filter.Serves(obj) && len(obj.Status.LoadBalancer.Ingress) > 0 {
				want = &announcedService{local: obj.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal}
				for _, ing := range obj.Status.LoadBalancer.Ingress {
					want.ips = append(want.ips, netip.MustParseAddr(ing.IP))
				}
			}
			if got := s.announcedView(slim); !reflect.DeepEqual(got, want) {
				t.Errorf("%s: slim view %+v, want %+v", obj.Name, got, want)
			}
			c := slim.(*cachedService)
			key, err := cache.MetaNamespaceKeyFunc(c)
			m, _ := meta.Accessor(c)
			if err != nil || key != obj.Namespace+"/"+obj.Name || c.key != key || m.GetUID() != obj.UID || m.GetResourceVersion() != obj.ResourceVersion {
				t.Errorf("%s: the slim copy is keyed %q (%v), UID %q, resourceVersion %q", obj.Name, key, err, m.GetUID(), m.GetResourceVersion())
			}
			if ref, err := reference.GetReference(scheme.Scheme, c.eventTarget()); err != nil || ref.Kind != "Service" || ref.Name != obj.Name ||
				ref.Namespace != obj.Namespace || ref.UID != obj.UID {
				t.Errorf("%s: Events would name %+v (%v), not the Service", obj.Name, ref, err)
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
			if got, want := sliceService(sl), obj.Namespace+"/"+obj.Labels[discoveryv1.LabelServiceName]; got != want {
				t.Errorf("%s: slim service %v, want %v", obj.Name, got, want)
			}
			key, err := cache.MetaNamespaceKeyFunc(sl)
			if m, _ := meta.Accessor(sl); err != nil || key != obj.Namespace+"/"+obj.Name || m.GetResourceVersion() != obj.ResourceVersion {
				t.Errorf("%s: the slim copy is keyed %q (%v), resourceVersion %q", obj.Name, key, err, m.GetResourceVersion())
			}
		case *v1.Node:
			slim, _ := slimNode(obj)
			n := slim.(*cachedNode)
			key, err := cache.MetaNamespaceKeyFunc(n)
			m, _ := meta.Accessor(n)
			if err != nil || key != obj.Name || m.GetUID() != obj.UID || m.GetResourceVersion() != obj.ResourceVersion || !labels.Equals(n.labels, obj.Labels) {
				t.Errorf("%s: the slim copy is keyed %q (%v), UID %q, resourceVersion %q, labels %v", obj.Name, key, err, m.GetUID(), m.GetResourceVersion(), n.labels)
			}
			if n.internalIP != obj.Status.Addresses[0].Address || n.routerID != netip.MustParseAddr(obj.Status.Addresses[0].Address) {
				t.Errorf("%s: slim node reads InternalIP %q and router ID %v, want %s", obj.Name, n.internalIP, n.routerID, obj.Status.Addresses[0].Address)
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

// TestSlimNodeReadsItsAddresses: a join contacts the first InternalIP, and
// the BGP router ID is the first IPv4 InternalIP, whatever else the Node
// lists and in whatever order.
func TestSlimNodeReadsItsAddresses(t *testing.T) {
	tests := []struct {
		name                 string
		addresses            []v1.NodeAddress
		wantJoin, wantRouter string
	}{
		{"IPv4", []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "198.51.100.1"}, {Type: v1.NodeHostName, Address: "n1"}}, "198.51.100.1", "198.51.100.1"},
		{"dual stack, IPv6 first", []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "2001:db8::1"}, {Type: v1.NodeInternalIP, Address: "198.51.100.1"}}, "2001:db8::1", "198.51.100.1"},
		{"external address first", []v1.NodeAddress{{Type: v1.NodeExternalIP, Address: "203.0.113.1"}, {Type: v1.NodeInternalIP, Address: "198.51.100.1"}}, "198.51.100.1", "198.51.100.1"},
		{"IPv6 only", []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "2001:db8::1"}}, "2001:db8::1", ""},
		{"no InternalIP", []v1.NodeAddress{{Type: v1.NodeHostName, Address: "n1"}}, "", ""},
		{"unparsable InternalIP", []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "n1.example"}}, "n1.example", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := node("n1", nil)
			n.Status.Addresses = tt.addresses
			slim, _ := slimNode(n)
			got := slim.(*cachedNode)
			var wantRouter netip.Addr
			if tt.wantRouter != "" {
				wantRouter = netip.MustParseAddr(tt.wantRouter)
			}
			if got.internalIP != tt.wantJoin || got.routerID != wantRouter {
				t.Errorf("joins %q, router ID %v; want %q, %v", got.internalIP, got.routerID, tt.wantJoin, wantRouter)
			}
		})
	}
}

func must(keys []string, _ error) []string { return keys }
