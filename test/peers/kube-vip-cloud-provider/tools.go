//go:build tools

// Package tools pins the peer command bench-e2e runs.
package tools

import _ "github.com/kube-vip/kube-vip-cloud-provider"
