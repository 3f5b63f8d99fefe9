package main

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/test/framework"
)

func TestParseSyncs(t *testing.T) {
	got, err := parseSyncs("1, 10,4")
	if err != nil || !slices.Equal(got, []int{1, 10, 4}) {
		t.Errorf("parseSyncs = %v, %v; want [1 10 4]", got, err)
	}
	for _, bad := range []string{"", "0", "1,,2", "x", "-3"} {
		if _, err := parseSyncs(bad); err == nil {
			t.Errorf("parseSyncs(%q) succeeded, want an error", bad)
		}
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}, {0.001, time.Millisecond}} {
		if got := percentile(d, tc.p); got != tc.want {
			t.Errorf("percentile(1..100ms, %v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile(nil) = %v, want 0", got)
	}
}

// The pool must hold n Services plus the warm-up one, and never overlap the
// service CIDR.
func TestPoolPrefixes(t *testing.T) {
	svc := netip.MustParsePrefix(serviceCIDR)
	for _, n := range []int{1, smallPoolMax, smallPoolMax + 1, maxServices} {
		var size int
		for _, p := range poolPrefixes(n) {
			if p.Overlaps(svc) {
				t.Errorf("n=%d: pool %v overlaps the service CIDR %v", n, p, svc)
			}
			size += 1 << (32 - p.Bits())
		}
		if size < n+1 {
			t.Errorf("n=%d: pool holds %d addresses, want at least %d", n, size, n+1)
		}
	}
	want := "pools:\n- name: bench\n  addresses: [198.51.100.0/24, 203.0.113.0/24]\n"
	if got := poolConfig(poolPrefixes(10)); got != want {
		t.Errorf("poolConfig = %q, want %q", got, want)
	}
}

func TestParseMetrics(t *testing.T) {
	m := parseMetrics(`# HELP workqueue_adds_total [ALPHA] Total number of adds
# TYPE workqueue_adds_total counter
workqueue_adds_total{name="node"} 7
workqueue_adds_total{name="service"} 12
workqueue_queue_duration_seconds_sum{name="service"} 3
workqueue_queue_duration_seconds_count{name="service"} 12
rest_client_requests_total{code="200",host="127.0.0.1:6443",method="PATCH"} 40
rest_client_requests_total{code="201",host="127.0.0.1:6443",method="POST"} 2
process_start_time_seconds 1.7e+09
`)
	for _, tc := range []struct {
		name string
		got  float64
		want float64
	}{
		{"adds service", m.sum("workqueue_adds_total", `name="service"`), 12},
		{"adds all", m.sum("workqueue_adds_total"), 19},
		{"queue mean", m.mean("workqueue_queue_duration_seconds", `name="service"`), 0.25},
		{"requests", m.sum("rest_client_requests_total"), 42},
		{"posts", m.sum("rest_client_requests_total", `method="POST"`), 2},
		{"no labels", m.sum("process_start_time_seconds"), 1.7e9},
		{"missing mean", m.mean("nope"), 0},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func names(cs []contestant) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.name
	}
	return out
}

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    []string // contestant names; nil with wantErr
		wantErr string
	}{
		{args: nil, want: []string{"ironlb", "kube-vip", "metallb"}},
		{args: []string{"-contestants", "metallb, ironlb:syncs=1"}, want: []string{"metallb", "ironlb:syncs=1"}},
		{args: []string{"-contestants", "kube-vip-cloud-provider"}, want: []string{"kube-vip"}},
		// -syncs alone keeps its old meaning: only those ironlb runs.
		{args: []string{"-syncs", "1,10"}, want: []string{"ironlb:syncs=1", "ironlb:syncs=10"}},
		{args: []string{"-contestants", "ironlb,kube-vip", "-syncs", "1"}, want: []string{"ironlb", "kube-vip", "ironlb:syncs=1"}},
		{args: []string{"-contestants", "ironlb:syncs=1", "-syncs", "1"}, wantErr: "given twice"},
		// The peers sit the leader-kill mode out unless named.
		{args: []string{"-leader-kill", "3s"}, want: []string{"ironlb"}},
		{args: []string{"-leader-kill", "3s", "-syncs", "10"}, want: []string{"ironlb:syncs=10"}},
		{args: []string{"-leader-kill", "3s", "-contestants", "ironlb,metallb"}, wantErr: "runs ironlb only"},
		{args: []string{"-leader-kill", "3m"}, wantErr: "shorter than -timeout"},
		{args: []string{"-leader-kill", "3s", "-contestants", "kube-vip"}, wantErr: "runs ironlb only"},
		{args: []string{"-contestants", "ironlb,ironlb"}, wantErr: "given twice"},
		{args: []string{"-contestants", "cilium"}, wantErr: "unknown contestant"},
		{args: []string{"-contestants", "ironlb:syncs=0"}, wantErr: "syncs=N"},
		{args: []string{"-contestants", "ironlb:workers=3"}, wantErr: "syncs=N"},
		{args: []string{"-contestants", "metallb:x"}, wantErr: "takes no options"},
		{args: []string{"-contestants", ""}, wantErr: "unknown contestant"},
		{args: []string{"-n", "0"}, wantErr: "-n must be"},
		{args: []string{"-clients", "0"}, wantErr: "-clients"},
		{args: []string{"-timeout", "0s"}, wantErr: "-timeout"},
		{args: []string{"extra"}, wantErr: "unexpected arguments"},
	} {
		opts, err := parseFlags(tc.args)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseFlags(%q) error = %v, want one containing %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseFlags(%q): %v", tc.args, err)
			continue
		}
		if got := names(opts.contestants); !slices.Equal(got, tc.want) {
			t.Errorf("parseFlags(%q) contestants = %q, want %q", tc.args, got, tc.want)
		}
	}
	opts, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if opts.n != 300 || opts.clients != 6 || opts.timeout != 120*time.Second || opts.leaderKill != 0 {
		t.Errorf("defaults: n=%d clients=%d timeout=%v leader-kill=%v; want 300, 6, 2m0s, 0", opts.n, opts.clients, opts.timeout, opts.leaderKill)
	}
	opts, err = parseFlags([]string{"-syncs", "4"})
	if err != nil || opts.contestants[0].syncs != 4 || opts.contestants[0].kind != kindIronLB {
		t.Errorf("-syncs 4: %+v, %v", opts.contestants, err)
	}
}

func TestDeploymentArgs(t *testing.T) {
	manifest := `# a comment with --- in it
apiVersion: v1
kind: ServiceAccount
metadata:
  name: ironlb-ccm
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ironlb-ccm
spec:
  template:
    spec:
      containers:
      - name: sidecar
        args: [--nope]
      - name: ironlb-ccm
        args:
        - --concurrent-service-syncs=10
        - --profiling=false
        - --kubeconfig=/etc/kubernetes/ccm.conf
        - --secure-port=10258
        - --cloud-config=/etc/ironlb/cloud.conf
        - --v=2
`
	args, err := deploymentArgs([]byte(manifest), "ironlb-ccm", "ironlb-ccm")
	if err != nil {
		t.Fatal(err)
	}
	var kept, dropped []string
	for _, a := range args {
		if keepOutsidePod(a) {
			kept = append(kept, a)
		} else {
			dropped = append(dropped, a)
		}
	}
	if want := []string{"--concurrent-service-syncs=10", "--profiling=false", "--v=2"}; !slices.Equal(kept, want) {
		t.Errorf("kept %q, want %q", kept, want)
	}
	if want := []string{"--kubeconfig=/etc/kubernetes/ccm.conf", "--secure-port=10258", "--cloud-config=/etc/ironlb/cloud.conf"}; !slices.Equal(dropped, want) {
		t.Errorf("dropped %q, want %q", dropped, want)
	}
	for _, tc := range []struct{ deploy, container, wantErr string }{
		{"other", "ironlb-ccm", "no Deployment other"},
		{"ironlb-ccm", "other", "no container other"},
	} {
		if _, err := deploymentArgs([]byte(manifest), tc.deploy, tc.container); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("deploymentArgs(%s, %s) error = %v, want %q", tc.deploy, tc.container, err, tc.wantErr)
		}
	}
}

// The real install manifest must stay readable by the benchmark.
func TestInstalledArgsFromManifest(t *testing.T) {
	root, err := framework.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	kept, dropped, err := installedArgs(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range kept {
		if !strings.HasPrefix(a, "--") {
			t.Errorf("manifest arg %q is not a flag", a)
		}
	}
	t.Logf("kept %q, dropped %q", kept, dropped)
}

func TestIronlbArgs(t *testing.T) {
	installed := []string{"--concurrent-service-syncs=10", "--profiling=false"}
	if got := (contestant{name: "ironlb"}).ironlbArgs(installed); !slices.Equal(got, installed) {
		t.Errorf("as installed: %q", got)
	}
	got := (contestant{name: "ironlb:syncs=1", syncs: 1}).ironlbArgs(installed)
	if want := []string{"--profiling=false", "--concurrent-service-syncs=1"}; !slices.Equal(got, want) {
		t.Errorf("syncs=1: %q, want %q", got, want)
	}
	if installed[0] != "--concurrent-service-syncs=10" {
		t.Errorf("ironlbArgs changed its input: %q", installed)
	}
}

func TestAddresses(t *testing.T) {
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{kubeVIPAnnotation: "198.51.100.7, 2001:db8::7"}},
		Status:     v1.ServiceStatus{LoadBalancer: v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{{IP: "203.0.113.1"}}}},
	}
	if got := (contestant{kind: kindKubeVIP}).addresses(svc); !slices.Equal(got, []string{"198.51.100.7", "2001:db8::7"}) {
		t.Errorf("kube-vip addresses = %q", got)
	}
	for _, k := range []kind{kindIronLB, kindMetalLB} {
		if got := (contestant{kind: k}).addresses(svc); !slices.Equal(got, []string{"203.0.113.1"}) {
			t.Errorf("kind %d addresses = %q", k, got)
		}
	}
	if got := kubeVIPAddresses(&v1.Service{}); got != nil {
		t.Errorf("no annotation: %q", got)
	}
}

func TestRatio(t *testing.T) {
	for _, tc := range []struct {
		a, b time.Duration
		want string
	}{
		{58200 * time.Millisecond, 3100 * time.Millisecond, "18.8x"},
		{3 * time.Second, 3 * time.Second, "1.0x"},
		{time.Second, 4 * time.Second, "0.2x"}, // the peer was faster
		{99949 * time.Millisecond, time.Second, "99.9x"},
		{59 * time.Second, 18 * time.Millisecond, "3278x"},
		{0, time.Second, "n/a"},
		{time.Second, 0, "n/a"},
	} {
		if got := ratio(tc.a, tc.b); got != tc.want {
			t.Errorf("ratio(%v, %v) = %q, want %q", tc.a, tc.b, got, tc.want)
		}
	}
	for d, want := range map[time.Duration]string{0: "-", 85 * time.Millisecond: "85 ms", 3140 * time.Millisecond: "3.1 s", 2 * time.Minute: "120.0 s"} {
		if got := human(d); got != want {
			t.Errorf("human(%v) = %q, want %q", d, got, want)
		}
	}
}

func sampleResults() []*result {
	ms := time.Millisecond
	return []*result{
		{c: contestant{name: "ironlb:syncs=1", kind: kindIronLB, syncs: 1}, label: "ironlb:syncs=1", n: 300, total: 9 * time.Second, p50: 2 * time.Second, p99: 4 * time.Second, loadAvg: "1.0"},
		{c: contestant{name: "ironlb", kind: kindIronLB}, label: "ironlb", n: 300, total: 3100 * ms, p50: 85 * ms, p99: 290 * ms, perSecond: 96.8, loadAvg: "1.5"},
		{c: contestant{name: "kube-vip", kind: kindKubeVIP}, label: "kube-vip-cloud-provider v0.0.12", n: 300, total: 58200 * ms, p50: 1190 * ms, p99: 2900 * ms, loadAvg: "2.0"},
		{c: contestant{name: "metallb", kind: kindMetalLB}, label: "metallb-controller v0.16.1", n: 300, failures: 180, waited: 120 * time.Second, total: 119 * time.Second, p50: 30 * time.Second, p99: 100 * time.Second, endedBy: "gave up after 2m0s", loadAvg: "2.5",
			duplicates: []string{"198.51.100.9 held by default/a, default/b"}},
	}
}

func TestComparisons(t *testing.T) {
	rs := sampleResults()
	if b := baseline(rs); b != rs[1] {
		t.Errorf("baseline = %v, want ironlb as installed", b.c.name)
	}
	if b := baseline(rs[:1]); b != rs[0] {
		t.Errorf("baseline without ironlb as installed = %v, want the first ironlb run", b)
	}
	if b := baseline(rs[2:]); b != nil {
		t.Errorf("baseline without ironlb = %v, want none", b.c.name)
	}
	got := comparisons(rs)
	want := []string{
		"kube-vip-cloud-provider v0.0.12: all assigned 58.2 s vs ironlb 3.1 s (18.8x); p50 1.2 s vs 85 ms (14.0x); p99 2.9 s vs 290 ms (10.0x)",
		"metallb-controller v0.16.1: assigned 120 of 300 within 120.0 s vs ironlb all in 3.1 s (more than 38.7x); p50 of those assigned 30.0 s vs 85 ms (353x); p99 of those assigned 100.0 s vs 290 ms (345x)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("comparisons =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// ironlb itself did not finish: figures, no ratio for the total.
	base := *rs[1]
	base.failures, base.waited = 10, 120*time.Second
	if got := compare(rs[2], &base); !strings.HasPrefix(got, "kube-vip-cloud-provider v0.0.12: all assigned 58.2 s vs ironlb assigned 290 of 300 within 120.0 s (no ratio: ironlb did not assign all)") {
		t.Errorf("compare with an unfinished ironlb = %q", got)
	}
}

func TestReports(t *testing.T) {
	rs := sampleResults()
	opts, err := parseFlags([]string{"-out", "x.md"})
	if err != nil {
		t.Fatal(err)
	}
	s := setup{installed: []string{"--concurrent-service-syncs=10", "--v=2"}}
	fails := []failure{{contestant{name: "metallb"}, errors.New("boom\nline two")}}
	text := textReport(rs, fails, s, opts, "2 CPUs")
	for _, want := range []string{
		"contestant", "all assigned after", "load avg",
		"ironlb as installed: the args of manifests/base/ccm.yaml (--concurrent-service-syncs=10 --v=2; left out as meaningless outside the pod: none)",
		"peers vs ironlb (ratio = peer ÷ ironlb):\n  kube-vip-cloud-provider v0.0.12: all assigned 58.2 s vs ironlb 3.1 s (18.8x)",
		"not within 2m0s", "DUPLICATE IP: 198.51.100.9", "metallb FAILED: boom",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text report lacks %q:\n%s", want, text)
		}
	}
	md := markdownReport(rs, fails, s, opts, "2 CPUs")
	for _, want := range []string{
		"`go run ./test/cmd/bench-e2e -out x.md` · 2 CPUs",
		"| contestant | n | assigned |",
		"|:---|---:|",
		"| ironlb | 300 | 300 | 85ms | 290ms | - | 3.1s | 96.8 | - | - | 0 | 1.5 |",
		"| metallb-controller v0.16.1 | 300 | 120 |",
		"- kube-vip-cloud-provider v0.0.12: all assigned 58.2 s vs ironlb 3.1 s (18.8x)",
		"- metallb FAILED: boom line two",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown report lacks %q:\n%s", want, md)
		}
	}
}

func TestKillLines(t *testing.T) {
	start := time.Now()
	k := &killReport{victim: "ironlb-ccm-a", standby: "ironlb-ccm-b", holder: "h_1", killedAt: start.Add(3 * time.Second), at: 3 * time.Second,
		createdAtKill: 200, assignedAtKill: 150, leaseDuration: 15 * time.Second, takeover: 16 * time.Second, standbyLogged: true}
	r := &result{n: 300, lastIP: start.Add(20 * time.Second)}
	got := strings.Join(k.lines(r), "\n")
	for _, want := range []string{
		"killed the leader ironlb-ccm-a (Lease holder h_1) with SIGKILL 3.0 s after the first create, when 200 of 300 Services were created and 150 had an address",
		"ironlb-ccm-b held the Lease 16.0 s after the kill (leaseDurationSeconds 15.0 s; its log reports acquiring it: true)",
		"all assigned 17.0 s after the kill",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("kill lines lack %q:\n%s", want, got)
		}
	}
	r.lastIP = start.Add(time.Second)
	if got := k.lines(r); got[len(got)-1] != "every Service had an address before the kill" {
		t.Errorf("all before the kill: %q", got)
	}
	r.failures, r.waited = 10, 120*time.Second
	if got := k.lines(r); got[len(got)-1] != "290 of 300 assigned when the run gave up, 117.0 s after the kill" {
		t.Errorf("gave up: %q", got)
	}
	if got := (&killReport{err: errors.New("x")}).lines(r); len(got) != 1 || got[0] != "NO KILL: x" {
		t.Errorf("no kill: %q", got)
	}
}

func TestCommandLine(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "x.log")
	content := "=== 2026 starting metallb-controller: /bin/old\nnoise\n=== 2026 starting other: /bin/other\n=== 2026 starting metallb-controller: /bin/mc --kubeconfig=" + dir + "/kubeconfig\n"
	if err := os.WriteFile(log, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &framework.Process{Name: "metallb-controller", LogPath: log}
	if got, want := commandLine(p, dir), "/bin/mc --kubeconfig=$DIR/kubeconfig"; got != want {
		t.Errorf("commandLine = %q, want %q", got, want)
	}
	if got := commandLine(&framework.Process{Name: "x", LogPath: filepath.Join(dir, "none")}, dir); got != "?" {
		t.Errorf("no log: %q", got)
	}
}
