//go:build tools

// Package tools pins the peer commands the benchmarks run: MetalLB's
// controller (bench-e2e, bench-failover) and its speaker (bench-failover).
package tools

import (
	_ "go.universe.tf/metallb/controller"
	_ "go.universe.tf/metallb/speaker"
)
