package integration

import (
	"testing"

	"github.com/ironlb/ironlb/test/framework"
)

// compatConfig has pools named as the importer names them after their
// source: a MetalLB IPAddressPool, an OpenELB Eip, a PureLB ServiceGroup.
// Only default hands out addresses unasked, so an annotation that is not
// honoured shows as an address from default.
const compatConfig = `
pools:
- name: default
  addresses: [203.0.113.10-203.0.113.19]
- name: legacy
  addresses: [198.51.100.10-198.51.100.19]
  autoAssign: false
- name: layer2-eip
  addresses: [198.51.100.20-198.51.100.29]
  autoAssign: false
- name: routed
  addresses: [198.51.100.30-198.51.100.39]
  autoAssign: false
`

// Services written for MetalLB, OpenELB or PureLB get what those asked for.
func TestCompatAnnotations(t *testing.T) {
	e := newEnv(t, framework.Options{}, compatConfig)
	e.startCCM(framework.CCMOptions{})

	e.createService(lbService("default", "metallb-ip", withAnnotation("metallb.io/loadBalancerIPs", "198.51.100.15")))
	e.expectIPs("default", "metallb-ip", "198.51.100.15")
	e.createService(lbService("default", "metallb-old-pool", withAnnotation("metallb.universe.tf/address-pool", "legacy")))
	e.expectIPs("default", "metallb-old-pool", "198.51.100.10")
	e.createService(lbService("default", "openelb-eip", withAnnotation("eip.openelb.kubesphere.io/v1alpha2", "layer2-eip")))
	e.expectIPs("default", "openelb-eip", "198.51.100.20")
	e.createService(lbService("default", "openelb-ip", withAnnotation("eip.openelb.kubesphere.io/v1alpha1", "198.51.100.25")))
	e.expectIPs("default", "openelb-ip", "198.51.100.25")
	e.createService(lbService("default", "purelb-group", withAnnotation("purelb.io/service-group", "routed")))
	e.expectIPs("default", "purelb-group", "198.51.100.30")
	e.createService(lbService("default", "purelb-ip", withAnnotation("purelb.io/addresses", "198.51.100.35")))
	e.expectIPs("default", "purelb-ip", "198.51.100.35")

	// Sharing keys of MetalLB and PureLB are one key space: the value counts.
	e.createService(lbService("default", "dns-tcp", withAnnotation("metallb.io/allow-shared-ip", "dns"), withPorts("TCP/53")))
	e.expectIPs("default", "dns-tcp", "203.0.113.10")
	e.createService(lbService("default", "dns-udp", withAnnotation("purelb.io/allow-shared-ip", "dns"), withPorts("UDP/53")))
	e.expectIPs("default", "dns-udp", "203.0.113.10")
	e.createService(lbService("default", "dns-old", withAnnotation("metallb.universe.tf/allow-shared-ip", "dns"), withPorts("TCP/853")))
	e.expectIPs("default", "dns-old", "203.0.113.10")
}

// ironlb's annotations outrank foreign ones, foreign ones rank MetalLB,
// its older spelling, OpenELB, PureLB; every override is a Warning Event, and
// a refusal names the annotation the bad value came from.
func TestCompatPrecedence(t *testing.T) {
	e := newEnv(t, framework.Options{}, compatConfig)
	e.startCCM(framework.CCMOptions{})

	e.createService(lbService("default", "both-pools", withAnnotation("ironlb.io/pool", "routed"), withAnnotation("metallb.io/address-pool", "legacy")))
	e.expectIPs("default", "both-pools", "198.51.100.30")
	e.expectEvent("default", "both-pools", "AnnotationOverridden",
		`annotation metallb.io/address-pool: "legacy" is ignored; annotation ironlb.io/pool: "routed" takes precedence`)

	e.createService(lbService("default", "foreign-pools", withAnnotation("purelb.io/service-group", "routed"),
		withAnnotation("eip.openelb.kubesphere.io/v1alpha2", "layer2-eip")))
	e.expectIPs("default", "foreign-pools", "198.51.100.20")
	e.expectEvent("default", "foreign-pools", "AnnotationOverridden",
		`annotation purelb.io/service-group: "routed" is ignored; annotation eip.openelb.kubesphere.io/v1alpha2: "layer2-eip" takes precedence`)

	e.createService(lbService("default", "both-ips", withAnnotation("ironlb.io/load-balancer-ips", "198.51.100.11"),
		withAnnotation("metallb.universe.tf/loadBalancerIPs", "198.51.100.12")))
	e.expectIPs("default", "both-ips", "198.51.100.11")
	e.expectEvent("default", "both-ips", "AnnotationOverridden",
		`annotation metallb.universe.tf/loadBalancerIPs: "198.51.100.12" is ignored; annotation ironlb.io/load-balancer-ips: "198.51.100.11" takes precedence`)

	e.createService(lbService("default", "bad-ip", withAnnotation("metallb.io/loadBalancerIPs", "198.51.100.300")))
	e.expectEvent("default", "bad-ip", "AllocationFailed", `annotation metallb.io/loadBalancerIPs: "198.51.100.300" is not an IP address`)
	e.expectNoIP("default", "bad-ip")
	e.createService(lbService("default", "bad-group", withAnnotation("purelb.io/service-group", "nope")))
	e.expectEvent("default", "bad-group", "AllocationFailed", `annotation purelb.io/service-group: pool "nope" does not exist`)
	e.expectNoIP("default", "bad-group")
}
