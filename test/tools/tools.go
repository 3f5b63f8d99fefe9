//go:build tools

// Package tools pins the control-plane commands built for tests.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
