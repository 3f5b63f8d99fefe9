// Package metricsdoc keeps docs/metrics.md and the Grafana dashboard honest.
//
// For each of ironlb-ccm and ironlb-speaker, the tests build a small program
// that imports exactly the packages the binary's main package imports, plus
// registrydump, and run it: it lists every metric in component-base's
// legacyregistry after init, vectors that have no series yet included. The
// tests then check that every ironlb_ metric has a row in docs/metrics.md,
// under its binary, with its type and labels; that every ironlb_ name the
// page or the dashboard mentions exists; and that the dashboard is well
// formed and shipped unchanged in the Helm chart. Since the listing sees only
// what is registered by the end of init, every ironlb_ metric defined in the
// binaries' own source (an options literal or NewDesc) must be in it.
//
// Needs the go command (it runs `go list` and `go run`), nothing else: no
// root, no control plane.
package metricsdoc
