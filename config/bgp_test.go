package config

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// bgpSection converts a YAML bgp section to the raw JSON Config.BGP holds.
func bgpSection(t testing.TB, doc string) json.RawMessage {
	t.Helper()
	raw, err := yaml.YAMLToJSONStrict([]byte(doc))
	if err != nil {
		t.Fatalf("test YAML: %v", err)
	}
	return raw
}

func TestParseBGPValid(t *testing.T) {
	b, errs := ParseBGP(bgpSection(t, `
localASN: 64515
routerID: 198.51.100.7
listenPort: 1179
peers:
- name: tor1
  address: 198.51.100.1
  asn: 64512
  port: 1790
  holdTime: 9s
  keepaliveTime: 2s
  sourceAddress: 198.51.100.11
  passwordSecretRef: {name: bgp-tor1, key: password}
  nodeSelector: {matchLabels: {rack: a}}
  gracefulRestart: true
  bfd: {enabled: true, minRx: 100ms, minTx: 200ms, multiplier: 5}
- name: tor6
  address: 2001:db8:100::1
  asn: 64515
- name: far
  address: 198.51.100.3
  asn: 64512
  ebgpMultihop: 2
advertisements:
- pools: [bgp-pool]
  localPref: 100
  communities: ["64512:100", "64512:1:2", no-export]
  aggregationLength: 24
  aggregationLengthV6: 64
- communities: ["65000:1"]
`))
	if len(errs) > 0 {
		t.Fatalf("unexpected errors: %v", errs)
	}
	if b.LocalASN != 64515 || b.RouterID != netip.MustParseAddr("198.51.100.7") || b.ListenPort != 1179 {
		t.Errorf("globals = %d %v %d", b.LocalASN, b.RouterID, b.ListenPort)
	}
	tor1, tor6 := b.Peers[0], b.Peers[1]
	want := BGPPeer{Name: "tor1", Address: netip.MustParseAddr("198.51.100.1"), ASN: 64512, Port: 1790,
		HoldTime: 9 * time.Second, KeepaliveTime: 2 * time.Second,
		SourceAddress: netip.MustParseAddr("198.51.100.11"), GracefulRestart: true}
	got := *tor1
	got.NodeSelector, got.PasswordSecretRef, got.BFD = nil, nil, nil
	if got != want {
		t.Errorf("tor1 = %+v\nwant %+v", got, want)
	}
	if ref := tor1.PasswordSecretRef; ref == nil || ref.String() != "bgp-tor1/password" {
		t.Errorf("passwordSecretRef = %v", ref)
	}
	if bfd := tor1.BFD; bfd == nil || *bfd != (BFD{MinRx: 100 * time.Millisecond, MinTx: 200 * time.Millisecond, Multiplier: 5}) {
		t.Errorf("bfd = %+v", bfd)
	}
	if !tor1.Selects(labels.Set{"rack": "a"}) || tor1.Selects(labels.Set{"rack": "b"}) {
		t.Error("tor1's nodeSelector does not select rack=a only")
	}

	if far := b.Peers[2]; far.EBGPMultihop != 2 {
		t.Errorf("far's ebgpMultihop = %d", far.EBGPMultihop)
	}

	// Defaults.
	if tor6.Port != 179 || tor6.HoldTime != 90*time.Second || tor6.KeepaliveTime != 30*time.Second ||
		tor6.BFD != nil || tor6.PasswordSecretRef != nil || tor6.GracefulRestart || !tor6.Selects(labels.Set{"any": "node"}) {
		t.Errorf("tor6 defaults = %+v", tor6)
	}

	adv := b.AdvertisementFor("bgp-pool")
	if adv.LocalPref == nil || *adv.LocalPref != 100 ||
		!slices.Equal(adv.Communities, []uint32{64512<<16 | 100, 0xFFFFFF01}) ||
		!slices.Equal(adv.LargeCommunities, []LargeCommunity{{64512, 1, 2}}) {
		t.Errorf("bgp-pool advertisement = %+v", adv)
	}
	if got := adv.Prefix(netip.MustParseAddr("203.0.113.77")); got != netip.MustParsePrefix("203.0.113.0/24") {
		t.Errorf("IPv4 aggregate = %v", got)
	}
	if got := adv.Prefix(netip.MustParseAddr("2001:db8:200::77")); got != netip.MustParsePrefix("2001:db8:200::/64") {
		t.Errorf("IPv6 aggregate = %v", got)
	}
	other := b.AdvertisementFor("elsewhere")
	if other != b.Advertisements[1] || !slices.Equal(other.Communities, []uint32{65000<<16 | 1}) {
		t.Errorf("the advertisement without pools does not serve other pools: %+v", other)
	}
	if got := other.Prefix(netip.MustParseAddr("203.0.113.77")); got != netip.MustParsePrefix("203.0.113.77/32") {
		t.Errorf("default aggregation = %v, want /32", got)
	}
	if FormatCommunity(adv.Communities[0]) != "64512:100" || adv.LargeCommunities[0].String() != "64512:1:2" {
		t.Error("communities do not format back to what was written")
	}
}

func TestParseBGPDefaults(t *testing.T) {
	b, errs := ParseBGP(bgpSection(t, "localASN: 4200000000\n"))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if b.ListenPort != NoListen || b.RouterID.IsValid() || len(b.Peers) != 0 {
		t.Errorf("defaults = %+v", b)
	}
	adv := b.AdvertisementFor("any")
	if !adv.Equal(DefaultAdvertisement) || adv.LocalPref != nil {
		t.Errorf("default advertisement = %+v", adv)
	}
	if got := adv.Prefix(netip.MustParseAddr("2001:db8:200::1")); got.Bits() != 128 {
		t.Errorf("default IPv6 route = %v", got)
	}
	for _, raw := range []string{"", "null", "  "} {
		if b, errs := ParseBGP(json.RawMessage(raw)); b != nil || errs != nil {
			t.Errorf("ParseBGP(%q) = %v, %v; want nothing configured", raw, b, errs)
		}
	}
	// Keepalive defaults to a third of the hold time, in whole seconds.
	b, errs = ParseBGP(bgpSection(t, "localASN: 1\npeers: [{name: a, address: 198.51.100.1, asn: 2, holdTime: 4s}]\n"))
	if len(errs) > 0 || b.Peers[0].KeepaliveTime != time.Second {
		t.Errorf("holdTime 4s: keepalive %v, %v", b.Peers[0].KeepaliveTime, errs)
	}
}

func TestParseBGPErrors(t *testing.T) {
	peer := func(extra string) string {
		return "localASN: 64515\npeers:\n- {name: tor1, address: 198.51.100.1, asn: 64512, " + extra + "}\n"
	}
	// peerAt is peer with another address or ASN.
	peerAt := func(fields string) string {
		return "localASN: 64515\npeers:\n- {name: tor1, " + fields + "}\n"
	}
	adv := func(extra string) string {
		return "localASN: 64515\nadvertisements:\n- {" + extra + "}\n"
	}
	cases := []struct {
		name string
		yaml string
		want []string // each must appear in the errors
	}{
		{"no local ASN", "routerID: 198.51.100.1\n", []string{"bgp.localASN: Required value"}},
		{"ASN too large", "localASN: 4294967296\n", []string{"bgp.localASN: Invalid value: 4294967296: must be an AS number 1-4294967295"}},
		{"negative ASN", "localASN: -5\n", []string{"bgp.localASN: Invalid value: -5"}},
		{"AS_TRANS", peerAt("address: 198.51.100.1, asn: 23456"), []string{"bgp.peers[0].asn: Invalid value: 23456: 23456 is AS_TRANS"}},
		{"IPv6 router ID", "localASN: 1\nrouterID: 2001:db8::1\n", []string{`bgp.routerID: Invalid value: "2001:db8::1": must be an IPv4 address`}},
		{"listen port 0", "localASN: 1\nlistenPort: 0\n", []string{"bgp.listenPort: Invalid value: 0: must be -1 (dial out only"}},
		{"listen port too large", "localASN: 1\nlistenPort: 70000\n", []string{"bgp.listenPort: Invalid value: 70000"}},
		{"peer without name, address, asn", "localASN: 1\npeers: [{port: 179}]\n",
			[]string{"bgp.peers[0].name: Required value", "bgp.peers[0].address: Required value", "bgp.peers[0].asn: Required value"}},
		{"bad peer name", "localASN: 1\npeers: [{name: Tor_1, address: 198.51.100.1, asn: 2}]\n", []string{`bgp.peers[0].name: Invalid value: "Tor_1"`}},
		{"duplicate peers", "localASN: 1\npeers:\n- {name: a, address: 198.51.100.1, asn: 2}\n- {name: a, address: 198.51.100.1, asn: 3}\n",
			[]string{`bgp.peers[1].name: Duplicate value: "a (also peers[0])"`, `bgp.peers[1].address: Duplicate value: "198.51.100.1 (also peers[0])"`}},
		{"bad address", peerAt("address: 198.51.100.300, asn: 1"), []string{`bgp.peers[0].address: Invalid value: "198.51.100.300": is not an IP address`}},
		{"zoned address", peerAt(`address: "fe80::1%eth0", asn: 1`), []string{`bgp.peers[0].address: Invalid value: "fe80::1%eth0": must not carry a zone`}},
		{"multicast address", peerAt("address: 224.0.0.5, asn: 1"), []string{`bgp.peers[0].address: Invalid value: "224.0.0.5": must be a unicast address`}},
		{"port 0", peer("port: 0"), []string{"bgp.peers[0].port: Invalid value: 0: must be a TCP port 1-65535"}},
		{"not a duration", peer("holdTime: 9x"), []string{`bgp.peers[0].holdTime: Invalid value: "9x": is not a duration`}},
		{"hold time 0", peer("holdTime: 0s"), []string{`bgp.peers[0].holdTime: Invalid value: "0s": 0 (no keepalives) is not supported`}},
		{"hold time too short", peer("holdTime: 2s"), []string{`bgp.peers[0].holdTime: Invalid value: "2s": must be between 3s and 65535s`}},
		{"fractional hold time", peer("holdTime: 1500ms"), []string{`bgp.peers[0].holdTime: Invalid value: "1500ms": must be a whole, non-negative number of seconds`}},
		{"keepalive not below hold", peer("holdTime: 9s, keepaliveTime: 9s"), []string{`bgp.peers[0].keepaliveTime: Invalid value: "9s": must be less than holdTime (9s)`}},
		{"keepalive too short", peer("keepaliveTime: 0s"), []string{`bgp.peers[0].keepaliveTime: Invalid value: "0s": must be at least 1s`}},
		{"multihop too large", peer("ebgpMultihop: 256"), []string{"bgp.peers[0].ebgpMultihop: Invalid value: 256: must be a TTL 0-255"}},
		{"multihop on iBGP", "localASN: 7\npeers: [{name: a, address: 198.51.100.1, asn: 7, ebgpMultihop: 2}]\n",
			[]string{"bgp.peers[0].ebgpMultihop: Invalid value: 2: applies to eBGP only; this peer's asn equals localASN 7 (iBGP)"}},
		{"source of the other family", peer(`sourceAddress: "2001:db8::1"`), []string{`bgp.peers[0].sourceAddress: Invalid value: "2001:db8::1": must be of the same IP family as address 198.51.100.1`}},
		{"incomplete secret ref", peer("passwordSecretRef: {name: s}"), []string{"bgp.peers[0].passwordSecretRef.key: Required value"}},
		{"bad secret ref", peer("passwordSecretRef: {name: Bad_Name, key: 'a/b'}"),
			[]string{`bgp.peers[0].passwordSecretRef.name: Invalid value: "Bad_Name"`, `bgp.peers[0].passwordSecretRef.key: Invalid value: "a/b"`}},
		{"plain password", peer("password: hunter2"), []string{`unknown field "bgp.peers[0].password"`}},
		{"bad node selector", peer("nodeSelector: {matchExpressions: [{key: x, operator: Bogus}]}"), []string{"bgp.peers[0].nodeSelector: Invalid value"}},
		{"bad BFD, even disabled", peer("bfd: {minRx: 1ms, minTx: soon, multiplier: 0}"),
			[]string{`bgp.peers[0].bfd.minRx: Invalid value: "1ms": must be between 10ms and 1m0s`,
				`bgp.peers[0].bfd.minTx: Invalid value: "soon": is not a duration`,
				"bgp.peers[0].bfd.multiplier: Invalid value: 0: must be 1-255"}},
		{"multihop BFD", peer("ebgpMultihop: 3, bfd: {enabled: true}"), []string{"bgp.peers[0].bfd.enabled: Invalid value: true: BFD is single-hop only"}},
		{"bad communities", adv(`communities: ["65536:1", "a:b", "1:2:3:4", "1:x:3", no-such]`),
			[]string{`bgp.advertisements[0].communities[0]: Invalid value: "65536:1": must be a standard community ASN:value (each 0-65535)`,
				`bgp.advertisements[0].communities[1]: Invalid value: "a:b"`,
				`bgp.advertisements[0].communities[2]: Invalid value: "1:2:3:4"`,
				`bgp.advertisements[0].communities[3]: Invalid value: "1:x:3": must be a large community`,
				`bgp.advertisements[0].communities[4]: Invalid value: "no-such"`}},
		{"duplicate communities", adv(`communities: ["1:2", "1:2", "1:2:3", "1:2:3"]`),
			[]string{`bgp.advertisements[0].communities[1]: Duplicate value: "1:2"`, `bgp.advertisements[0].communities[3]: Duplicate value: "1:2:3"`}},
		{"local pref", adv("localPref: -1"), []string{"bgp.advertisements[0].localPref: Invalid value: -1"}},
		{"aggregation lengths", adv("aggregationLength: 33, aggregationLengthV6: 0"),
			[]string{"bgp.advertisements[0].aggregationLength: Invalid value: 33: must be 1-32", "bgp.advertisements[0].aggregationLengthV6: Invalid value: 0: must be 1-128"}},
		{"pool advertised twice", "localASN: 1\nadvertisements:\n- pools: [a, b]\n- pools: [b]\n",
			[]string{`bgp.advertisements[1].pools[0]: Duplicate value: "b (already in advertisements[0]`}},
		{"two catch-all advertisements", "localASN: 1\nadvertisements:\n- localPref: 1\n- localPref: 2\n",
			[]string{`bgp.advertisements[1].pools: Duplicate value: "no pools, like advertisements[0]`}},
		{"bad pool name", adv("pools: [Bad_Pool, ok, ok]"),
			[]string{`bgp.advertisements[0].pools[0]: Invalid value: "Bad_Pool"`, `bgp.advertisements[0].pools[2]: Duplicate value: "ok"`}},
		{"unknown field", "localASN: 1\npeers: [{name: a, adress: 198.51.100.1}]\n", []string{`unknown field "bgp.peers[0].adress"`}},
		{"wrong type", "localASN: [1]\n", []string{"bgp: Invalid value"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, errs := ParseBGP(bgpSection(t, tc.yaml))
			if b != nil || len(errs) == 0 {
				t.Fatalf("accepted: %+v", b)
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

// TestConfigParseBGP checks the bgp section against the pools of the whole
// config.yaml, as the speaker does.
func TestConfigParseBGP(t *testing.T) {
	const pools = `
pools:
- name: bgp-a
  addresses: [203.0.113.0/28]
  mode: bgp
- name: bgp-b
  addresses: [203.0.113.16/28, "2001:db8:200::/120"]
  mode: bgp
- name: lan
  addresses: [198.51.100.200]
`
	parse := func(t *testing.T, bgp string) (*BGP, string) {
		t.Helper()
		// Parse checks the bgp section too: a config with a bad one is refused whole.
		cfg, errs := Parse([]byte(pools + bgp))
		if len(errs) > 0 {
			if cfg != nil {
				t.Fatal("errors with a result")
			}
			return nil, errs.ToAggregate().Error()
		}
		return cfg.BGP, ""
	}

	b, msg := parse(t, `
bgp:
  localASN: 64515
  peers: [{name: tor1, address: 198.51.100.1, asn: 64512}]
  advertisements:
  - pools: [bgp-a]
    communities: ["64512:100"]
  - pools: [bgp-b]
    aggregationLength: 28
`)
	if msg != "" {
		t.Fatalf("valid config refused: %s", msg)
	}
	if b.AdvertisementFor("bgp-b").AggregationLength != 28 {
		t.Error("bgp-b's advertisement lost")
	}

	cases := []struct{ name, bgp, want string }{
		{"unknown pool", "bgp:\n  localASN: 1\n  advertisements: [{pools: [nope]}]\n",
			`bgp.advertisements[0].pools[0]: Not found: "nope"`},
		{"pool of another mode", "bgp:\n  localASN: 1\n  advertisements: [{pools: [lan]}]\n",
			`bgp.advertisements[0].pools[0]: Invalid value: "lan": pool lan has mode layer2; only pools of mode bgp are announced over BGP`},
		{"bgp pools without a bgp section", "",
			"bgp: Required value: pool bgp-a has mode bgp; a bgp section (localASN, peers) is needed to announce it"},
		{"aggregates shared with different attributes", `
bgp:
  localASN: 1
  advertisements:
  - {pools: [bgp-a], aggregationLength: 24, localPref: 10}
  - {pools: [bgp-b], aggregationLength: 24, localPref: 20}
`, "pools bgp-a (203.0.113.0-203.0.113.15) and bgp-b (203.0.113.16-203.0.113.31) would share the route 203.0.113.0/24 with different attributes"},
		{"aggregate shared with the catch-all advertisement", `
bgp:
  localASN: 1
  advertisements:
  - {pools: [bgp-a], aggregationLength: 26, communities: ["1:1"]}
  - {aggregationLength: 26}
`, "would share the route 203.0.113.0/26"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, msg := parse(t, tc.bgp); !strings.Contains(msg, tc.want) {
				t.Errorf("errors %q lack %q", msg, tc.want)
			}
		})
	}

	// Same attributes may share an aggregate: the route is the same either way.
	if _, msg := parse(t, "bgp:\n  localASN: 1\n  advertisements: [{aggregationLength: 24}]\n"); msg != "" {
		t.Errorf("pools sharing an aggregate with equal attributes refused: %s", msg)
	}
}

// FuzzParseBGP: the parser never panics, and what it accepts is usable.
func FuzzParseBGP(f *testing.F) {
	f.Add([]byte(`{"localASN":64515,"peers":[{"name":"tor1","address":"198.51.100.1","asn":64512,"holdTime":"9s","bfd":{"enabled":true}}],"advertisements":[{"pools":["a"],"communities":["1:2","1:2:3"],"aggregationLength":24}]}`))
	f.Add([]byte(`{"localASN":1,"listenPort":-1,"advertisements":[{"localPref":5}]}`))
	f.Add([]byte(`{"localASN":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, errs := ParseBGP(data)
		if len(errs) > 0 || b == nil {
			if b != nil {
				t.Fatal("errors with a result")
			}
			return
		}
		if b.LocalASN == 0 {
			t.Fatal("accepted without localASN")
		}
		for _, p := range b.Peers {
			if p.Name == "" || !p.Address.IsValid() || p.ASN == 0 || p.KeepaliveTime >= p.HoldTime || p.NodeSelector == nil {
				t.Fatalf("accepted an unusable peer %+v", p)
			}
		}
		adv := b.AdvertisementFor("any")
		if adv == nil || !adv.Prefix(netip.MustParseAddr("203.0.113.1")).IsValid() {
			t.Fatal("no usable advertisement")
		}
	})
}
