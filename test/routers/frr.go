package routers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/netlab"
)

// Where Debian's frr package puts the daemons, and its shell.
const (
	FRRDir = "/usr/lib/frr"
	vtysh  = "vtysh"
)

// Bounds on a daemon's start and stop, and on one vtysh or birdc command.
const (
	startTimeout   = 10 * time.Second
	stopGrace      = 5 * time.Second
	commandTimeout = 10 * time.Second
)

// FRROptions configure StartFRR.
type FRROptions struct {
	// BGPD is bgpd's configuration. Required; FRRNodesConfig writes the
	// usual one.
	BGPD string
	// BFDD, when set, also runs bfdd with this configuration.
	BFDD string
}

// FRR is FRR's zebra, bgpd and, for BFD, bfdd running in a router's
// namespace. zebra installs bgpd's best paths (ECMP included) in the
// router's kernel, so the router forwards along what it learned. Its methods
// are safe for concurrent use.
type FRR struct {
	// Host is the router FRR runs on.
	Host *netlab.Host

	dir string
	bfd bool

	mu     sync.Mutex
	procs  []*framework.Process
	closed bool
}

// StartFRR starts FRR on host and returns once bgpd answers vtysh. ctx
// bounds the start only: the daemons run until Close (or until the lab
// closes, which kills every process in its namespaces). On error nothing is
// left running.
func StartFRR(ctx context.Context, host *netlab.Host, opts FRROptions) (_ *FRR, err error) {
	if opts.BGPD == "" {
		return nil, errors.New("routers: FRROptions.BGPD is required")
	}
	for _, d := range []string{"zebra", "bgpd", "bfdd"} {
		if _, err := os.Stat(filepath.Join(FRRDir, d)); err != nil {
			return nil, fmt.Errorf("routers: FRR is not installed (%w): run hack/ensure-deps.sh", err)
		}
	}
	uid, gid, err := frrOwner()
	if err != nil {
		return nil, err
	}
	// The daemons drop privileges to the frr user, who must reach the
	// directory: a test's TempDir has parents private to root. A short path
	// also keeps the vty sockets within the 107 bytes of a Unix socket path.
	dir, err := os.MkdirTemp("", "ilb-frr-")
	if err != nil {
		return nil, err
	}
	f := &FRR{Host: host, dir: dir, bfd: opts.BFDD != ""}
	defer func() {
		if err != nil {
			_ = f.Close()
		}
	}()
	files := map[string]string{
		"zebra.conf": "hostname " + host.Name + "\nlog stdout informational\n",
		"bgpd.conf":  opts.BGPD,
		"bfdd.conf":  opts.BFDD,
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
			return nil, err
		}
		if err := os.Chown(p, uid, gid); err != nil {
			return nil, err
		}
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.start(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

func frrOwner() (int, int, error) {
	u, err := user.Lookup("frr")
	if err != nil {
		return 0, 0, fmt.Errorf("routers: user frr: %w (install FRR: hack/ensure-deps.sh)", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("routers: user frr: %w", err)
	}
	return uid, gid, nil
}

// start starts the daemons one after the other and waits until bgpd
// answers vtysh, each step bounded by startTimeout. f.mu is held.
func (f *FRR) start(ctx context.Context) error {
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
			"-z", filepath.Join(f.dir, "zserv.api"),
		}
		if d == "bfdd" {
			args = append(args, "--bfdctl", filepath.Join(f.dir, "bfdd.sock"))
		}
		// Not ctx: the daemons outlive the start; Close stops them.
		p, err := f.Host.StartProcess(context.Background(), "frr-"+d, filepath.Join(FRRDir, d), args...)
		if err != nil {
			return err
		}
		f.procs = append(f.procs, p)
		// Each daemon connects to zebra's socket; start the next once this
		// one's vty socket is up, so it is ready.
		vty := filepath.Join(f.dir, d+".vty")
		if err := framework.WaitFor(ctx, startTimeout, 20*time.Millisecond, func(context.Context) (bool, error) {
			if p.Exited() {
				return false, fmt.Errorf("%s exited: %v\n%s", d, p.Wait(), p.LogTail(20))
			}
			_, err := os.Stat(vty)
			return err == nil, nil
		}); err != nil {
			return fmt.Errorf("routers: FRR %s on %s did not start: %w", d, f.Host.Name, err)
		}
	}
	if err := framework.WaitFor(ctx, startTimeout, 50*time.Millisecond, func(ctx context.Context) (bool, error) {
		_, err := f.Vtysh(ctx, "show bgp summary json")
		return err == nil, nil
	}); err != nil {
		return fmt.Errorf("routers: FRR bgpd on %s does not answer: %w", f.Host.Name, err)
	}
	return nil
}

// stop stops the daemons, bgpd first: it sends each peer a Cease
// NOTIFICATION, as a router being restarted does. f.mu is held.
func (f *FRR) stop() {
	for i := len(f.procs) - 1; i >= 0; i-- {
		_ = f.procs[i].Stop(stopGrace)
		// A stale socket would make the next start's wait succeed early.
		name := strings.TrimPrefix(filepath.Base(f.procs[i].Name), "frr-")
		os.Remove(filepath.Join(f.dir, name+".vty"))
	}
}

// Restart stops the daemons as a router's reboot would (bgpd ends its
// sessions with a Cease) and starts them again with the configuration they
// started with; changes made through Vtysh are lost.
func (f *FRR) Restart(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errors.New("routers: FRR is closed")
	}
	f.stop()
	return f.start(ctx)
}

// Close stops the daemons and removes their directory. It is safe to call
// more than once.
func (f *FRR) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	f.stop()
	return os.RemoveAll(f.dir)
}

// VtyDir is the directory of the daemons' vty sockets: `vtysh --vty_socket
// <dir>` reaches them from anywhere on the machine.
func (f *FRR) VtyDir() string { return f.dir }

// LogTails returns the last n lines of each daemon's output.
func (f *FRR) LogTails(n int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, p := range f.procs {
		fmt.Fprintf(&b, "--- %s\n%s\n", p.Name, p.LogTail(n))
	}
	return b.String()
}

// Vtysh runs FRR commands (each one a -c, so "configure terminal", "router
// bgp 64512", "neighbor … password …" configure live) and returns their
// output. Each call is bounded to 10 s.
func (f *FRR) Vtysh(ctx context.Context, cmds ...string) (string, error) {
	args := []string{"--vty_socket", f.dir}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, vtysh, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("vtysh %s: %w: %s", strings.Join(cmds, "; "), err, out)
	}
	return string(out), nil
}

// Route returns bgpd's paths for prefix (none if it has no route).
func (f *FRR) Route(ctx context.Context, prefix netip.Prefix) (Route, error) {
	afi := "ipv4"
	if prefix.Addr().Is6() {
		afi = "ipv6"
	}
	out, err := f.Vtysh(ctx, fmt.Sprintf("show bgp %s unicast %s json", afi, prefix))
	if err != nil {
		return Route{}, err
	}
	var doc struct {
		Paths []struct {
			Nexthops []struct {
				IP string `json:"ip"`
			} `json:"nexthops"`
			Peer struct {
				PeerID string `json:"peerId"`
			} `json:"peer"`
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
		return Route{}, fmt.Errorf("show bgp %s: %w: %s", prefix, err, out)
	}
	var r Route
	for _, p := range doc.Paths {
		rp := Path{LocalPref: -1, Multipath: p.Multipath, Best: p.Bestpath != nil && p.Bestpath.Overall}
		// The first next hop is the one the peer sent (for IPv6, the
		// global address; a link-local one may follow).
		if len(p.Nexthops) > 0 {
			if rp.NextHop, err = netip.ParseAddr(p.Nexthops[0].IP); err != nil {
				return Route{}, fmt.Errorf("show bgp %s: next hop: %w", prefix, err)
			}
		}
		if id := p.Peer.PeerID; id != "" {
			if rp.Peer, err = netip.ParseAddr(id); err != nil {
				return Route{}, fmt.Errorf("show bgp %s: peer: %w", prefix, err)
			}
		}
		if p.LocPrf != nil {
			rp.LocalPref = *p.LocPrf
		}
		if p.Community != nil {
			rp.Communities = p.Community.String
		}
		if p.LargeCommunity != nil {
			rp.LargeCommunities = p.LargeCommunity.String
		}
		r.Paths = append(r.Paths, rp)
	}
	return r, nil
}

// Neighbors returns the state of every configured BGP neighbour
// (Established, Active, Connect, Idle, …) by address, from `show bgp summary
// json`, IPv4 and IPv6 unicast together.
func (f *FRR) Neighbors(ctx context.Context) (map[netip.Addr]string, error) {
	out, err := f.Vtysh(ctx, "show bgp summary json")
	if err != nil {
		return nil, err
	}
	var doc map[string]struct {
		Peers map[string]struct {
			State string `json:"state"`
		} `json:"peers"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return nil, fmt.Errorf("show bgp summary: %w: %s", err, out)
	}
	states := map[netip.Addr]string{}
	for _, family := range doc {
		for addr, p := range family.Peers {
			a, err := netip.ParseAddr(addr)
			if err != nil {
				// Peers are keyed by address here; an interface name would
				// mean an unnumbered neighbour, which the lab has none of.
				continue
			}
			states[a] = p.State
		}
	}
	return states, nil
}

// NeighborState returns bgpd's state for one neighbour (Established,
// Active, …), from `show bgp neighbors <addr> json`.
func (f *FRR) NeighborState(ctx context.Context, addr netip.Addr) (string, error) {
	out, err := f.Vtysh(ctx, "show bgp neighbors "+addr.String()+" json")
	if err != nil {
		return "", err
	}
	var doc map[string]struct {
		BGPState string `json:"bgpState"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return "", fmt.Errorf("show bgp neighbors: %w: %s", err, out)
	}
	n, ok := doc[addr.String()]
	if !ok {
		return "", fmt.Errorf("show bgp neighbors %s: no such neighbour: %s", addr, out)
	}
	return n.BGPState, nil
}

// WaitNeighbors waits until bgpd's state for each of addrs is state (e.g.
// "Established") and returns how long that took.
func (f *FRR) WaitNeighbors(ctx context.Context, timeout time.Duration, state string, addrs ...netip.Addr) (time.Duration, error) {
	begin := time.Now()
	var last map[netip.Addr]string
	var lastErr error
	err := framework.WaitFor(ctx, timeout, 50*time.Millisecond, func(ctx context.Context) (bool, error) {
		last, lastErr = f.Neighbors(ctx)
		if lastErr != nil {
			return false, nil
		}
		for _, a := range addrs {
			if last[a] != state {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		if lastErr != nil {
			err = fmt.Errorf("%w (last read: %v)", err, lastErr)
		}
		return time.Since(begin), fmt.Errorf("FRR on %s: neighbours %v not all %s (states %v): %w", f.Host.Name, addrs, state, last, err)
	}
	return time.Since(begin), nil
}

// FRRNodesConfig returns bgpd configuration for router, in AS asn, peering
// with every node of nodes, which speak for nodeASN: over IPv4 in peer group
// "nodes" and over IPv6 in peer group "nodes6", retrying connections every
// second. It accepts eBGP routes without a policy (FRR's default since 7.4
// is to refuse them) and installs up to 8 equal paths (ECMP). extra is
// inserted in `router bgp` after the neighbours, for per-neighbour settings
// (passwords, BFD).
func FRRNodesConfig(router *netlab.Host, asn, nodeASN uint32, nodes []*netlab.Host, extra string) string {
	conf := fmt.Sprintf(`hostname %s
log stdout informational
router bgp %d
 bgp router-id %s
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 neighbor nodes peer-group
 neighbor nodes remote-as %d
 neighbor nodes timers connect 1
 neighbor nodes6 peer-group
 neighbor nodes6 remote-as %d
 neighbor nodes6 timers connect 1
`, router.Name, asn, router.IPv4, nodeASN, nodeASN)
	for _, n := range nodes {
		conf += fmt.Sprintf(" neighbor %s peer-group nodes\n neighbor %s peer-group nodes6\n", n.IPv4, n.IPv6)
	}
	conf += extra
	conf += ` address-family ipv4 unicast
  neighbor nodes activate
  maximum-paths 8
 exit-address-family
 address-family ipv6 unicast
  neighbor nodes6 activate
  maximum-paths 8
 exit-address-family
`
	return conf
}
