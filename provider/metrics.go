package provider

import (
	"math/big"
	"sync"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

// Metrics, served on the cloud-controller-manager's /metrics.
var (
	poolAddresses = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Namespace: "ironlb", Name: "pool_addresses",
		Help:           "Number of addresses in a pool, per IP family.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"pool", "family"})
	poolAddressesInUse = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Namespace: "ironlb", Name: "pool_addresses_in_use",
		Help:           "Number of a pool's addresses held by services, per IP family.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"pool", "family"})
	allocations = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace: "ironlb", Name: "allocations_total",
		Help:           "Address allocations by result: allocated, released or failed.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"result"})
	configStale = metrics.NewGauge(&metrics.GaugeOpts{
		Namespace: "ironlb", Name: "config_stale",
		Help:           "1 when the ConfigMap is invalid or missing and the last good config is still in force.",
		StabilityLevel: metrics.ALPHA,
	})
	configReloads = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace: "ironlb", Name: "config_reloads_total",
		Help:           "Config reloads by result: applied or invalid.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"result"})
	configLastApplied = metrics.NewGauge(&metrics.GaugeOpts{
		Namespace: "ironlb", Name: "config_last_applied_timestamp_seconds",
		Help:           "When a config was last put in force.",
		StabilityLevel: metrics.ALPHA,
	})
)

func init() {
	legacyregistry.MustRegister(poolAddresses, poolAddressesInUse, allocations, configStale, configReloads, configLastApplied)
}

// poolMetricsMu keeps one reset-and-fill from interleaving with another.
var poolMetricsMu sync.Mutex

// updatePoolMetrics publishes the allocator's per-pool figures. Vectors are
// reset first so that a removed pool disappears.
func (c *Cloud) updatePoolMetrics() {
	stats := c.alloc.Stats()
	poolMetricsMu.Lock()
	defer poolMetricsMu.Unlock()
	poolAddresses.Reset()
	poolAddressesInUse.Reset()
	for _, s := range stats {
		size, _ := new(big.Float).SetInt(s.Size).Float64()
		poolAddresses.WithLabelValues(s.Pool, s.Family.String()).Set(size)
		poolAddressesInUse.WithLabelValues(s.Pool, s.Family.String()).Set(float64(s.InUse))
	}
}
