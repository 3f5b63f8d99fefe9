package config

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/ipam"
)

func TestParseValid(t *testing.T) {
	cfg, errs := Parse([]byte(`
pools:
- name: lan
  addresses:
  - 203.0.113.10-203.0.113.50
  - 198.51.100.0/28
  - 198.51.100.200
  - 2001:db8:1::/64
  mode: layer2
  priority: 5
  namespaces: [default]
  namespaceSelector: {matchLabels: {env: prod}}
  serviceSelector: {matchExpressions: [{key: tier, operator: In, values: [edge]}]}
  interfaces: [eth0]
  nodeSelector: {}
- name: manual
  addresses: [203.0.113.100]
  mode: bgp
  autoAssign: false
  avoidBuggyIPs: true
- name: defaulted
  addresses: [203.0.113.200-203.0.113.201]
bgp:
  localASN: 64515
`))
	if len(errs) > 0 {
		t.Fatalf("unexpected errors: %v", errs)
	}
	if got := cfg.PoolNames(); strings.Join(got, ",") != "lan,manual,defaulted" {
		t.Errorf("pools = %v", got)
	}
	lan := cfg.Pool("lan")
	if len(lan.Ranges) != 4 || lan.Mode != ModeLayer2 || !lan.AutoAssign || lan.Priority != 5 {
		t.Errorf("lan = %+v", lan)
	}
	if m := cfg.Pool("defaulted").Mode; m != ModeLayer2 {
		t.Errorf("default mode = %q, want layer2", m)
	}
	if cfg.Pool("manual").AutoAssign {
		t.Error("autoAssign: false ignored")
	}
	if cfg.BGP == nil || cfg.BGP.LocalASN != 64515 {
		t.Errorf("bgp section = %+v, want localASN 64515", cfg.BGP)
	}
	var order []string
	for _, p := range cfg.AutoAssignPools() {
		order = append(order, p.Name)
	}
	if strings.Join(order, ",") != "lan,defaulted" {
		t.Errorf("auto-assign order = %v, want lan (priority 5) then defaulted", order)
	}
	if err := lan.Admits("default", labels.Set{"env": "prod"}, labels.Set{"tier": "edge"}); err != nil {
		t.Errorf("lan refuses a matching service: %v", err)
	}
	if specs := cfg.PoolSpecs(); len(specs) != 3 || !specs[1].AvoidBuggyIPs {
		t.Errorf("pool specs = %+v", specs)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want []string // each must appear in one error, in this order
	}{
		{"bad address", "pools:\n- name: lan\n  addresses: [203.0.113.1, 203.0.113.300]\n",
			[]string{`pools[0].addresses[1]: Invalid value: "203.0.113.300": is not an IP, range or CIDR`}},
		{"reversed range", "pools:\n- name: lan\n  addresses: [203.0.113.50-203.0.113.10]\n",
			[]string{`pools[0].addresses[0]: Invalid value: "203.0.113.50-203.0.113.10": range is reversed`}},
		{"no addresses", "pools:\n- name: lan\n",
			[]string{"pools[0].addresses: Required value"}},
		{"missing and bad names", "pools:\n- addresses: [203.0.113.1]\n- name: Bad_Name\n  addresses: [203.0.113.2]\n",
			[]string{"pools[0].name: Required value", `pools[1].name: Invalid value: "Bad_Name"`}},
		{"duplicate names", "pools:\n- name: lan\n  addresses: [203.0.113.1]\n- name: lan\n  addresses: [203.0.113.2]\n",
			[]string{`pools[1].name: Duplicate value: "lan"`}},
		{"unknown mode", "pools:\n- name: lan\n  addresses: [203.0.113.1]\n  mode: l3\n",
			[]string{`pools[0].mode: Unsupported value: "l3": supported values: "layer2", "vip", "bgp"`}},
		{"overlap across pools", "pools:\n- name: a\n  addresses: [203.0.113.0/24]\n- name: b\n  addresses: [203.0.113.20-203.0.113.30]\n",
			[]string{`pools[1].addresses[0]: Invalid value: "203.0.113.20-203.0.113.30": overlaps pools[0].addresses[0] ("203.0.113.0/24") of pool "a"`}},
		{"overlap within a pool, later range named", "pools:\n- name: a\n  addresses: [203.0.113.50, 203.0.113.0/26]\n",
			[]string{`pools[0].addresses[1]: Invalid value: "203.0.113.0/26": overlaps pools[0].addresses[0] ("203.0.113.50")`}},
		{"overlap hidden behind a wide range", "pools:\n- name: a\n  addresses: [203.0.113.0/24, 203.0.113.10, 203.0.113.20]\n",
			[]string{"pools[0].addresses[1]", "pools[0].addresses[2]"}},
		{"IPv6 overlap", "pools:\n- name: a\n  addresses: [\"2001:db8::/64\"]\n- name: b\n  addresses: [\"2001:db8::5\"]\n",
			[]string{`pools[1].addresses[0]: Invalid value: "2001:db8::5": overlaps`}},
		{"bad selector", "pools:\n- name: a\n  addresses: [203.0.113.1]\n  serviceSelector: {matchExpressions: [{key: x, operator: Bogus}]}\n",
			[]string{"pools[0].serviceSelector: Invalid value"}},
		{"bad namespace and interface", "pools:\n- name: a\n  addresses: [203.0.113.1]\n  namespaces: [Not_OK]\n  interfaces: [\"eth/0\"]\n",
			[]string{`pools[0].namespaces[0]: Invalid value: "Not_OK"`, `pools[0].interfaces[0]: Invalid value: "eth/0"`}},
		{"unknown field", "pools:\n- name: a\n  adresses: [203.0.113.1]\n",
			[]string{`unknown field "pools[0].adresses"`}},
		{"not yaml", "pools: [", []string{"config.yaml: Invalid value: is not valid YAML"}},
		{"wrong type", "pools: {name: a}", []string{"config.yaml: Invalid value"}},
		{"duplicate field", "pools:\n- name: a\n  name: b\n  addresses: [203.0.113.1]\n", []string{`key "name" already set in map`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, errs := Parse([]byte(tc.yaml))
			if cfg != nil || len(errs) == 0 {
				t.Fatalf("accepted: %+v", cfg)
			}
			all := errs.ToAggregate().Error()
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("errors %q lack %q", all, w)
				}
			}
		})
	}
}

func TestParseEmpty(t *testing.T) {
	for _, doc := range []string{"", "pools: []\n"} {
		cfg, errs := Parse([]byte(doc))
		if len(errs) > 0 || len(cfg.Pools) != 0 {
			t.Errorf("Parse(%q) = %v, %v; want an empty config", doc, cfg, errs)
		}
	}
}

func TestAdmitsReasons(t *testing.T) {
	cfg, errs := Parse([]byte(`
pools:
- name: lan
  addresses: [203.0.113.1]
  namespaces: [prod]
- name: sel
  addresses: [203.0.113.2]
  namespaceSelector: {matchLabels: {env: prod}}
  serviceSelector: {matchLabels: {tier: edge}}
`))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	cases := []struct {
		pool, ns         string
		nsLabels, labels labels.Set
		want             string
	}{
		{"lan", "dev", nil, nil, "pool lan does not allow namespace dev"},
		{"lan", "prod", nil, nil, ""},
		{"sel", "dev", labels.Set{"env": "dev"}, labels.Set{"tier": "edge"}, "pool sel's namespaceSelector (env=prod) does not match namespace dev"},
		{"sel", "prod", labels.Set{"env": "prod"}, nil, "pool sel's serviceSelector (tier=edge) does not match the service's labels"},
		{"sel", "prod", labels.Set{"env": "prod"}, labels.Set{"tier": "edge"}, ""},
	}
	for _, tc := range cases {
		err := cfg.Pool(tc.pool).Admits(tc.ns, tc.nsLabels, tc.labels)
		if got := errString(err); got != tc.want {
			t.Errorf("%s/%s: %q, want %q", tc.pool, tc.ns, got, tc.want)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// FuzzParse: the parser never panics, and anything it accepts is internally
// consistent (no overlaps, every pool named and non-empty).
func FuzzParse(f *testing.F) {
	f.Add([]byte("pools:\n- name: lan\n  addresses: [203.0.113.10-203.0.113.50, \"2001:db8::/64\"]\n"))
	f.Add([]byte("pools:\n- name: a\n  addresses: [198.51.100.0/28]\n  serviceSelector: {matchLabels: {a: b}}\nbgp: {x: 1}\n"))
	f.Add([]byte("pools: [{name: x, addresses: ['1.2.3.4-1.2.3.1']}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, errs := Parse(data)
		if len(errs) > 0 {
			if cfg != nil {
				t.Fatal("errors with a config")
			}
			return
		}
		var all []ipam.Range
		for _, p := range cfg.Pools {
			if p.Name == "" || len(p.Ranges) == 0 || cfg.Pool(p.Name) != p {
				t.Fatalf("accepted an inconsistent pool %+v", p)
			}
			all = append(all, p.Ranges...)
		}
		for i := range all {
			for j := i + 1; j < len(all); j++ {
				if all[i].Overlaps(all[j]) {
					t.Fatalf("accepted overlapping ranges %v and %v", all[i], all[j])
				}
			}
		}
	})
}
