package report

import (
	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

var (
	statusWrites = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace: "ironlb", Subsystem: "speaker_status", Name: "writes_total",
		Help: "Writes of this node's SpeakerStatus object, by result (ok, error).", StabilityLevel: metrics.ALPHA,
	}, []string{"result"})
	statusAnnouncements = metrics.NewGauge(&metrics.GaugeOpts{
		Namespace: "ironlb", Subsystem: "speaker_status", Name: "announcements",
		Help: "Announcements listed in this node's SpeakerStatus as last written.", StabilityLevel: metrics.ALPHA,
	})
	departedSweeps = metrics.NewCounter(&metrics.CounterOpts{
		Namespace: "ironlb", Subsystem: "speaker_status", Name: "departed_marked_total",
		Help: "Departed speakers' SpeakerStatus objects this speaker marked Unreachable.", StabilityLevel: metrics.ALPHA,
	})
)

func init() {
	legacyregistry.MustRegister(statusWrites, statusAnnouncements, departedSweeps)
}
