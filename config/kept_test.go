package config

import (
	"maps"
	"net/netip"
	"slices"
	"testing"
)

func kept(t *testing.T, text string) KeptConfig {
	t.Helper()
	cfg, errs := Parse([]byte(text))
	if len(errs) > 0 {
		t.Fatalf("Parse(%q): %v", text, errs)
	}
	return KeptConfig{Text: text, Config: cfg}
}

const (
	wide   = "pools:\n- {name: a, addresses: [203.0.113.0/28]}\n"
	narrow = "pools:\n- {name: a, addresses: [203.0.113.0/30]}\n"
	moved  = "pools:\n- {name: b, addresses: [198.51.100.0/28], mode: vip}\n"
	bgpCfg = `pools:
- {name: r, addresses: [203.0.113.64/28], mode: bgp}
bgp:
  localASN: 64512
  peers: [{name: r1, address: 198.51.100.1, asn: 64513}]
`
)

func texts(k *Kept) []string {
	var out []string
	if k.LastGood != nil {
		out = append(out, k.LastGood.Text)
	}
	for _, e := range k.Earlier {
		out = append(out, e.Text)
	}
	return out
}

func TestKeptAcceptAndPrune(t *testing.T) {
	addr := netip.MustParseAddr
	tests := []struct {
		name     string
		accepted []string
		held     []netip.Addr
		want     []string // last good, then the earlier ones
	}{
		{"first config", []string{wide}, nil, []string{wide}},
		{"same text twice is one config", []string{wide, wide}, []netip.Addr{addr("203.0.113.9")}, []string{wide}},
		{"shrunk below a held address: the wider config stays", []string{wide, narrow}, []netip.Addr{addr("203.0.113.9")}, []string{narrow, wide}},
		{"shrunk, nothing held outside: dropped", []string{wide, narrow}, []netip.Addr{addr("203.0.113.1")}, []string{narrow}},
		{"pool moved, then shrunk: only the newest covering config stays", []string{wide, narrow, moved},
			[]netip.Addr{addr("203.0.113.1"), addr("203.0.113.9")}, []string{moved, narrow, wide}},
		{"the newest covering config wins over older ones", []string{wide, moved, narrow, moved},
			[]netip.Addr{addr("203.0.113.1")}, []string{moved, narrow}},
		{"an address no config covers keeps nothing", []string{wide, moved}, []netip.Addr{addr("198.51.100.200")}, []string{moved}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := &Kept{}
			for _, text := range tt.accepted {
				k.Accept(kept(t, text))
			}
			k.Prune(tt.held)
			if got := texts(k); !slices.Equal(got, tt.want) {
				t.Errorf("kept %q, want %q", got, tt.want)
			}
		})
	}
}

func TestKeptDataRoundTrip(t *testing.T) {
	k := &Kept{}
	for _, text := range []string{bgpCfg, wide, narrow} {
		k.Accept(kept(t, text))
	}
	data := k.Data()
	if want := []string{"config.yaml", "earlier-1.yaml", "earlier-2.yaml"}; !slices.Equal(slices.Sorted(maps.Keys(data)), want) {
		t.Fatalf("keys %v, want %v", slices.Sorted(maps.Keys(data)), want)
	}
	back, err := ParseKept(data)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := texts(back), texts(k); !slices.Equal(got, want) {
		t.Errorf("round trip %q, want %q", got, want)
	}

	// Ten earlier configs sort by number, not by text; a config that no
	// longer parses is left out and reported, the rest kept.
	data = map[string]string{"config.yaml": narrow, "unrelated": "x", "earlier-x.yaml": "x"}
	for i := range 10 {
		data[earlierKey(i)] = wide
	}
	data[earlierKey(9)] = moved
	data[earlierKey(4)] = "pools: [{name: BAD}]"
	back, err = ParseKept(data)
	if err == nil {
		t.Error("a config that does not parse was not reported")
	}
	if got := texts(back); len(got) != 10 || got[0] != narrow || got[9] != moved {
		t.Errorf("parsed %d configs %q, want last good, 8 wide, then moved", len(got), got)
	}
}

func TestLayers(t *testing.T) {
	k := &Kept{}
	for _, text := range []string{bgpCfg, wide, narrow} {
		k.Accept(kept(t, text))
	}
	current := kept(t, moved)
	tests := []struct {
		name       string
		current    *KeptConfig
		ip         string
		wantPool   string
		wantLayer  int
		wantLayers int
	}{
		{"current covers", &current, "198.51.100.1", "b", 0, 4},
		{"last good covers what current does not", &current, "203.0.113.1", "a", 1, 4},
		{"an earlier config covers the rest", &current, "203.0.113.9", "a", 2, 4},
		{"config missing: the last good comes first", nil, "203.0.113.1", "a", 0, 3},
		{"current is the last good: not twice", k.LastGood, "203.0.113.66", "r", 2, 3},
		{"no layer covers", nil, "198.51.100.1", "", -1, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l Layers
			if tt.current != nil {
				l = NewLayers(tt.current.Config, tt.current.Text, k)
			} else {
				l = NewLayers(nil, "", k)
			}
			if len(l) != tt.wantLayers {
				t.Errorf("%d layers, want %d", len(l), tt.wantLayers)
			}
			pool, layer := l.PoolFor(netip.MustParseAddr(tt.ip))
			name := ""
			if pool != nil {
				name = pool.Name
			}
			if name != tt.wantPool || layer != tt.wantLayer {
				t.Errorf("PoolFor(%s) = %q in layer %d, want %q in layer %d", tt.ip, name, layer, tt.wantPool, tt.wantLayer)
			}
		})
	}

	// The sessions follow the first layer's bgp section, or else the
	// newest layer that still announces a bgp address.
	l := NewLayers(current.Config, current.Text, k)
	if got := l.BGP(nil); got != nil {
		t.Errorf("BGP with no bgp address = %v, want none", got)
	}
	if got := l.BGP([]int{3}); got == nil || got.LocalASN != 64512 {
		t.Errorf("BGP with layer 3 in use = %v, want the kept bgp section", got)
	}
	withBGP := kept(t, bgpCfg)
	if got := NewLayers(withBGP.Config, withBGP.Text, k).BGP(nil); got != withBGP.Config.BGP {
		t.Errorf("BGP = %v, want the current config's", got)
	}
}
