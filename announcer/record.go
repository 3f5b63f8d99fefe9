package announcer

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/config"
)

// What the speaker tells about what it announces: log lines, Events on the
// Services, metrics and its node's SpeakerStatus.

// eventCacheSize is how many objects the Event recorder remembers, in each
// of its caches (newEventRecorder).
const eventCacheSize = 512

// newEventRecorder records nodeName's speaker's Events through client.
func newEventRecorder(client kubernetes.Interface, nodeName string) record.EventRecorder {
	// client-go's spam filter lets 25 Events per object through, then one
	// per 5 min: on a node whose BGP sessions flapped a few times, the next
	// BGPSessionDown would be lost. 100 leaves room for a few dozen
	// flaps of every peer.
	//
	// Its three caches (spam filter, aggregation, counts) keep 4,096
	// objects each by default: about 4 MiB of a speaker's live heap once
	// it has announced 10,000 Services. 512 keeps a node's recent ones;
	// an Event about an object fallen out of them starts a new Event
	// object rather than counting on the old one.
	broadcaster := record.NewBroadcaster(record.WithCorrelatorOptions(record.CorrelatorOptions{BurstSize: 100, LRUCacheSize: eventCacheSize}))
	broadcaster.StartStructuredLogging(3)
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	return broadcaster.NewRecorder(scheme.Scheme, v1.EventSource{Component: "ironlb-speaker", Host: nodeName})
}

// recordChanges logs, counts and reports ownership changes on this node.
// Its cost grows with what this node announces, not with the Services.
func (s *Speaker) recordChanges(want map[netip.Addr]announcement) {
	s.mu.Lock()
	before := s.announced
	s.announced = want
	s.mu.Unlock()
	// nowListed are bgp addresses this node already advertised as part of
	// their pool that now depend on the node (a Local Service came): their
	// Services get the Event the pool's addresses go without.
	var acquired, nowListed, kept, unserved []netip.Addr
	keptCount := 0
	for ip, a := range want {
		prev, had := before[ip]
		switch {
		case !had || prev.iface != a.iface || prev.mode != a.mode:
			acquired = append(acquired, ip)
		case prev.wholePool && !a.wholePool:
			nowListed = append(nowListed, ip)
		}
		if a.fromKept {
			keptCount++
			if !had || !prev.fromKept || prev.pool != a.pool {
				kept = append(kept, ip)
			}
		}
		if len(a.unserved) > 0 && (!had || !slices.Equal(prev.unserved, a.unserved)) {
			unserved = append(unserved, ip)
		}
	}
	for _, ip := range slices.SortedFunc(slices.Values(acquired), netip.Addr.Compare) {
		a := want[ip]
		ownershipChanges.WithLabelValues("acquired").Inc()
		klog.InfoS("Announcing", "ip", ip, "interface", a.iface, "mode", a.mode, "services", a.services)
		s.dueEvents.add(ip, eventAnnouncing)
	}
	for _, ip := range nowListed {
		s.dueEvents.add(ip, eventAnnouncing)
	}
	for _, ip := range slices.SortedFunc(slices.Values(kept), netip.Addr.Compare) {
		a := want[ip]
		klog.InfoS("Announcing from a kept config", "ip", ip, "pool", a.pool, "mode", a.mode)
		s.dueEvents.add(ip, eventKept)
	}
	keptAddresses.Set(float64(keptCount))
	for _, ip := range slices.SortedFunc(slices.Values(unserved), netip.Addr.Compare) {
		klog.InfoS("No node has a ready endpoint of every service sharing an address; announcing for the most", "ip", ip, "unserved", want[ip].unserved)
		s.dueEvents.add(ip, eventUnserved)
	}
	for ip, a := range before {
		if _, still := want[ip]; !still {
			ownershipChanges.WithLabelValues("released").Inc()
			klog.InfoS("Stopped announcing", "ip", ip, "interface", a.iface, "mode", a.mode)
		}
	}
	if s.opts.Status != nil {
		s.opts.Status.SetAnnouncements(statusOf(want))
	}
}

// statusOf is what a node's SpeakerStatus says it announces: each address,
// except the bgp addresses every selected node advertises alike, which are
// named by their pools.
func statusOf(want map[netip.Addr]announcement) ([]v1alpha1.Announcement, []string) {
	list := make([]v1alpha1.Announcement, 0, len(want))
	pools := map[string]bool{}
	for ip, a := range want {
		if a.wholePool {
			pools[a.pool] = true
			continue
		}
		list = append(list, v1alpha1.Announcement{IP: ip.String(), Mode: string(a.mode), Interface: a.iface, Services: a.services})
	}
	return list, slices.Sorted(maps.Keys(pools))
}

// announcingEvent records on the Services holding ip that this node
// announces it, and how.
func (s *Speaker) announcingEvent(ip netip.Addr, a announcement) {
	msg := fmt.Sprintf("%s announces %s on %s (%s)", s.opts.NodeName, ip, a.iface, a.mode)
	switch {
	case a.mode == config.ModeBGP:
		msg = fmt.Sprintf("%s announces %s to its BGP peers (bgp)", s.opts.NodeName, ip)
	case a.iface == "":
		msg = fmt.Sprintf("%s announces %s on its off-subnet interface (%s)", s.opts.NodeName, ip, a.mode)
	}
	for _, svc := range s.servicesByKey(a.services) {
		s.recorder.Event(svc.eventTarget(), v1.EventTypeNormal, "Announcing", msg)
	}
}

// keptEvent warns the Services holding ip that this node announces it
// from a kept config. Nothing is withdrawn for it: the address is held
// until its Services release it.
func (s *Speaker) keptEvent(ip netip.Addr, a announcement) {
	for _, svc := range s.servicesByKey(a.services) {
		s.recorder.Eventf(svc.eventTarget(), v1.EventTypeWarning, "AnnouncedFromKeptConfig",
			"%s is in no pool of a valid %s; %s announces it as pool %s of the last config that covered it (%s) until the service releases it",
			ip, s.opts.ConfigName, s.opts.NodeName, a.pool, config.LastGoodName(s.opts.ConfigName))
	}
}

// unservedEvent warns the Services sharing ip with externalTrafficPolicy
// Local whose traffic this node drops: no node has a ready endpoint of
// every Service holding the address, and this one serves the most of them.
func (s *Speaker) unservedEvent(ip netip.Addr, a announcement) {
	for _, svc := range s.servicesByKey(a.unserved) {
		s.recorder.Eventf(svc.eventTarget(), v1.EventTypeWarning, "NoLocalEndpoint",
			"no node has a ready endpoint of every service sharing %s (externalTrafficPolicy Local); %s announces it for the others, and this service's traffic is dropped there until it has a ready endpoint on that node",
			ip, s.opts.NodeName)
	}
}
