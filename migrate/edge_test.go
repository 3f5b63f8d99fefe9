package migrate

import (
	"strings"
	"testing"

	"github.com/ironlb/ironlb/config"
)

// mlbPoolDoc is an IPAddressPool in namespace ns with addresses.
func mlbPoolDoc(ns, name string, addresses ...string) string {
	return "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: " + name + ", namespace: " + ns + "}\n" +
		"spec:\n  addresses: [" + strings.Join(addresses, ", ") + "]\n"
}

func docs(d ...string) string {
	return strings.Join(d, "---\n")
}

func TestImportEdgeCases(t *testing.T) {
	cases := []struct {
		name  string
		src   Source
		input string
		// pools are the pools expected, each as name=address,address; nil
		// when nothing usable is expected.
		pools []string
		lines []string
	}{
		{
			name: "overlapping pools across MetalLB resources",
			src:  MetalLB,
			input: docs(mlbPoolDoc("metallb-system", "a", "203.0.113.0/24"),
				mlbPoolDoc("metallb-system", "b", "203.0.113.128/25", "198.51.100.0/28"),
				mlbPoolDoc("metallb-system", "c", "203.0.113.5")),
			pools: []string{"a=203.0.113.0/24", "b=198.51.100.0/28"},
			lines: []string{
				"not carried over: IPAddressPool/metallb-system/b spec.addresses[0]: 203.0.113.128/25 overlaps 203.0.113.0/24 of IPAddressPool/metallb-system/a (spec.addresses[0]); ironlb pools must not overlap",
				"not carried over: IPAddressPool/metallb-system/c: has no address left that no other pool holds",
			},
		},
		{
			name:  "overlap within one pool",
			src:   MetalLB,
			input: mlbPoolDoc("metallb-system", "a", "203.0.113.0/24", "203.0.113.10-203.0.113.20"),
			pools: []string{"a=203.0.113.0/24"},
			lines: []string{`IPAddressPool/metallb-system/a spec.addresses[1]: "203.0.113.10-203.0.113.20" overlaps spec.addresses[0] ("203.0.113.0/24")`},
		},
		{
			name: "unknown kinds are skipped",
			src:  MetalLB,
			input: docs("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: default}\nspec: {replicas: 2}\n",
				"apiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata: {name: e}\nspec: {address: 198.51.100.1}\n",
				"apiVersion: metallb.io/v1beta1\nkind: ServiceBGPStatus\nmetadata: {name: s, namespace: metallb-system}\n",
				mlbPoolDoc("metallb-system", "a", "203.0.113.0/28")),
			pools: []string{"a=203.0.113.0/28"},
			lines: []string{
				"not carried over: Deployment/default/web: kind Deployment of apps/v1 does not belong to MetalLB; skipped",
				"not carried over: Eip/e: belongs to OpenELB (network.kubesphere.io/v1alpha2); skipped: run kubectl ironlb import openelb for it",
				"not carried over: ServiceBGPStatus/metallb-system/s: metallb.io/v1beta1 has no ironlb equivalent; skipped",
			},
		},
		{
			name:  "empty input",
			src:   MetalLB,
			input: "",
		},
		{
			name:  "comments and separators only",
			src:   PureLB,
			input: "# nothing here\n---\n---\n",
		},
		{
			name:  "invalid ranges",
			src:   MetalLB,
			input: mlbPoolDoc("metallb-system", "a", "203.0.113.300", "203.0.113.20-203.0.113.10", "198.51.100.0/33", "fe80::1%eth0", "198.51.100.7"),
			pools: []string{"a=198.51.100.7"},
			lines: []string{
				`IPAddressPool/metallb-system/a spec.addresses[0]: "203.0.113.300" is not an IP, range or CIDR; not carried over`,
				`IPAddressPool/metallb-system/a spec.addresses[1]: "203.0.113.20-203.0.113.10" range is reversed`,
				`IPAddressPool/metallb-system/a spec.addresses[2]: "198.51.100.0/33" has an invalid prefix length`,
				`IPAddressPool/metallb-system/a spec.addresses[3]: "fe80::1%eth0" has an IPv6 zone`,
			},
		},
		{
			name:  "nothing valid",
			src:   MetalLB,
			input: mlbPoolDoc("metallb-system", "a", "nonsense"),
			lines: []string{"not carried over: IPAddressPool/metallb-system/a: has no usable address left"},
		},
		{
			name:  "host bits set",
			src:   MetalLB,
			input: mlbPoolDoc("metallb-system", "a", "198.51.100.5/24"),
			pools: []string{"a=198.51.100.0/24"},
			lines: []string{"note: IPAddressPool/metallb-system/a spec.addresses[0]: 198.51.100.5/24 has host bits set"},
		},
		{
			name: "List and typed list",
			src:  MetalLB,
			input: "apiVersion: v1\nkind: List\nitems:\n- apiVersion: metallb.io/v1beta1\n  kind: IPAddressPool\n  metadata: {name: a, namespace: metallb-system}\n  spec: {addresses: [203.0.113.0/28]}\n" +
				"- apiVersion: metallb.io/v1beta1\n  kind: IPAddressPoolList\n  items:\n  - apiVersion: metallb.io/v1beta1\n    kind: IPAddressPool\n    metadata: {name: b, namespace: metallb-system}\n    spec: {addresses: [203.0.113.16/28]}\n",
			pools: []string{"a=203.0.113.0/28", "b=203.0.113.16/28"},
		},
		{
			name:  "a name that is no DNS label",
			src:   MetalLB,
			input: docs(mlbPoolDoc("metallb-system", "Pool.One", "203.0.113.0/28"), mlbPoolDoc("other", "pool-one", "203.0.113.16/28")),
			pools: []string{"pool-one=203.0.113.0/28", "pool-one-2=203.0.113.16/28"},
			lines: []string{
				`note: IPAddressPool/metallb-system/Pool.One metadata.name: "Pool.One" is not a valid ironlb pool name (a DNS label); the pool is named pool-one`,
				"Services with metallb.io/address-pool: Pool.One must say pool-one",
				"note: IPAddressPool/other/pool-one metadata.name: another pool is already named pool-one; this one is named pool-one-2",
			},
		},
		{
			name:  "bgp pool without peers",
			src:   MetalLB,
			input: docs(mlbPoolDoc("metallb-system", "a", "203.0.113.0/28"), "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: all, namespace: metallb-system}\n"),
			lines: []string{"not carried over: IPAddressPool/metallb-system/a: is announced over BGP, but there is no BGP configuration to announce it with (pass the BGPPeer resources too"},
		},
		{
			name:  "a field ironlb lacks",
			src:   MetalLB,
			input: mlbPoolDoc("metallb-system", "a", "203.0.113.0/28") + "  fancyNewField: {x: 1}\n",
			pools: []string{"a=203.0.113.0/28"},
			lines: []string{"not carried over: IPAddressPool/metallb-system/a spec.fancyNewField: ironlb has no equivalent; not carried over"},
		},
		{
			name:  "a field of the wrong type",
			src:   MetalLB,
			input: mlbPoolDoc("metallb-system", "a", "203.0.113.0/28") + "  autoAssign: maybe\n",
			pools: []string{"a=203.0.113.0/28"},
			lines: []string{"not carried over: IPAddressPool/metallb-system/a spec.autoAssign: cannot be read (is string where a bool is expected)"},
		},
		{
			name: "restrictions that cannot be read",
			src:  MetalLB,
			input: docs(mlbPoolDoc("metallb-system", "a", "203.0.113.0/28")+"  serviceAllocation: {namespaces: default}\n",
				mlbPoolDoc("metallb-system", "b", "203.0.113.16/28"),
				"apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2, namespace: metallb-system}\nspec: {ipAddressPools: b, interfaces: [eth9]}\n"),
			pools: []string{"b=203.0.113.16/28"},
			lines: []string{
				"not carried over: IPAddressPool/metallb-system/a: its serviceAllocation cannot be read, and leaving it out would open the pool to every Service",
				"not carried over: L2Advertisement/metallb-system/l2 spec.ipAddressPools: cannot be read (is string where a list is expected)",
				"note: IPAddressPool/metallb-system/b: no L2Advertisement or BGPAdvertisement selects it",
			},
		},
		{
			name:  "an OpenELB namespace binding that cannot be read",
			src:   OpenELB,
			input: "apiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata: {name: e}\nspec: {address: 203.0.113.0/28, protocol: layer2, namespaceSelector: {a: {b: c}}}\n",
			lines: []string{"not carried over: Eip/e: its namespaces cannot be read"},
		},
		{
			name:  "malformed documents among good ones",
			src:   MetalLB,
			input: docs("kind: [unclosed\n", "spec: {addresses: [1]}\n", mlbPoolDoc("metallb-system", "a", "203.0.113.0/28")),
			pools: []string{"a=203.0.113.0/28"},
			lines: []string{"not carried over: in.yaml document 1: is not valid YAML", "not carried over: in.yaml document 2: has no kind; skipped"},
		},
		{
			name:  "a spec that is no object",
			src:   MetalLB,
			input: "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a, namespace: metallb-system}\nspec: [1, 2]\n",
			lines: []string{"not carried over: IPAddressPool/metallb-system/a spec: is not an object"},
		},
		{
			name:  "MetalLB's ConfigMap",
			src:   MetalLB,
			input: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config, namespace: metallb-system}\ndata:\n  config: |\n    address-pools: []\n",
			lines: []string{"not carried over: ConfigMap/metallb-system/config: MetalLB's ConfigMap configuration (before v0.13) is not read"},
		},
		{
			name: "aggregates that would share a route",
			src:  MetalLB,
			input: docs(mlbPoolDoc("metallb-system", "a", "203.0.113.0/25"), mlbPoolDoc("metallb-system", "b", "203.0.113.128/25"),
				"apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r, namespace: metallb-system}\nspec: {myASN: 64500, peerASN: 64501, peerAddress: 198.51.100.1}\n",
				"apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: adv-x, namespace: metallb-system}\nspec: {ipAddressPools: [a], aggregationLength: 24, communities: ['64500:1']}\n",
				"apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: adv-y, namespace: metallb-system}\nspec: {ipAddressPools: [b], aggregationLength: 24, communities: ['64500:2']}\n"),
			pools: []string{"a=203.0.113.0/25", "b=203.0.113.128/25"},
			lines: []string{"not carried over: BGPAdvertisement/metallb-system/adv-x spec.aggregationLength: pools a (203.0.113.0-203.0.113.127) and b (203.0.113.128-203.0.113.255) would share the route 203.0.113.0/24 with different attributes; not carried over, the addresses are announced alone"},
		},
		{
			name: "two peers for one router",
			src:  MetalLB,
			input: docs(mlbPoolDoc("metallb-system", "a", "203.0.113.0/28"),
				"apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: all, namespace: metallb-system}\n",
				"apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r-a, namespace: metallb-system}\nspec: {myASN: 64500, peerASN: 64501, peerAddress: 198.51.100.1, holdTime: 0s}\n",
				"apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r-b, namespace: metallb-system}\nspec: {myASN: 64500, peerASN: 64501, peerAddress: 198.51.100.1}\n"),
			pools: []string{"a=203.0.113.0/28"},
			lines: []string{
				"not carried over: BGPPeer/metallb-system/r-a spec.holdTime: holdTime: Invalid value: \"0s\"",
				"not carried over: BGPPeer/metallb-system/r-b spec.peerAddress: 198.51.100.1 is also the router of BGPPeer/metallb-system/r-a",
			},
		},
		{
			name: "OpenELB peers without the BgpConf",
			src:  OpenELB,
			input: docs("apiVersion: network.kubesphere.io/v1alpha2\nkind: Eip\nmetadata: {name: e}\nspec: {address: 203.0.113.0/28}\n",
				"apiVersion: network.kubesphere.io/v1alpha2\nkind: BgpPeer\nmetadata: {name: p}\nspec: {conf: {peerAs: 64501, neighborAddress: 198.51.100.1}}\n",
				"apiVersion: network.kubesphere.io/v1alpha1\nkind: Eip\nmetadata: {name: old}\nspec: {address: 203.0.113.16/28}\n"),
			lines: []string{
				"not carried over: Eip/e: is announced over BGP, but there is no BGP configuration to announce it with (pass the BgpConf named default too",
				"not carried over: BgpPeer/p: there is no local AS number to peer with",
				"not carried over: Eip/old: network.kubesphere.io/v1alpha1 is not read",
			},
		},
		{
			name: "PureLB interface pattern",
			src:  PureLB,
			input: docs("apiVersion: purelb.io/v1\nkind: ServiceGroup\nmetadata: {name: default, namespace: purelb}\nspec: {local: {v4pool: {pool: 203.0.113.0/28, subnet: 203.0.113.0/24}}}\n",
				"apiVersion: purelb.io/v1\nkind: LBNodeAgent\nmetadata: {name: default, namespace: purelb}\nspec: {local: {localint: 'enp.*'}}\n"),
			pools: []string{"default=203.0.113.0/28"},
			lines: []string{`not carried over: LBNodeAgent/purelb/default spec.local.localint: "enp.*" is a pattern`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := Import(tc.src, []Input{{Name: "in.yaml", Data: []byte(tc.input)}})
			if len(res.Errors) > 0 {
				t.Fatalf("config.Parse refuses the result: %v\n%s", res.Errors, res.YAML)
			}
			var got []string
			if res.File != nil {
				for _, p := range res.File.Pools {
					got = append(got, p.Name+"="+strings.Join(p.Addresses, ","))
				}
				if _, errs := config.Parse(res.YAML); len(errs) > 0 {
					t.Fatalf("config.Parse: %v", errs)
				}
			}
			checkSlice(t, "pools", got, tc.pools)
			if tc.pools == nil && res.File != nil {
				t.Errorf("a config was made from nothing usable:\n%s", res.YAML)
			}
			wantLines(t, res, tc.lines...)
		})
	}
}

func TestImportSeveralInputs(t *testing.T) {
	res := Import(MetalLB, []Input{
		{Name: "pools.yaml", Data: []byte(mlbPoolDoc("metallb-system", "a", "203.0.113.0/28"))},
		{Name: "-", Data: []byte(docs(mlbPoolDoc("metallb-system", "b", "203.0.113.16/28"),
			"apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2, namespace: metallb-system}\nspec: {ipAddressPools: [a, b, c]}\n"))},
	})
	if res.Config == nil {
		t.Fatalf("no config: %v", res.Errors)
	}
	checkSlice(t, "pools", res.Config.PoolNames(), []string{"a", "b"})
	wantLines(t, res, "note: L2Advertisement/metallb-system/l2 spec.ipAddressPools[2]: names IPAddressPool c, which is not in the input")
}

func TestParseSource(t *testing.T) {
	for _, name := range []string{"metallb", "OpenELB", "purelb"} {
		if _, err := ParseSource(name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ParseSource("kube-vip"); err == nil {
		t.Error("kube-vip accepted")
	}
}
