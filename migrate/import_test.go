package migrate

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/config"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// The plain passwords in the testdata; no output may contain them.
const secretInTestdata = "do-not-print-me"

// importFile imports one testdata file, checks that the config parses back
// and matches the golden files, and returns both.
func importFile(t *testing.T, src Source, name string) (*Result, *config.Config) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	res := Import(src, []Input{{Name: name, Data: data}})
	if res.File == nil || len(res.Errors) > 0 {
		t.Fatalf("import failed: %v\n%s", res.Errors, strings.Join(lines(res), "\n"))
	}
	cfg, errs := config.Parse(res.YAML)
	if len(errs) > 0 {
		t.Fatalf("config.Parse refuses the result: %v\n%s", errs, res.YAML)
	}
	cm, err := res.ConfigMap()
	if err != nil {
		t.Fatal(err)
	}
	report := strings.Join(lines(res), "\n") + "\n"
	base := strings.TrimSuffix(name, ".yaml")
	golden(t, base+".configmap.yaml", cm)
	golden(t, base+".report.txt", []byte(report))
	for _, out := range []string{string(res.YAML), string(cm), report} {
		if strings.Contains(out, secretInTestdata) {
			t.Errorf("a plain password from the input is printed:\n%s", out)
		}
	}
	return res, cfg
}

// lines is the report as the command prints it, without the summary.
func lines(res *Result) []string {
	var out []string
	for _, f := range res.Findings {
		out = append(out, f.Line())
	}
	out = append(out, "Services:")
	for _, s := range res.Services {
		out = append(out, "  "+s)
	}
	return out
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./migrate/ -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./migrate/ -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// wantLines checks that the report has a line containing each of want.
func wantLines(t *testing.T, res *Result, want ...string) {
	t.Helper()
	all := lines(res)
	for _, w := range want {
		if !slices.ContainsFunc(all, func(l string) bool { return strings.Contains(l, w) }) {
			t.Errorf("no report line contains %q; the report:\n%s", w, strings.Join(all, "\n"))
		}
	}
}

func pool(t *testing.T, cfg *config.Config, name string) *config.Pool {
	t.Helper()
	p := cfg.Pool(name)
	if p == nil {
		t.Fatalf("no pool %s among %v", name, cfg.PoolNames())
	}
	return p
}

func ranges(p *config.Pool) []string {
	var out []string
	for _, r := range p.Ranges {
		out = append(out, fmt.Sprintf("%s-%s", r.First, r.Last))
	}
	return out
}

func autoAssignOrder(cfg *config.Config) []string {
	var out []string
	for _, p := range cfg.AutoAssignPools() {
		out = append(out, p.Name)
	}
	return out
}

func check[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func checkSlice[T comparable](t *testing.T, what string, got, want []T) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestImportMetalLBLayer2(t *testing.T) {
	res, cfg := importFile(t, MetalLB, "metallb-l2.yaml")
	checkSlice(t, "pools", cfg.PoolNames(), []string{"first-pool", "cheap", "expensive", "ippool-ns-service-alloc-sample", "team-pool"})

	first := pool(t, cfg, "first-pool")
	check(t, "first-pool mode", first.Mode, config.ModeLayer2)
	checkSlice(t, "first-pool ranges", ranges(first), []string{"203.0.113.10-203.0.113.50", "2001:db8:10::-2001:db8:10::f"})
	checkSlice(t, "first-pool interfaces", first.Interfaces, []string{"eth0", "eth1"})
	check(t, "first-pool on nodeb", first.NodeSelector.Matches(labels.Set{"kubernetes.io/hostname": "nodeb"}), true)
	check(t, "first-pool on nodec", first.NodeSelector.Matches(labels.Set{"kubernetes.io/hostname": "nodec"}), false)

	check(t, "cheap autoAssign", pool(t, cfg, "cheap").AutoAssign, true)
	check(t, "expensive autoAssign", pool(t, cfg, "expensive").AutoAssign, false)

	tenants := pool(t, cfg, "ippool-ns-service-alloc-sample")
	check(t, "avoidBuggyIPs", tenants.AvoidBuggyIPs, true)
	check(t, "namespace-b admitted", tenants.Admits("namespace-b", nil, labels.Set{"app": "bar"}) == nil, true)
	check(t, "other namespace admitted", tenants.Admits("namespace-c", labels.Set{"foo": "bar"}, labels.Set{"app": "bar"}) == nil, false)
	check(t, "other service admitted", tenants.Admits("namespace-a", nil, labels.Set{"app": "baz"}) == nil, false)
	check(t, "tenants on an edge node", tenants.NodeSelector.Matches(labels.Set{"node-role.kubernetes.io/edge": ""}), true)

	team := pool(t, cfg, "team-pool")
	check(t, "team green admitted", team.Admits("x", labels.Set{"team": "green"}, nil) == nil, true)
	check(t, "team red admitted", team.Admits("x", labels.Set{"team": "red"}, nil) == nil, false)
	// MetalLB priority 10 before 50 before unset, then ironlb's tie by name.
	checkSlice(t, "auto-assign order", autoAssignOrder(cfg), []string{"team-pool", "ippool-ns-service-alloc-sample", "cheap", "first-pool"})

	wantLines(t, res,
		"not carried over: IPAddressPool/metallb-system/ippool-ns-service-alloc-sample spec.serviceAllocation.namespaceSelectors: MetalLB admits a namespace that is listed or matches a selector",
		"note: IPAddressPool/metallb-system/team-pool spec.serviceAllocation.priority: 10 becomes priority 2",
		"not carried over: L2Advertisement/metallb-system/tenants spec.nodeSelectors: for pool team-pool",
		"metallb.io/address-pool and metallb.universe.tf/address-pool keep working",
		"spec.loadBalancerClass set for the old load balancer must drop it",
	)
}

func TestImportMetalLBBGP(t *testing.T) {
	res, cfg := importFile(t, MetalLB, "metallb-bgp.yaml")
	checkSlice(t, "pools", cfg.PoolNames(), []string{"bgp-pool", "bgp-v6", "both-pool"})
	for _, p := range cfg.Pools {
		check(t, p.Name+" mode", p.Mode, config.ModeBGP)
	}
	check(t, "bgp-v6 on nodea", pool(t, cfg, "bgp-v6").NodeSelector.Matches(labels.Set{"kubernetes.io/hostname": "nodea"}), true)
	check(t, "bgp-v6 on nodeb", pool(t, cfg, "bgp-v6").NodeSelector.Matches(labels.Set{"kubernetes.io/hostname": "nodeb"}), false)

	bgp := cfg.BGP
	if bgp == nil {
		t.Fatal("no bgp section")
	}
	check(t, "localASN", bgp.LocalASN, 64500)
	check(t, "routerID set", bgp.RouterID.IsValid(), false)
	var peers []string
	for _, p := range bgp.Peers {
		peers = append(peers, p.Name)
	}
	checkSlice(t, "peers", peers, []string{"tor1", "tor2", "ibgp-rr"})

	tor1 := bgp.Peers[0]
	check(t, "tor1 address", tor1.Address.String(), "198.51.100.1")
	check(t, "tor1 asn", tor1.ASN, 64501)
	check(t, "tor1 holdTime", tor1.HoldTime, 9*time.Second)
	check(t, "tor1 keepaliveTime", tor1.KeepaliveTime, 3*time.Second)
	check(t, "tor1 secret", fmt.Sprint(tor1.PasswordSecretRef), "tor1-md5/password")
	check(t, "tor1 gracefulRestart", tor1.GracefulRestart, true)
	check(t, "tor1 on rack a", tor1.Selects(labels.Set{"rack": "a"}), true)
	check(t, "tor1 on rack b", tor1.Selects(labels.Set{"rack": "b"}), false)
	if tor1.BFD == nil {
		t.Fatal("tor1 has no BFD")
	}
	check(t, "tor1 bfd", *tor1.BFD, config.BFD{MinRx: 380 * time.Millisecond, MinTx: 270 * time.Millisecond, Multiplier: 37})

	tor2 := bgp.Peers[1]
	check(t, "tor2 port", tor2.Port, 1179)
	check(t, "tor2 ebgpMultihop", tor2.EBGPMultihop, 255)
	check(t, "tor2 sourceAddress", tor2.SourceAddress.String(), "198.51.100.20")
	check(t, "tor2 secret", fmt.Sprint(tor2.PasswordSecretRef), "tor2-bgp-password/password")
	check(t, "tor2 bfd", tor2.BFD == nil, true)

	rr := bgp.Peers[2]
	check(t, "ibgp-rr asn", rr.ASN, 64500)
	check(t, "ibgp-rr address", rr.Address.String(), "2001:db8::1")

	local := bgp.AdvertisementFor("bgp-pool")
	check(t, "localPref", *local.LocalPref, 100)
	var communities []string
	for _, c := range local.Communities {
		communities = append(communities, config.FormatCommunity(c))
	}
	checkSlice(t, "communities", communities, []string{"1234:1", "64500:200"})
	checkSlice(t, "large communities", local.LargeCommunities, []config.LargeCommunity{{ASN: 64500, Data1: 1, Data2: 2}})
	check(t, "aggregationLength", local.AggregationLength, 32)
	v6 := bgp.AdvertisementFor("bgp-v6")
	check(t, "aggregationLengthV6", v6.AggregationLengthV6, 124)
	check(t, "v6 community", len(v6.Communities) == 1 && config.FormatCommunity(v6.Communities[0]) == "65535:65282", true)
	check(t, "both-pool announced with defaults", bgp.AdvertisementFor("both-pool").Equal(config.DefaultAdvertisement), true)

	wantLines(t, res,
		"not carried over: BGPPeer/metallb-system/tor2 spec.password: a plain password is not carried over",
		"kubectl -n ironlb-system create secret generic tor2-bgp-password --from-literal=password='<the password>'",
		"note: BGPPeer/metallb-system/tor1 spec.passwordSecret: ironlb reads the password from key password of Secret tor1-md5 in namespace ironlb-system: copy Secret metallb-system/tor1-md5 there",
		"not carried over: BGPPeer/metallb-system/other-as spec.myASN: 64999 differs from 64500",
		"not carried over: BGPAdvertisement/metallb-system/external: selects pool bgp-pool, which BGPAdvertisement/metallb-system/local already announces",
		"not carried over: L2Advertisement/metallb-system/both-l2: selects pool both-pool, which BGPAdvertisement/metallb-system/both-bgp announces over BGP",
		"not carried over: BGPAdvertisement/metallb-system/v6 spec.peers:",
		`not carried over: BGPAdvertisement/metallb-system/v6 spec.communities[1]: "no-such-alias" is no community`,
		"not carried over: BFDProfile/metallb-system/full-profile spec.echoMode:",
		"not carried over: BGPPeer/metallb-system/tor2 spec.bfdProfile: bfd.enabled: Invalid value: true: BFD is single-hop only",
		"not carried over: BGPPeer/metallb-system/tor2 spec.connectTime:",
		"note: BGPPeer/metallb-system/ibgp-rr spec.dynamicASN: internal",
	)
}

func TestImportOpenELB(t *testing.T) {
	res, cfg := importFile(t, OpenELB, "openelb.yaml")
	checkSlice(t, "pools", cfg.PoolNames(), []string{"eip-sample-pool", "eip-ns", "eip-selector", "bgp-eip", "eip", "retired"})

	def := pool(t, cfg, "eip-sample-pool")
	check(t, "default Eip mode", def.Mode, config.ModeLayer2)
	checkSlice(t, "default Eip ranges", ranges(def), []string{"203.0.113.91-203.0.113.100"})
	checkSlice(t, "default Eip interfaces", def.Interfaces, []string{"eth0"})

	ns := pool(t, cfg, "eip-ns")
	check(t, "eip-ns interfaces", len(ns.Interfaces), 0)
	check(t, "eip-ns admits project", ns.Admits("project", nil, nil) == nil, true)
	check(t, "eip-ns admits other", ns.Admits("other", nil, nil) == nil, false)
	sel := pool(t, cfg, "eip-selector")
	check(t, "eip-selector mode", sel.Mode, config.ModeVIP)
	check(t, "eip-selector admits the workspace", sel.Admits("x", labels.Set{"kubesphere.io/workspace": "workspace"}, nil) == nil, true)
	check(t, "bgp-eip mode", pool(t, cfg, "bgp-eip").Mode, config.ModeBGP)
	// Namespace-bound Eips by priority (lowest first), then the default one.
	checkSlice(t, "auto-assign order", autoAssignOrder(cfg), []string{"eip-ns", "eip-selector", "eip-sample-pool"})

	bgp := cfg.BGP
	if bgp == nil {
		t.Fatal("no bgp section")
	}
	check(t, "localASN", bgp.LocalASN, 64500)
	check(t, "routerID", bgp.RouterID.String(), "198.51.100.2")
	check(t, "listenPort", bgp.ListenPort, 17900)
	check(t, "peers", len(bgp.Peers), 2)
	sample, border := bgp.Peers[0], bgp.Peers[1]
	check(t, "sample asn", sample.ASN, 64501)
	check(t, "sample address", sample.Address.String(), "198.51.100.5")
	check(t, "sample on leaf1", sample.Selects(labels.Set{"openelb.kubesphere.io/rack": "leaf1"}), true)
	check(t, "sample on leaf2", sample.Selects(labels.Set{"openelb.kubesphere.io/rack": "leaf2"}), false)
	check(t, "border port", border.Port, 1179)
	check(t, "border holdTime", border.HoldTime, 9*time.Second)
	check(t, "border keepaliveTime", border.KeepaliveTime, 3*time.Second)
	check(t, "border ebgpMultihop", border.EBGPMultihop, 3)
	check(t, "border secret", fmt.Sprint(border.PasswordSecretRef), "border-bgp-password/password")

	wantLines(t, res,
		"note: Eip/eip-ns spec.interface: can_reach:198.51.100.1",
		"note: Eip/bgp-eip: is neither the default Eip",
		"not carried over: Eip/retired spec.disable:",
		"not carried over: BgpConf/spare: OpenELB reads only the BgpConf named default",
		"not carried over: BgpPeer/bgppeer-sample spec.afiSafis:",
		"not carried over: BgpPeer/border spec.conf.authPassword: a plain password is not carried over",
		"not carried over: BgpPeer/border spec.transport.passiveMode:",
		"lb.kubesphere.io/v1alpha1: openelb and protocol.openelb.kubesphere.io/v1alpha1 are no longer needed",
		"eip.openelb.kubesphere.io/v1alpha2 keeps working",
	)
}

func TestImportPureLB(t *testing.T) {
	res, cfg := importFile(t, PureLB, "purelb.yaml")
	checkSlice(t, "pools", cfg.PoolNames(), []string{"default", "legacy", "routed"})
	for _, p := range cfg.Pools {
		check(t, p.Name+" mode", p.Mode, config.ModeVIP)
	}
	def := pool(t, cfg, "default")
	checkSlice(t, "default ranges", ranges(def), []string{"198.51.100.240-198.51.100.250", "2001:db8:1::f0-2001:db8:1::ff"})
	check(t, "default autoAssign", def.AutoAssign, true)
	checkSlice(t, "default interfaces", def.Interfaces, []string{"enp1s0"})
	legacy := pool(t, cfg, "legacy")
	checkSlice(t, "legacy ranges", ranges(legacy), []string{"203.0.113.64-203.0.113.79"})
	check(t, "legacy autoAssign", legacy.AutoAssign, false)
	routed := pool(t, cfg, "routed")
	checkSlice(t, "routed ranges", ranges(routed), []string{"203.0.113.128-203.0.113.191", "203.0.113.200-203.0.113.210"})
	check(t, "routed interfaces", len(routed.Interfaces), 0)
	check(t, "bgp", cfg.BGP == nil, true)

	wantLines(t, res,
		"not carried over: ServiceGroup/purelb/legacy spec.local.aggregation: /25",
		"not carried over: ServiceGroup/purelb/ipam spec.netbox:",
		"note: LBNodeAgent/purelb/default spec.local: PureLB put addresses that are on no node subnet on kube-lb0",
		"note: LBNodeAgent/purelb/default spec.local.localint: enp1s0 is the interface of pools default, legacy",
		"purelb.io/service-group keeps working",
	)
}
