package announcer

import (
	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

// Speaker metrics, served on the speaker's /metrics.
var (
	announcedAddresses = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Namespace: "ironlb", Subsystem: "speaker", Name: "announced_addresses",
		Help: "Addresses this node announces, by mode.", StabilityLevel: metrics.ALPHA,
	}, []string{"mode"})
	ownershipChanges = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace: "ironlb", Subsystem: "speaker", Name: "ownership_changes_total",
		Help: "Addresses this node started (acquired) or stopped (released) announcing.", StabilityLevel: metrics.ALPHA,
	}, []string{"change"})
	memberCount = metrics.NewGauge(&metrics.GaugeOpts{
		Namespace: "ironlb", Subsystem: "speaker", Name: "members",
		Help: "Alive speakers this node sees, itself included.", StabilityLevel: metrics.ALPHA,
	})
	partitioned = metrics.NewGauge(&metrics.GaugeOpts{
		Namespace: "ironlb", Subsystem: "speaker", Name: "partitioned",
		Help: "1 while this speaker is on the smaller side of a memberlist partition and holds back its layer2 and vip announcements.", StabilityLevel: metrics.ALPHA,
	})
	configStale = metrics.NewGauge(&metrics.GaugeOpts{
		Namespace: "ironlb", Subsystem: "speaker", Name: "config_stale",
		Help: "1 when ironlb-config is invalid or missing and the last good config is in force.", StabilityLevel: metrics.ALPHA,
	})
	keptAddresses = metrics.NewGauge(&metrics.GaugeOpts{
		Namespace: "ironlb", Subsystem: "speaker", Name: "kept_addresses",
		Help: "Addresses this node announces from a kept config (ironlb-config missing or invalid, or no longer covering them).", StabilityLevel: metrics.ALPHA,
	})
	kubeProxyAnswersARPGauge = metrics.NewGauge(&metrics.GaugeOpts{
		Namespace: "ironlb", Subsystem: "speaker", Name: "kube_proxy_answers_arp",
		Help: "1 while kube-system/kube-proxy says IPVS mode without strictARP, where every node answers ARP for every LoadBalancer IP.", StabilityLevel: metrics.ALPHA,
	})
	eventsWaiting = metrics.NewGauge(&metrics.GaugeOpts{
		Namespace: "ironlb", Subsystem: "speaker", Name: "events_waiting",
		Help: "Addresses whose Events (Announcing, AnnouncedFromKeptConfig, NoLocalEndpoint) wait for their turn to be written, at the API client's 5 a second.", StabilityLevel: metrics.ALPHA,
	})
	syncDuration = metrics.NewHistogramVec(&metrics.HistogramOpts{
		Namespace: "ironlb", Subsystem: "speaker", Name: "sync_duration_seconds",
		Help:    "Time a sync took, by kind: all (a Node, config or partition change gathers everything), members (a membership change) or service (one Service's or its EndpointSlices' change).",
		Buckets: metrics.ExponentialBuckets(0.00005, 2, 18), StabilityLevel: metrics.ALPHA,
	}, []string{"kind"})
	bgpSessionUp = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Namespace: "ironlb", Name: "bgp_session_up",
		Help: "1 when the BGP session with a peer is established on a node, 0 when it is not.", StabilityLevel: metrics.ALPHA,
	}, []string{"peer", "node"})
	// GratuitousPackets counts gratuitous ARP and unsolicited neighbor
	// advertisements; the layer2 protocol increments it.
	GratuitousPackets = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace: "ironlb", Subsystem: "speaker", Name: "gratuitous_packets_total",
		Help: "Gratuitous ARP and unsolicited neighbor advertisements sent, by interface and family.", StabilityLevel: metrics.ALPHA,
	}, []string{"interface", "family"})
)

func init() {
	legacyregistry.MustRegister(announcedAddresses, ownershipChanges, memberCount, syncDuration, partitioned, configStale, keptAddresses, eventsWaiting, GratuitousPackets, bgpSessionUp, kubeProxyAnswersARPGauge)
}
