package netlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ironlb/ironlb/test/framework"
)

const (
	// DefaultTimeout bounds New.
	DefaultTimeout = 30 * time.Second
	// closeTimeout bounds Close as a whole (the control plane's own stop is
	// bounded separately, by framework).
	closeTimeout = 30 * time.Second
	// closeGrace is how long processes left in the namespaces get between
	// SIGTERM and SIGKILL when the lab closes.
	closeGrace = 2 * time.Second
)

// ErrNotRoot is returned by New when the process is not root: creating
// network namespaces needs CAP_SYS_ADMIN and CAP_NET_ADMIN.
var ErrNotRoot = errors.New("netlab needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) to create network namespaces; run the tests as root, as CI does")

// Options configures New.
type Options struct {
	// Nodes is the number of nodes, n1…nN (at most MaxNodes).
	Nodes int
	// Client adds the LAN client cl.
	Client bool
	// Routers names routers to put on the LAN, e.g. "r1" (at most
	// MaxRouters; a lowercase letter then up to 5 lowercase letters or
	// digits; not sw, cp, cl, c2 or n<digits>). They forward IPv4 and IPv6.
	Routers []string
	// Client2 adds client2 (c2) on LAN2, behind the first router.
	Client2 bool
	// Dir receives logs and the control plane's files. Default: a fresh
	// temporary directory, removed by Close. A given Dir is created if
	// needed and kept.
	Dir string
	// ControlPlane is the template StartControlPlane uses. Netns and
	// BindAddress are the control plane host's; Dir defaults to
	// <Dir>/controlplane and Logf to the lab's.
	ControlPlane framework.Options
	// Timeout bounds New. Default DefaultTimeout.
	Timeout time.Duration
	// NoSignalHandler keeps New from installing its handler for SIGINT,
	// SIGTERM and SIGHUP, which closes every open lab and then lets the
	// signal take its course. Set it when the program handles those signals
	// itself and calls Close.
	NoSignalHandler bool
	// Logf receives progress messages. Default: discard.
	Logf func(format string, args ...any)
}

func (o *Options) validate() error {
	if o.Nodes < 0 || o.Nodes > MaxNodes {
		return fmt.Errorf("netlab: Nodes = %d, want 0…%d", o.Nodes, MaxNodes)
	}
	if len(o.Routers) > MaxRouters {
		return fmt.Errorf("netlab: %d routers, at most %d fit the address plan", len(o.Routers), MaxRouters)
	}
	seen := map[string]bool{}
	for _, r := range o.Routers {
		switch {
		case !routerName.MatchString(r):
			return fmt.Errorf("netlab: router name %q: want a lowercase letter then up to 5 lowercase letters or digits", r)
		case r == switchName || r == controlName || r == clientName || r == client2Name || nodeName.MatchString(r):
			return fmt.Errorf("netlab: router name %q is reserved", r)
		case seen[r]:
			return fmt.Errorf("netlab: router %q named twice", r)
		}
		seen[r] = true
	}
	if o.Client2 && len(o.Routers) == 0 {
		return errors.New("netlab: Client2 sits behind the first router; name at least one in Routers")
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return nil
}

// Lab is a running network of namespaces; see the package documentation.
// Its methods are safe for concurrent use.
type Lab struct {
	// ID is the lab's unique id; every namespace is named ID-<host>.
	ID string
	// Dir holds the lab's logs and the control plane's files.
	Dir string

	sw, cp, client, client2 *Host
	nodes, routers          []*Host
	hosts                   []*Host // all but the switch

	opts    Options
	logf    func(format string, args ...any)
	ownsDir bool

	mu           sync.Mutex
	netns        []string // namespaces (possibly) created
	controlPlane *framework.ControlPlane
	servers      []*http.Server
	serving      sync.WaitGroup
	closed       bool

	closeOnce sync.Once
	closeErr  error
}

// New builds a lab and returns once every link is up and forwarding. ctx
// bounds only the build (as does Options.Timeout); the lab lives until
// Close. On error nothing is left behind.
func New(ctx context.Context, opts Options) (_ *Lab, err error) {
	begin := time.Now()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	for _, tool := range []string{"ip", "bridge"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("netlab: %w (install iproute2; hack/ensure-deps.sh does)", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()

	if gone, err := Sweep(ctx); err != nil {
		opts.Logf("netlab: sweeping crashed labs: %v", err)
	} else if len(gone) > 0 {
		opts.Logf("netlab: deleted namespaces left by crashed labs: %s", strings.Join(gone, " "))
	}

	id, err := claimID()
	if err != nil {
		return nil, fmt.Errorf("netlab: claim a lab id: %w", err)
	}
	l := plan(id, opts)
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
		}
	}()
	if !opts.NoSignalHandler {
		register(l)
	}
	if l.Dir == "" {
		if l.Dir, err = os.MkdirTemp("", strings.TrimSuffix(tempDirPattern(id), "*")); err != nil {
			return nil, err
		}
		l.ownsDir = true
	} else if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return nil, err
	}
	if err := l.build(ctx); err != nil {
		return nil, fmt.Errorf("netlab: build lab %s: %w", id, err)
	}
	if err := l.waitReady(ctx); err != nil {
		return nil, fmt.Errorf("netlab: lab %s: %w", id, err)
	}
	l.logf("netlab: lab %s up in %v: %s", id, time.Since(begin).Round(time.Millisecond), l.summary())
	return l, nil
}

// plan lays out the hosts and their addresses (see the package doc).
func plan(id string, opts Options) *Lab {
	l := &Lab{ID: id, Dir: opts.Dir, opts: opts, logf: opts.Logf}
	add := func(name string, role Role) *Host {
		h := &Host{Name: name, Netns: id + "-" + name, Role: role, lab: l}
		if role != RoleSwitch {
			l.hosts = append(l.hosts, h)
		}
		return h
	}
	l.sw = add(switchName, RoleSwitch)
	l.cp = add(controlName, RoleControlPlane)
	l.cp.NIC = lanNIC(controlName, controlNum)
	for i, name := range opts.Routers {
		num := firstRouterNum
		if i > 0 {
			num = routerNumBase + i
		}
		r := add(name, RoleRouter)
		r.NIC = lanNIC(name, num)
		l.routers = append(l.routers, r)
	}
	for i := 1; i <= opts.Nodes; i++ {
		name := fmt.Sprintf("n%d", i)
		n := add(name, RoleNode)
		n.NIC = lanNIC(name, nodeNumBase+i)
		l.nodes = append(l.nodes, n)
	}
	if opts.Client {
		l.client = add(clientName, RoleClient)
		l.client.NIC = lanNIC(clientName, clientNum)
	}
	if opts.Client2 {
		r := l.routers[0]
		lan2 := lan2NIC(Iface2, "q-"+r.Name, firstRouterNum)
		r.LAN2 = &lan2
		l.client2 = add(client2Name, RoleClient)
		l.client2.NIC = lan2NIC(Iface, "p-"+client2Name, clientNum)
	}
	return l
}

func lanNIC(host string, num int) NIC {
	v4, v6, mac := lanAddrs(num)
	return NIC{Iface: Iface, IPv4: v4, IPv6: v6, MAC: mac, SwitchPort: "p-" + host, Bridge: bridgeLAN, Prefix4: LANv4, Prefix6: LANv6}
}

func lan2NIC(iface, port string, num int) NIC {
	v4, v6, mac := lan2Addrs(num)
	return NIC{Iface: iface, IPv4: v4, IPv6: v6, MAC: mac, SwitchPort: port, Bridge: bridgeLAN2, Prefix4: LAN2v4, Prefix6: LAN2v6}
}

// build creates the namespaces, the switch and every host's links,
// addresses and routes. Commands for one namespace go in one `ip -batch`,
// and namespaces are set up in parallel: a lab comes up in well under a
// second.
func (l *Lab) build(ctx context.Context) error {
	all := append([]*Host{l.sw}, l.hosts...)
	l.mu.Lock()
	for _, h := range all {
		l.netns = append(l.netns, h.Netns)
	}
	l.mu.Unlock()
	if err := parallel(all, func(h *Host) error {
		if err := checkLabNetns(h.Netns); err != nil {
			return err
		}
		_, err := run(ctx, "", "ip", "netns", "add", h.Netns)
		return err
	}); err != nil {
		return err
	}

	// Sysctls first: interfaces copy "default" when they are created.
	if err := parallel(all, func(h *Host) error { return setSysctls(h.Netns, h.sysctls()...) }); err != nil {
		return err
	}
	if err := ipBatch(ctx, l.sw.Netns, l.switchCmds()); err != nil {
		return fmt.Errorf("switch: %w", err)
	}
	return parallel(l.hosts, func(h *Host) error {
		if err := ipBatch(ctx, h.Netns, l.hostCmds(h)); err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
		return nil
	})
}

func (h *Host) sysctls() []string {
	switch h.Role {
	case RoleSwitch:
		// A pure layer-2 switch: no link-local addresses, so no router or
		// MLD chatter from the bridge or its ports in captures.
		return []string{
			"net.ipv6.conf.all.disable_ipv6", "1",
			"net.ipv6.conf.default.disable_ipv6", "1",
		}
	case RoleRouter:
		return []string{
			"net.ipv6.conf.all.accept_dad", "0",
			"net.ipv6.conf.default.accept_dad", "0",
			"net.ipv4.ip_forward", "1",
			"net.ipv6.conf.all.forwarding", "1",
		}
	default:
		// Without DAD, IPv6 addresses (link-local included) are usable the
		// moment the link is up instead of a second or more later.
		return []string{
			"net.ipv6.conf.all.accept_dad", "0",
			"net.ipv6.conf.default.accept_dad", "0",
		}
	}
}

// switchCmds creates the bridges and every host's veth pair: the host end
// is created directly inside the host's namespace, so no link ever exists
// outside the lab.
func (l *Lab) switchCmds() []string {
	// No STP and no forward delay: ports forward as soon as they are up.
	// No multicast snooping: IPv6 neighbour solicitations are flooded to
	// every port, whatever MLD reports were (not yet) seen, like a dumb
	// switch.
	bridge := func(name string) []string {
		return []string{
			"link add " + name + " type bridge stp_state 0 forward_delay 0 mcast_snooping 0",
			"link set " + name + " up",
		}
	}
	cmds := bridge(bridgeLAN)
	if l.client2 != nil {
		cmds = append(cmds, bridge(bridgeLAN2)...)
	}
	for _, h := range l.hosts {
		for _, nic := range h.nics() {
			cmds = append(cmds,
				fmt.Sprintf("link add %s type veth peer name %s address %s netns %s", nic.SwitchPort, nic.Iface, nic.MAC, h.Netns),
				fmt.Sprintf("link set %s master %s up", nic.SwitchPort, nic.Bridge))
		}
	}
	return cmds
}

// hostCmds configures h's loopback, interfaces and routes.
func (l *Lab) hostCmds(h *Host) []string {
	cmds := []string{"link set lo up"}
	for _, nic := range h.nics() {
		cmds = append(cmds,
			fmt.Sprintf("addr add %s dev %s", netip.PrefixFrom(nic.IPv4, nic.Prefix4.Bits()), nic.Iface),
			fmt.Sprintf("addr add %s dev %s nodad", netip.PrefixFrom(nic.IPv6, nic.Prefix6.Bits()), nic.Iface),
			fmt.Sprintf("link set %s up", nic.Iface))
	}
	if l.client2 != nil {
		gw := l.routers[0]
		switch {
		case h == l.client2:
			cmds = append(cmds,
				"route add 0.0.0.0/0 via "+gw.LAN2.IPv4.String(),
				"route add ::/0 via "+gw.LAN2.IPv6.String())
		case h != gw:
			cmds = append(cmds,
				fmt.Sprintf("route add %s via %s", LAN2v4, gw.IPv4),
				fmt.Sprintf("route add %s via %s", LAN2v6, gw.IPv6))
		}
	}
	if h == l.client {
		// A layer2 load balancer's neighbours resolve its addresses
		// themselves; whoever answers ARP/NDP gets the traffic.
		cmds = append(cmds,
			fmt.Sprintf("route add %s dev %s", VIPv4, h.Iface),
			fmt.Sprintf("route add %s dev %s", VIPv6, h.Iface))
	}
	return cmds
}

// waitReady waits until every host interface and switch port is running
// (carrier, and the kernel has activated its queue) and every bridge port
// forwards. Until then packets can be dropped silently.
func (l *Lab) waitReady(ctx context.Context) error {
	var pending string
	err := framework.WaitFor(ctx, 10*time.Second, 10*time.Millisecond, func(ctx context.Context) (bool, error) {
		pending = ""
		for _, h := range l.hosts {
			for _, nic := range h.nics() {
				if ok, err := running(h.Netns, nic.Iface); err != nil || !ok {
					pending = fmt.Sprintf("%s %s not running (%v)", h.Name, nic.Iface, err)
					return false, nil
				}
				if ok, err := running(l.sw.Netns, nic.SwitchPort); err != nil || !ok {
					pending = fmt.Sprintf("switch port %s not running (%v)", nic.SwitchPort, err)
					return false, nil
				}
			}
		}
		out, err := run(ctx, "", "bridge", "-n", l.sw.Netns, "-j", "link", "show")
		if err != nil {
			pending = err.Error()
			return false, nil
		}
		var ports []struct {
			IfName string `json:"ifname"`
			State  string `json:"state"`
		}
		if err := json.Unmarshal([]byte(out), &ports); err != nil {
			return false, fmt.Errorf("bridge -j link show: %w: %s", err, out)
		}
		for _, p := range ports {
			if p.State != "forwarding" {
				pending = fmt.Sprintf("switch port %s is %s", p.IfName, p.State)
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("links not ready: %s: %w", pending, err)
	}
	return nil
}

// running reports whether iface in netns is operationally up.
func running(netns, iface string) (bool, error) {
	var ok bool
	err := framework.InNetns(netns, func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		ok = ifi.Flags&net.FlagRunning != 0
		return nil
	})
	return ok, err
}

// parallel runs fn for every host concurrently and joins the errors.
func parallel(hosts []*Host, fn func(*Host) error) error {
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() { errs[i] = fn(h) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// summary lists the hosts and addresses in one line.
func (l *Lab) summary() string {
	var parts []string
	for _, h := range l.hosts {
		parts = append(parts, fmt.Sprintf("%s=%s,%s", h.Name, h.IPv4, h.IPv6))
	}
	return strings.Join(parts, " ")
}

// Node returns node i, counting from 1 as the names do: Node(1) is n1. It
// panics if there is no such node.
func (l *Lab) Node(i int) *Host {
	if i < 1 || i > len(l.nodes) {
		panic(fmt.Sprintf("netlab: Node(%d): the lab has nodes 1…%d", i, len(l.nodes)))
	}
	return l.nodes[i-1]
}

// NodeByMAC returns the node whose LAN interface has mac, or nil.
func (l *Lab) NodeByMAC(mac string) *Host {
	for _, n := range l.nodes {
		if strings.EqualFold(n.MAC.String(), mac) {
			return n
		}
	}
	return nil
}

// Nodes returns the nodes, n1 first.
func (l *Lab) Nodes() []*Host { return slices.Clone(l.nodes) }

// Routers returns the routers in Options.Routers order.
func (l *Lab) Routers() []*Host { return slices.Clone(l.routers) }

// Hosts returns every host but the switch: control plane, routers, nodes,
// clients.
func (l *Lab) Hosts() []*Host { return slices.Clone(l.hosts) }

// Router returns the router called name, or nil.
func (l *Lab) Router(name string) *Host {
	for _, r := range l.routers {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// Client returns the LAN client, or nil without Options.Client.
func (l *Lab) Client() *Host { return l.client }

// Client2 returns the LAN2 client, or nil without Options.Client2.
func (l *Lab) Client2() *Host { return l.client2 }

// ControlPlane returns the host that runs (or will run) the control plane.
func (l *Lab) ControlPlane() *Host { return l.cp }

// Switch returns the switch. It has no addresses; its namespace holds the
// bridges (br0, br1) and one port per host NIC, the place to capture all
// LAN traffic: l.Switch().Exec(ctx, "tcpdump", "-i", "br0", …).
func (l *Lab) Switch() *Host { return l.sw }

// Namespaces returns the names of the lab's network namespaces.
func (l *Lab) Namespaces() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.netns)
}

// Close tears the lab down: HTTP servers, the control plane, every process
// left in its namespaces (SIGTERM, then SIGKILL), the namespaces, its marker
// and (if New created it) Dir. It is bounded, safe to call more than once and
// concurrently, and keeps going past errors, which it returns joined. After a
// failed Close, the next Sweep (once this process is gone) finishes the job.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.close() })
	return l.closeErr
}

func (l *Lab) close() error {
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()

	l.mu.Lock()
	l.closed = true
	servers, cp, namespaces := l.servers, l.controlPlane, slices.Clone(l.netns)
	l.mu.Unlock()

	// Open sockets hold a namespace alive after its name is deleted, so
	// everything of ours goes first.
	for _, srv := range servers {
		_ = srv.Close()
	}
	l.serving.Wait()
	if cp != nil {
		cp.Stop()
	}
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, ns := range namespaces {
		wg.Go(func() {
			err := killNetnsProcs(ctx, ns, closeGrace)
			err = errors.Join(err, deleteNetns(ctx, ns))
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) == 0 {
		// Kept on failure: it lets Sweep finish the job once we are gone.
		if err := os.Remove(markerPath(l.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if l.ownsDir && l.Dir != "" {
		if err := os.RemoveAll(l.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	unregister(l)
	l.logf("netlab: lab %s closed in %v", l.ID, time.Since(begin).Round(time.Millisecond))
	if len(errs) > 0 {
		return fmt.Errorf("netlab: close lab %s: %w", l.ID, errors.Join(errs...))
	}
	return nil
}
