package announcer

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"unique"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/ironlb/ironlb/config"
)

// The speaker caches every Service, EndpointSlice and Node of the cluster.
// These transforms keep only the fields it reads, so its memory grows with
// the number of objects, not with their size: managed fields, annotations,
// ports, endpoint addresses and a Node's images and conditions are most of
// an object and are never read here. A Service becomes a cachedService, an
// EndpointSlice an endpointSliceNodes.

// slimService keeps what says whether ironlb announces for a Service and
// how (cachedService).
func slimService(obj any) (any, error) {
	svc, ok := obj.(*v1.Service)
	if !ok {
		return obj, nil
	}
	out := &cachedService{key: svc.Namespace + "/" + svc.Name, uid: svc.UID, resourceVersion: svc.ResourceVersion,
		loadBalancer: svc.Spec.Type == v1.ServiceTypeLoadBalancer,
		local:        svc.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal}
	if c := svc.Spec.LoadBalancerClass; c != nil {
		out.class = unique.Make(*c)
	}
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ip, err := netip.ParseAddr(ing.IP); err == nil {
			out.ips = append(out.ips, ip)
		}
	}
	return out, nil
}

// cachedService is what the speaker's cache keeps of a Service: its type and
// class (whether ironlb announces for it), its traffic policy and its
// load-balancer addresses, keyed like the Service. A slimmed Service struct
// took about 800 bytes with its status; this takes about 200, the class
// interned.
type cachedService struct {
	// key is namespace/name, made once: the held addresses and their
	// elections name their Services by it, and share this copy.
	key, resourceVersion string
	uid                  types.UID
	// loadBalancer: spec.type is LoadBalancer. class is its
	// loadBalancerClass, the zero handle when it has none.
	loadBalancer bool
	class        unique.Handle[string]
	// local: externalTrafficPolicy is Local.
	local bool
	// ips are status.loadBalancer.ingress[].ip, those that parse, in order.
	ips []netip.Addr
}

// servedBy reports whether filter selects the Service, as
// config.ClassFilter.Serves does with the whole object.
func (c *cachedService) servedBy(filter config.ClassFilter) bool {
	if !c.loadBalancer {
		return false
	}
	if c.class == (unique.Handle[string]{}) {
		return filter.ServesClass(nil)
	}
	class := c.class.Value()
	return filter.ServesClass(&class)
}

// meta identifies the Service: for the informer's key, and for Events,
// which find it by kind, namespace, name and UID.
func (c *cachedService) meta() metav1.ObjectMeta {
	namespace, name, _ := strings.Cut(c.key, "/")
	return metav1.ObjectMeta{Namespace: namespace, Name: name, UID: c.uid, ResourceVersion: c.resourceVersion}
}

// eventTarget is a Service that Events can be recorded on.
func (c *cachedService) eventTarget() *v1.Service { return &v1.Service{ObjectMeta: c.meta()} }

func (c *cachedService) GetObjectMeta() metav1.Object {
	m := c.meta()
	return &m
}

func (c *cachedService) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

func (c *cachedService) DeepCopyObject() runtime.Object {
	out := *c
	out.ips = slices.Clone(c.ips)
	return &out
}

// slimEndpointSlice keeps of an EndpointSlice its Service and the nodes
// with a ready endpoint (endpointSliceNodes): a cluster has twice as many
// slices as Services, and an EndpointSlice struct with its labels map and
// endpoints takes about 1 KB where this takes under 200 bytes.
func slimEndpointSlice(obj any) (any, error) {
	sl, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return obj, nil
	}
	out := &endpointSliceNodes{namespace: unique.Make(sl.Namespace), name: sl.Name, resourceVersion: sl.ResourceVersion,
		service: sl.Labels[discoveryv1.LabelServiceName]}
	if nodes := readyOnNodes(sl); len(nodes) > 0 {
		out.ready = make([]unique.Handle[string], len(nodes))
		for i, n := range nodes {
			out.ready[i] = unique.Make(n)
		}
	}
	return out, nil
}

// endpointSliceNodes is what the speaker's cache keeps of an EndpointSlice.
// It is keyed like the slice (namespace/name) and has its resourceVersion,
// which is all an informer asks of what it stores. The strings thousands of
// slices repeat (namespaces, node names) are interned: the handles keep one
// copy each alive, and are a word each. A Service's name is not: two slices
// share it, and an interned string costs about 400 bytes of the intern
// table, against the 20 of a copy.
type endpointSliceNodes struct {
	name, resourceVersion string
	namespace             unique.Handle[string]
	// service is the slice's Service (label kubernetes.io/service-name),
	// "" when it has none.
	service string
	// ready are the nodes with a ready endpoint, sorted, each once.
	ready []unique.Handle[string]
}

// readyNodes are the names of the nodes with a ready endpoint.
func (e *endpointSliceNodes) readyNodes() []string {
	if len(e.ready) == 0 {
		return nil
	}
	out := make([]string, len(e.ready))
	for i, h := range e.ready {
		out[i] = h.Value()
	}
	return out
}

func (e *endpointSliceNodes) GetObjectMeta() metav1.Object {
	return &metav1.ObjectMeta{Namespace: e.namespace.Value(), Name: e.name, ResourceVersion: e.resourceVersion}
}

func (e *endpointSliceNodes) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

func (e *endpointSliceNodes) DeepCopyObject() runtime.Object {
	c := *e
	c.ready = slices.Clone(e.ready)
	return &c
}

// slimNode keeps of a Node what the speaker reads (cachedNode).
func slimNode(obj any) (any, error) {
	n, ok := obj.(*v1.Node)
	if !ok {
		return obj, nil
	}
	out := &cachedNode{name: n.Name, resourceVersion: n.ResourceVersion, uid: n.UID, labels: n.Labels}
	for _, a := range n.Status.Addresses {
		if a.Type != v1.NodeInternalIP {
			continue
		}
		if out.internalIP == "" {
			out.internalIP = a.Address
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil && ip.Is4() && !out.routerID.IsValid() {
			out.routerID = ip
		}
	}
	return out, nil
}

// cachedNode is what the speaker's cache keeps of a Node: its labels
// (nodeSelectors, BGP peers) and the two addresses it reads, keyed like the
// Node. A slimmed Node struct took 768 bytes before its addresses and
// labels; this takes about 100.
type cachedNode struct {
	name, resourceVersion string
	uid                   types.UID
	labels                map[string]string
	// internalIP is the first InternalIP, where a join contacts the
	// node's speaker; "" when it has none.
	internalIP string
	// routerID is the first IPv4 InternalIP, the node's BGP router ID;
	// invalid when it has none.
	routerID netip.Addr
}

// sameAsRead reports whether the speaker reads n and o alike: the same
// Node (by UID), with the same labels and addresses.
func (n *cachedNode) sameAsRead(o *cachedNode) bool {
	return n.uid == o.uid && n.internalIP == o.internalIP && n.routerID == o.routerID && maps.Equal(n.labels, o.labels)
}

func (n *cachedNode) GetObjectMeta() metav1.Object {
	return &metav1.ObjectMeta{Name: n.name, UID: n.uid, ResourceVersion: n.resourceVersion, Labels: n.labels}
}

func (n *cachedNode) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

func (n *cachedNode) DeepCopyObject() runtime.Object {
	c := *n
	c.labels = maps.Clone(n.labels)
	return &c
}

// nodeStore reads the Node informer's store, which holds cachedNodes.
type nodeStore struct{ store cache.Store }

// get is the named Node; nil when the cache has none.
func (n nodeStore) get(name string) *cachedNode {
	obj, found, err := n.store.GetByKey(name)
	if err != nil || !found {
		return nil
	}
	node, _ := obj.(*cachedNode)
	return node
}

// list is every cached Node.
func (n nodeStore) list() []*cachedNode { return listAs[*cachedNode](n.store) }

// listAs is every object in store that is a T: the transforms above make
// each store hold a type of the speaker's own.
func listAs[T any](store cache.Store) []T {
	objs := store.List()
	out := make([]T, 0, len(objs))
	for _, obj := range objs {
		if t, ok := obj.(T); ok {
			out = append(out, t)
		}
	}
	return out
}
