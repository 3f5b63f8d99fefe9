package announcer

import (
	"net/netip"
	"slices"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/tools/cache"
)

// Which informer changes cost a sync, and under which queue key: only those
// that can move an announcement.

// queueChanges queues the syncs the informers' changes cost: Node
// heartbeats, ClusterIP Services and the EndpointSlices of Services that
// are not Local load balancers are the bulk of the events a cluster sends,
// and cost none. A Node's coming or new address also wakes the join loop.
func (s *Speaker) queueChanges(svcInformer, sliceInformer, nodeInformer, cmInformer, keptInformer cache.SharedIndexInformer) {
	for _, h := range []struct {
		informer cache.SharedIndexInformer
		matters  func(old, cur any) bool
		key      func(obj any) string
		// index, when set, sees every change first (before it is
		// queued or filtered out).
		index func(old, cur any)
	}{
		{svcInformer, s.serviceChangeMatters, serviceQueueKey, nil},
		{sliceInformer, s.sliceChangeMatters, sliceQueueKey, s.indexSlice},
		{nodeInformer, nodeChangeMatters, syncAll, nil},
		{cmInformer, anyChange, syncAll, nil},
		{keptInformer, anyChange, syncAll, nil},
	} {
		index := h.index
		if index == nil {
			index = func(_, _ any) {}
		}
		registration, _ := h.informer.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
			AddFunc: func(obj any, isInInitialList bool) {
				index(nil, obj)
				// Run's first full sync covers the initial list: ten
				// thousand Services queued one by one would each sync
				// nothing, and leave the queue's sets that large.
				if !isInInitialList && h.matters(nil, obj) {
					s.queue.Add(h.key(obj))
				}
			},
			UpdateFunc: func(old, cur any) {
				index(old, cur)
				if h.matters(old, cur) {
					s.queue.Add(h.key(cur))
				}
			},
			DeleteFunc: func(obj any) {
				if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
					obj = d.Obj
				}
				index(obj, nil)
				if h.matters(obj, nil) {
					s.queue.Add(h.key(obj))
				}
			},
		})
		if h.index != nil && registration != nil {
			// The first sync reads the index: wait until the handler has
			// seen every object of the initial list.
			s.synced = append(s.synced, registration.HasSyncedChecker())
		}
	}
	_, _ = nodeInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { s.wakeJoin() },
		UpdateFunc: func(old, cur any) {
			if o, c := old.(*cachedNode), cur.(*cachedNode); o.internalIP != c.internalIP {
				s.wakeJoin()
			}
		},
	})
}

func anyChange(_, _ any) bool { return true }

// The queue key an object's change syncs: a Service or EndpointSlice its
// Service alone, anything else everything.
func syncAll(any) string { return syncKey }

func serviceQueueKey(obj any) string {
	key, err := cache.MetaNamespaceKeyFunc(obj)
	if err != nil {
		return syncKey
	}
	return serviceKeyPrefix + key
}

func sliceQueueKey(obj any) string {
	key := sliceService(obj)
	if key == "" {
		return syncKey
	}
	return serviceKeyPrefix + key
}

// indexSlice keeps slicesOf up to date with one slice event.
func (s *Speaker) indexSlice(old, cur any) {
	o, _ := old.(*endpointSliceNodes)
	c, _ := cur.(*endpointSliceNodes)
	s.slicesOf.update(o, c)
}

// sliceService is the slice's Service, namespace/name; "" when it has none.
func sliceService(obj any) string {
	sl, ok := obj.(*endpointSliceNodes)
	if !ok || sl.service == "" {
		return ""
	}
	return sl.namespace.Value() + "/" + sl.service
}

// nodeChangeMatters: a Node added or removed, or its labels (nodeSelector,
// BGP peers) or addresses (router ID) changed; not a status heartbeat.
func nodeChangeMatters(old, cur any) bool {
	o, ok1 := old.(*cachedNode)
	c, ok2 := cur.(*cachedNode)
	return !ok1 || !ok2 || !o.sameAsRead(c)
}

// announcedView is what the speaker reads of a Service: nil when it
// announces nothing for it.
func (s *Speaker) announcedView(obj any) *announcedService {
	svc, ok := obj.(*cachedService)
	if !ok || !svc.servedBy(s.opts.Filter) || len(svc.ips) == 0 {
		return nil
	}
	return &announcedService{ips: svc.ips, local: svc.local}
}

type announcedService struct {
	ips   []netip.Addr
	local bool
}

// serviceChangeMatters: a Service ironlb announces for came, went, or
// changed its addresses or traffic policy.
func (s *Speaker) serviceChangeMatters(old, cur any) bool {
	o, c := s.announcedView(old), s.announcedView(cur)
	if o == nil || c == nil {
		return o != c
	}
	return o.local != c.local || !slices.Equal(o.ips, c.ips)
}

// sliceChangeMatters: an EndpointSlice of a Local Service ironlb announces
// for, whose endpoints' nodes or readiness changed.
func (s *Speaker) sliceChangeMatters(old, cur any) bool {
	o, _ := old.(*endpointSliceNodes)
	c, _ := cur.(*endpointSliceNodes)
	ref := c
	if ref == nil {
		ref = o
	}
	if ref == nil {
		return true
	}
	svc := s.serviceByKey(ref.namespace.Value() + "/" + ref.service)
	if svc == nil {
		return false // its Service's own event syncs when it comes
	}
	if v := s.announcedView(svc); v == nil || !v.local {
		return false
	}
	return o == nil || c == nil || !slices.Equal(o.ready, c.ready) // handles compare as their strings do
}

// readyOnNodes lists the nodes with a ready endpoint of sl, sorted, each
// once.
func readyOnNodes(sl *discoveryv1.EndpointSlice) []string {
	var nodes []string
	for _, ep := range sl.Endpoints {
		if ep.NodeName != nil && (ep.Conditions.Ready == nil || *ep.Conditions.Ready) {
			nodes = append(nodes, *ep.NodeName)
		}
	}
	slices.Sort(nodes)
	return slices.Compact(nodes)
}
