package bgp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/netlab"
)

// Routing daemons the lab tests peer with. hack/ensure-deps.sh installs
// them (frr, bird2); a missing one fails the test.
const (
	frrDir = "/usr/lib/frr"
	vtysh  = "vtysh"
	bird   = "bird"
	birdc  = "birdc"
)

// frr runs FRR's zebra, bgpd and, for BFD, bfdd in a router's namespace, in
// the foreground under the test, with every file in a private directory.
type frr struct {
	t     testing.TB
	host  *netlab.Host
	lab   *netlab.Lab
	dir   string
	bfd   bool
	procs []*framework.Process
}

// startFRR starts FRR on host with the given bgpd (and bfdd) configuration.
func startFRR(t testing.TB, lab *netlab.Lab, host *netlab.Host, bgpdConf, bfddConf string) *frr {
	t.Helper()
	for _, bin := range []string{filepath.Join(frrDir, "zebra"), filepath.Join(frrDir, "bgpd"), filepath.Join(frrDir, "bfdd")} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("FRR is not installed (%v): run hack/ensure-deps.sh", err)
		}
	}
	// The daemons drop privileges to the frr user, who must reach the
	// directory: t.TempDir's parents are private to root.
	dir, err := os.MkdirTemp("", "ilb-frr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &frr{t: t, host: host, lab: lab, dir: dir, bfd: bfddConf != ""}
	files := map[string]string{
		"zebra.conf": "hostname " + host.Name + "\nlog stdout informational\n",
		"bgpd.conf":  bgpdConf,
		"bfdd.conf":  bfddConf,
	}
	uid, gid := frrOwner(t)
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range f.procs {
				t.Logf("%s log (test failed):\n%s", p.Name, p.LogTail(40))
			}
		}
		f.stop()
	})
	f.start()
	return f
}

func frrOwner(t testing.TB) (int, int) {
	u, err := user.Lookup("frr")
	if err != nil {
		t.Fatalf("user frr: %v (install FRR: hack/ensure-deps.sh)", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid
}

// start starts the daemons and waits until bgpd answers vtysh.
func (f *frr) start() {
	f.t.Helper()
	daemons := []string{"zebra", "bgpd"}
	if f.bfd {
		daemons = []string{"zebra", "bfdd", "bgpd"}
	}
	f.procs = nil
	for _, d := range daemons {
		args := []string{
			"-f", filepath.Join(f.dir, d+".conf"),
			"-i", filepath.Join(f.dir, d+".pid"),
			"--vty_socket", f.dir,
			"--log", "stdout",
			"-P", "0", // no TCP vty
		}
		switch d {
		case "zebra":
			args = append(args, "-z", filepath.Join(f.dir, "zserv.api"))
		case "bfdd":
			args = append(args, "-z", filepath.Join(f.dir, "zserv.api"), "--bfdctl", filepath.Join(f.dir, "bfdd.sock"))
		case "bgpd":
			args = append(args, "-z", filepath.Join(f.dir, "zserv.api"))
		}
		p, err := f.host.StartProcess(f.t.Context(), "frr-"+d, filepath.Join(frrDir, d), args...)
		if err != nil {
			f.t.Fatal(err)
		}
		f.procs = append(f.procs, p)
		// Each daemon connects to zebra's socket; start the next once
		// this one's vty socket is up, so it is ready.
		vty := filepath.Join(f.dir, d+".vty")
		if err := framework.WaitFor(f.t.Context(), 10*time.Second, 20*time.Millisecond, func(context.Context) (bool, error) {
			if p.Exited() {
				return false, fmt.Errorf("%s exited: %v\n%s", d, p.Wait(), p.LogTail(20))
			}
			_, err := os.Stat(vty)
			return err == nil, nil
		}); err != nil {
			f.t.Fatalf("FRR %s did not start: %v", d, err)
		}
	}
	if err := framework.WaitFor(f.t.Context(), 10*time.Second, 50*time.Millisecond, func(ctx context.Context) (bool, error) {
		_, err := f.vtysh(ctx, "show bgp summary json")
		return err == nil, nil
	}); err != nil {
		f.t.Fatalf("bgpd does not answer: %v", err)
	}
}

// stop stops the daemons, bgpd first (it sends each peer a Cease
// NOTIFICATION, as a router being restarted does).
func (f *frr) stop() {
	for i := len(f.procs) - 1; i >= 0; i-- {
		_ = f.procs[i].Stop(5 * time.Second)
		// Stale sockets would make the next start's wait succeed early.
		name := strings.TrimPrefix(filepath.Base(f.procs[i].Name), "frr-")
		os.Remove(filepath.Join(f.dir, name+".vty"))
	}
}

func (f *frr) restart() {
	f.t.Helper()
	f.stop()
	f.start()
}

// vtysh runs FRR commands and returns their output.
func (f *frr) vtysh(ctx context.Context, cmds ...string) (string, error) {
	args := []string{"--vty_socket", f.dir}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, vtysh, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("vtysh %s: %w: %s", strings.Join(cmds, "; "), err, out)
	}
	return string(out), nil
}

// route is a prefix as a router sees it: one entry per path.
type route struct {
	paths []routePath
}

type routePath struct {
	nextHop     netip.Addr
	localPref   int // -1 when absent
	communities string
	large       string
	multipath   bool
	best        bool
}

func (r route) nextHops() []netip.Addr {
	var out []netip.Addr
	for _, p := range r.paths {
		out = append(out, p.nextHop)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// bgpRoute returns FRR's BGP paths for prefix (none if it has no route).
func (f *frr) bgpRoute(ctx context.Context, prefix netip.Prefix) (route, error) {
	afi := "ipv4"
	if prefix.Addr().Is6() {
		afi = "ipv6"
	}
	out, err := f.vtysh(ctx, fmt.Sprintf("show bgp %s unicast %s json", afi, prefix))
	if err != nil {
		return route{}, err
	}
	var doc struct {
		Paths []struct {
			Nexthops []struct {
				IP   string `json:"ip"`
				Used bool   `json:"used"`
			} `json:"nexthops"`
			LocPrf    *int `json:"locPrf"`
			Multipath bool `json:"multipath"`
			Bestpath  *struct {
				Overall bool `json:"overall"`
			} `json:"bestpath"`
			Community *struct {
				String string `json:"string"`
			} `json:"community"`
			LargeCommunity *struct {
				String string `json:"string"`
			} `json:"largeCommunity"`
		} `json:"paths"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return route{}, fmt.Errorf("show bgp %s: %w: %s", prefix, err, out)
	}
	var r route
	for _, p := range doc.Paths {
		rp := routePath{localPref: -1, multipath: p.Multipath, best: p.Bestpath != nil && p.Bestpath.Overall}
		if len(p.Nexthops) > 0 {
			rp.nextHop, _ = netip.ParseAddr(p.Nexthops[0].IP)
		}
		if p.LocPrf != nil {
			rp.localPref = *p.LocPrf
		}
		if p.Community != nil {
			rp.communities = p.Community.String
		}
		if p.LargeCommunity != nil {
			rp.large = p.LargeCommunity.String
		}
		r.paths = append(r.paths, rp)
	}
	return r, nil
}

// kernelNextHops returns the next hops of host's kernel route for prefix,
// as zebra installed it (none without a route).
func kernelNextHops(ctx context.Context, host *netlab.Host, prefix netip.Prefix) ([]netip.Addr, error) {
	family := "-4"
	if prefix.Addr().Is6() {
		family = "-6"
	}
	out, err := host.Exec(ctx, "ip", family, "-j", "route", "show", "exact", prefix.String())
	if err != nil {
		return nil, err
	}
	var routes []struct {
		Gateway  string `json:"gateway"`
		Protocol string `json:"protocol"`
		Nexthops []struct {
			Gateway string `json:"gateway"`
		} `json:"nexthops"`
	}
	if err := json.Unmarshal([]byte(out), &routes); err != nil {
		return nil, fmt.Errorf("ip route: %w: %s", err, out)
	}
	var hops []netip.Addr
	for _, r := range routes {
		if r.Gateway != "" {
			a, _ := netip.ParseAddr(r.Gateway)
			hops = append(hops, a)
		}
		for _, nh := range r.Nexthops {
			a, _ := netip.ParseAddr(nh.Gateway)
			hops = append(hops, a)
		}
	}
	slices.SortFunc(hops, netip.Addr.Compare)
	return hops, nil
}

// birdRouter runs BIRD 2 in a router's namespace.
type birdRouter struct {
	t    testing.TB
	host *netlab.Host
	sock string
	proc *framework.Process
}

func startBIRD(t testing.TB, host *netlab.Host, conf string) *birdRouter {
	t.Helper()
	if _, err := exec.LookPath(bird); err != nil {
		t.Fatalf("BIRD is not installed (%v): run hack/ensure-deps.sh", err)
	}
	dir, err := os.MkdirTemp("", "ilb-bird-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	confPath := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	b := &birdRouter{t: t, host: host, sock: filepath.Join(dir, "bird.ctl")}
	b.proc, err = host.StartProcess(t.Context(), "bird", bird, "-f", "-c", confPath, "-s", b.sock, "-P", filepath.Join(dir, "bird.pid"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bird log (test failed):\n%s", b.proc.LogTail(40))
		}
		_ = b.proc.Stop(5 * time.Second)
	})
	if err := framework.WaitFor(t.Context(), 10*time.Second, 50*time.Millisecond, func(ctx context.Context) (bool, error) {
		if b.proc.Exited() {
			return false, fmt.Errorf("bird exited: %v\n%s", b.proc.Wait(), b.proc.LogTail(20))
		}
		_, err := b.birdc(ctx, "show status")
		return err == nil, nil
	}); err != nil {
		t.Fatalf("BIRD did not start: %v", err)
	}
	return b
}

func (b *birdRouter) birdc(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, birdc, append([]string{"-s", b.sock}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("birdc %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

var (
	birdVia       = regexp.MustCompile(`^\s+via (\S+)`)
	birdLocalPref = regexp.MustCompile(`^\s+BGP\.local_pref: (\d+)`)
	birdCommunity = regexp.MustCompile(`^\s+BGP\.community: (.*)$`)
	birdLarge     = regexp.MustCompile(`^\s+BGP\.large_community: (.*)$`)
)

// route parses `show route prefix all`: one path per "via" line.
func (b *birdRouter) route(ctx context.Context, prefix netip.Prefix) (route, error) {
	out, err := b.birdc(ctx, "show", "route", prefix.String(), "all")
	if err != nil {
		if strings.Contains(out, "Network not found") {
			return route{}, nil
		}
		return route{}, err
	}
	var r route
	for _, line := range strings.Split(out, "\n") {
		if m := birdVia.FindStringSubmatch(line); m != nil {
			a, _ := netip.ParseAddr(m[1])
			r.paths = append(r.paths, routePath{nextHop: a, localPref: -1})
			continue
		}
		if len(r.paths) == 0 {
			continue
		}
		p := &r.paths[len(r.paths)-1]
		if m := birdLocalPref.FindStringSubmatch(line); m != nil {
			p.localPref, _ = strconv.Atoi(m[1])
		} else if m := birdCommunity.FindStringSubmatch(line); m != nil {
			p.communities = strings.TrimSpace(m[1])
		} else if m := birdLarge.FindStringSubmatch(line); m != nil {
			p.large = strings.TrimSpace(m[1])
		}
	}
	return r, nil
}

// routeSource is a router whose view of a prefix can be read.
type routeSource interface {
	bgpRoute(ctx context.Context, prefix netip.Prefix) (route, error)
}

func (b *birdRouter) bgpRoute(ctx context.Context, prefix netip.Prefix) (route, error) {
	return b.route(ctx, prefix)
}

// waitRoute waits until the router's paths for prefix have exactly the next
// hops want (none: withdrawn), and returns the route and how long it took.
func waitRoute(t testing.TB, r routeSource, prefix netip.Prefix, timeout time.Duration, want ...netip.Addr) (route, time.Duration) {
	t.Helper()
	slices.SortFunc(want, netip.Addr.Compare)
	begin := time.Now()
	var last route
	err := framework.WaitFor(t.Context(), timeout, 20*time.Millisecond, func(ctx context.Context) (bool, error) {
		var err error
		last, err = r.bgpRoute(ctx, prefix)
		if err != nil {
			return false, err
		}
		return slices.Equal(last.nextHops(), want), nil
	})
	if err != nil {
		t.Fatalf("route %s: want next hops %v, have %v: %v", prefix, want, last.nextHops(), err)
	}
	return last, time.Since(begin)
}
