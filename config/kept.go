package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// An address a Service holds is announced until the Service releases it,
// whatever happens to ironlb-config: a deleted or invalid ConfigMap, or a
// pool shrunk below a held address, never withdraws it. ironlb-ccm keeps the
// configs that say how such addresses are announced in a ConfigMap of their
// own (LastGoodName), so a speaker that starts while ironlb-config is
// missing or invalid announces from the API, not from memory.

// LastGoodName names the ConfigMap, beside configName, where ironlb-ccm
// keeps the last config it accepted and the earlier ones still needed.
func LastGoodName(configName string) string { return configName + "-last-good" }

// earlierKeyPrefix starts the keys of the earlier configs in the last-good
// ConfigMap: earlier-1.yaml is the most recent.
const earlierKeyPrefix = "earlier-"

// KeptConfig is a config ironlb-ccm accepted, with the text it came from.
type KeptConfig struct {
	Text   string
	Config *Config
}

// Kept is what the last-good ConfigMap holds.
type Kept struct {
	// LastGood is the last config ironlb-ccm accepted; nil before the first.
	LastGood *KeptConfig
	// Earlier are configs accepted before LastGood, most recent first. Each
	// stays while it is the newest config covering an address a Service
	// still holds that LastGood does not cover.
	Earlier []KeptConfig
}

// Accept makes next the last good config; the one it replaces becomes the
// most recent earlier config. Accepting the same text again changes nothing.
func (k *Kept) Accept(next KeptConfig) {
	if k.LastGood != nil {
		if k.LastGood.Text == next.Text {
			return
		}
		k.Earlier = append([]KeptConfig{*k.LastGood}, k.Earlier...)
	}
	k.LastGood = &next
}

// Prune drops the earlier configs that no longer say how any of held is
// announced: those that are not the newest config covering some address of
// held.
func (k *Kept) Prune(held []netip.Addr) {
	layers := NewLayers(nil, "", k)
	first := len(layers) - len(k.Earlier) // the index of Earlier[0]
	needed := make([]bool, len(k.Earlier))
	for _, ip := range held {
		if _, i := layers.PoolFor(ip); i >= first {
			needed[i-first] = true
		}
	}
	kept := k.Earlier[:0]
	for i, e := range k.Earlier {
		if needed[i] {
			kept = append(kept, e)
		}
	}
	clear(k.Earlier[len(kept):])
	k.Earlier = kept
}

// Data is the last-good ConfigMap's data for k.
func (k *Kept) Data() map[string]string {
	data := make(map[string]string, 1+len(k.Earlier))
	if k.LastGood != nil {
		data[ConfigMapKey] = k.LastGood.Text
	}
	for i, e := range k.Earlier {
		data[earlierKey(i)] = e.Text
	}
	return data
}

func earlierKey(i int) string { return earlierKeyPrefix + strconv.Itoa(i+1) + ".yaml" }

// ParseKept reads a last-good ConfigMap's data. A config that no longer
// parses (written by another ironlb version) is left out and reported; the
// others are kept.
func ParseKept(data map[string]string) (*Kept, error) {
	k := &Kept{}
	var problems []string
	if text, ok := data[ConfigMapKey]; ok {
		if cfg, errs := Parse([]byte(text)); len(errs) > 0 {
			problems = append(problems, fmt.Sprintf("%s: %v", ConfigMapKey, errs.ToAggregate()))
		} else {
			k.LastGood = &KeptConfig{Text: text, Config: cfg}
		}
	}
	type numbered struct {
		n   int
		key string
	}
	var keys []numbered
	for key := range data {
		n, ok := earlierIndex(key)
		if ok {
			keys = append(keys, numbered{n, key})
		}
	}
	slices.SortFunc(keys, func(a, b numbered) int { return a.n - b.n })
	for _, key := range keys {
		cfg, errs := Parse([]byte(data[key.key]))
		if len(errs) > 0 {
			problems = append(problems, fmt.Sprintf("%s: %v", key.key, errs.ToAggregate()))
			continue
		}
		k.Earlier = append(k.Earlier, KeptConfig{Text: data[key.key], Config: cfg})
	}
	if len(problems) > 0 {
		return k, fmt.Errorf("kept configs left out: %s", strings.Join(problems, "; "))
	}
	return k, nil
}

func earlierIndex(key string) (int, bool) {
	num, ok := strings.CutPrefix(key, earlierKeyPrefix)
	if !ok {
		return 0, false
	}
	num, ok = strings.CutSuffix(num, ".yaml")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(num)
	return n, err == nil && n > 0
}

// Layers are the configs an address is announced by, in order: the first
// that covers it says how. The speaker builds them from ironlb-config (when
// present and valid) and the kept configs.
type Layers []*Config

// NewLayers orders the configs the speaker announces by: current (nil when
// ironlb-config is missing or invalid), then the last good config and the
// earlier ones. currentText skips a last good config identical to current.
func NewLayers(current *Config, currentText string, kept *Kept) Layers {
	var l Layers
	if current != nil {
		l = append(l, current)
	}
	if kept == nil {
		return l
	}
	if kept.LastGood != nil && (current == nil || kept.LastGood.Text != currentText) {
		l = append(l, kept.LastGood.Config)
	}
	for _, e := range kept.Earlier {
		l = append(l, e.Config)
	}
	return l
}

// PoolFor returns the pool of the first layer covering ip and that layer's
// index, or nil and -1.
func (l Layers) PoolFor(ip netip.Addr) (*Pool, int) {
	for i, cfg := range l {
		if p := cfg.PoolFor(ip); p != nil {
			return p, i
		}
	}
	return nil, -1
}

// BGP returns the bgp section the sessions follow: the first layer's when it
// has one, otherwise that of the first layer in used (the layers announcing
// some address in bgp mode) that has one; nil when none does.
func (l Layers) BGP(used []int) *BGP {
	if len(l) > 0 && l[0].BGP != nil {
		return l[0].BGP
	}
	for i, cfg := range l {
		if cfg.BGP != nil && slices.Contains(used, i) {
			return cfg.BGP
		}
	}
	return nil
}
