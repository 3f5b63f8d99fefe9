// Package framework is ironlb's integration-test harness.
//
// It runs a real etcd and kube-apiserver on loopback (StartControlPlane,
// NewForTest), and supervises the other processes a test needs — ironlb's own
// binaries, routing daemons, possibly inside network namespaces — through
// Process. Nothing here reaches beyond 127.0.0.1/::1 or needs containers.
//
// With Options.Netns the control plane runs inside a network namespace
// instead (test/netlab builds those); the test process then talks to it
// through NetnsDialer, which opens sockets inside the namespace, so it still
// never needs an address or route of its own.
//
// The kube-apiserver binary is built from test/tools by hack/ensure-apiserver.sh
// (make test runs it); etcd comes from the distribution (hack/ensure-deps.sh).
//
// There is no kube-controller-manager: namespaces are never finalized after a
// delete, ServiceAccounts are not created automatically, and nothing else
// reconciles. Tests create every object they rely on.
package framework
