// Package config parses and validates ironlb's configuration: the address
// pools and the BGP section kept in the ironlb-config ConfigMap.
// Both the cloud provider and the speaker read it through this package, so a
// config that one accepts the other accepts too.
package config

import (
	"encoding/json"
	"net/netip"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/ipam"
)

// Where the configuration lives by default.
const (
	DefaultNamespace     = "ironlb-system"
	DefaultConfigMapName = "ironlb-config"
	ConfigMapKey         = "config.yaml"
)

// Mode says how the speaker attracts traffic for a pool's addresses.
type Mode string

const (
	ModeLayer2 Mode = "layer2"
	ModeVIP    Mode = "vip"
	ModeBGP    Mode = "bgp"
)

// Modes lists the valid modes in the order the docs present them.
var Modes = []Mode{ModeLayer2, ModeVIP, ModeBGP}

// File is the document stored under config.yaml, as written by the operator.
type File struct {
	Pools []PoolFile `json:"pools"`
	// BGP is validated by the speaker's BGP support; kept verbatim here so a
	// config written for a newer speaker is not rejected by the provider.
	BGP json.RawMessage `json:"bgp,omitempty"`
}

// PoolFile is one entry of pools as written by the operator.
type PoolFile struct {
	Name              string                `json:"name"`
	Addresses         []string              `json:"addresses"`
	Mode              Mode                  `json:"mode,omitempty"`
	AutoAssign        *bool                 `json:"autoAssign,omitempty"`
	AvoidBuggyIPs     bool                  `json:"avoidBuggyIPs,omitempty"`
	Priority          int32                 `json:"priority,omitempty"`
	Namespaces        []string              `json:"namespaces,omitempty"`
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	ServiceSelector   *metav1.LabelSelector `json:"serviceSelector,omitempty"`
	Interfaces        []string              `json:"interfaces,omitempty"`
	NodeSelector      *metav1.LabelSelector `json:"nodeSelector,omitempty"`
}

// Config is a validated configuration, ready to use.
type Config struct {
	Pools []*Pool
	// BGP is the validated bgp section, nil when there is none.
	BGP *BGP

	bgpRaw     json.RawMessage
	byName     map[string]*Pool
	autoAssign []*Pool
}

// Pool is a validated pool with its addresses parsed and selectors compiled.
type Pool struct {
	Name          string
	Ranges        []ipam.Range
	Mode          Mode
	AutoAssign    bool
	AvoidBuggyIPs bool
	Priority      int32
	// Namespaces is empty when every namespace may use the pool.
	Namespaces        map[string]bool
	NamespaceSelector labels.Selector
	ServiceSelector   labels.Selector
	Interfaces        []string
	NodeSelector      labels.Selector
}

// Pool returns the pool called name, or nil.
func (c *Config) Pool(name string) *Pool {
	return c.byName[name]
}

// PoolFor returns the pool whose ranges hold ip, or nil. Ranges never
// overlap, so there is at most one.
func (c *Config) PoolFor(ip netip.Addr) *Pool {
	for _, p := range c.Pools {
		for _, r := range p.Ranges {
			if r.Contains(ip) {
				return p
			}
		}
	}
	return nil
}

// PoolSpecs returns the pools in the form the allocator takes.
func (c *Config) PoolSpecs() []ipam.PoolSpec {
	specs := make([]ipam.PoolSpec, 0, len(c.Pools))
	for _, p := range c.Pools {
		specs = append(specs, ipam.PoolSpec{Name: p.Name, Ranges: p.Ranges, AvoidBuggyIPs: p.AvoidBuggyIPs})
	}
	return specs
}

// Empty is the configuration in force when no ConfigMap exists: no pools.
func Empty() *Config {
	return &Config{byName: map[string]*Pool{}}
}
