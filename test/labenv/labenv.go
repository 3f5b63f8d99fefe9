// Package labenv runs the whole of ironlb on a netlab network: a real
// control plane in its namespace, ironlb-ccm beside it, one ironlb-speaker per
// node namespace, a kube-proxy stand-in on every node, a client and, for BGP,
// FRR on the router. The end-to-end tests, the failover benchmark and the
// demo all start it here. For comparisons it can run MetalLB on the same lab
// instead (Options.Impl).
package labenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/netlab"
	"github.com/ironlb/ironlb/test/routers"
)

// HTTPPort is where every node's kube-proxy stand-in answers for VIPs.
const HTTPPort = 80

// speakerMetricsPort serves each speaker's /metrics on its node address.
const speakerMetricsPort = 7472

// Options configure Start.
type Options struct {
	Nodes int
	// Config is the ironlb-config config.yaml to apply before anything starts.
	Config string
	// DualStack gives the apiserver an IPv6 service range too.
	DualStack bool
	// SpeakerArgs are appended to every speaker's flags.
	SpeakerArgs []string
	// SpeakerKubeconfig, when set, names each node's speaker's kubeconfig
	// (default: the control plane's administrator).
	SpeakerKubeconfig func(node string) string
	// SpeakerCapabilities are the only capabilities speakers run with, as
	// the DaemonSet grants them (setpriv names, e.g. "net_raw"). Default
	// net_raw: all layer2 needs.
	SpeakerCapabilities []string
	// Routers and Client2 are passed to the lab (for BGP).
	Routers []string
	Client2 bool
	// ApiserverArgs are added to kube-apiserver's command line (a wider
	// NodePort range for a bench's thousands of Services).
	ApiserverArgs []string
	// FRR, when set, runs FRR (zebra and bgpd) on the lab's first router
	// with the bgpd configuration it returns (routers.FRRNodesConfig peers
	// with every node). It starts before the speakers, so their sessions
	// come up at once instead of at gobgp's next connect retry; Env.Router
	// reaches it and Stop stops it.
	FRR func(lab *netlab.Lab) string
	// Dir keeps logs; default a temporary folder removed by Close.
	Dir  string
	Logf func(format string, args ...any)

	// Impl is the load balancer to run: ironlb (the default) or, for
	// comparisons, MetalLB (ImplMetalLB: its own controller and speakers,
	// configured by MetalLB; Config, FRR, SpeakerArgs and
	// SpeakerCapabilities are ironlb's and ignored).
	Impl Impl
	// MetalLB configures MetalLB when Impl is ImplMetalLB.
	MetalLB MetalLBOptions
}

// Env is a running ironlb (or MetalLB, with ImplMetalLB) on a lab.
type Env struct {
	Lab    *netlab.Lab
	CP     *framework.ControlPlane
	Client kubernetes.Interface
	CCM    *framework.CCM
	// Router is FRR on the first router, with Options.FRR; else nil.
	Router *routers.FRR
	// MetalLBController is MetalLB's controller with ImplMetalLB (CCM is
	// nil then); else nil.
	MetalLBController *framework.Process

	opts    Options
	binDir  string
	keyFile string

	mu       sync.Mutex
	speakers map[string]*framework.Process

	metallb *metallbState // with ImplMetalLB
}

// Start builds a lab with its control plane and brings ironlb up on it. On
// error nothing is left running.
func Start(ctx context.Context, opts Options) (_ *Env, err error) {
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	cpOpts := framework.Options{ExtraApiserverArgs: opts.ApiserverArgs}
	if opts.DualStack {
		cpOpts.ServiceCIDR = DualStackServiceCIDR
	}
	lab, err := netlab.New(ctx, netlab.Options{Nodes: opts.Nodes, Client: true, Routers: opts.Routers, Client2: opts.Client2,
		Dir: opts.Dir, ControlPlane: cpOpts, Logf: opts.Logf})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = lab.Close()
		}
	}()
	if err := lab.ServeVIPs(context.Background(), netlab.VIPv4, netlab.VIPv6, HTTPPort); err != nil {
		return nil, err
	}
	cp, err := lab.StartControlPlane(ctx)
	if err != nil {
		return nil, err
	}
	return Run(ctx, lab, cp, opts)
}

// DualStackServiceCIDR is the service range of a dual-stack lab.
const DualStackServiceCIDR = "198.18.0.0/16,2001:db8:ffff::/112"

// Run brings ironlb up on a lab whose control plane runs and whose nodes
// serve the VIP ranges (Lab.ServeVIPs): the config, a Node per lab node,
// ironlb-ccm and one speaker per node (or MetalLB, with ImplMetalLB). Close
// stops them and the lab. On error what Run started is stopped; the lab is
// left to the caller.
func Run(ctx context.Context, lab *netlab.Lab, cp *framework.ControlPlane, opts Options) (_ *Env, err error) {
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	switch opts.Impl {
	case "", ImplIronLB, ImplMetalLB:
	default:
		return nil, fmt.Errorf("labenv: unknown Impl %q (want %q or %q)", opts.Impl, ImplIronLB, ImplMetalLB)
	}
	var binDir string
	if opts.Impl != ImplMetalLB {
		if binDir, err = framework.IronLBBinaries(); err != nil {
			return nil, err
		}
	}
	e := &Env{Lab: lab, CP: cp, Client: cp.Client, opts: opts, binDir: binDir, speakers: map[string]*framework.Process{}}
	defer func() {
		if err != nil {
			e.Stop()
		}
	}()
	// Layer2 VIPs sit outside the lab's LAN subnet, as an operator's
	// dedicated VIP range on the same segment would: the client reaches
	// them on-link, as a router with a connected route would.
	for _, cmd := range [][]string{
		{"ip", "route", "replace", netlab.VIPv4.String(), "dev", netlab.Iface},
		{"ip", "-6", "route", "replace", netlab.VIPv6.String(), "dev", netlab.Iface},
	} {
		if _, err := lab.Client().Exec(ctx, cmd[0], cmd[1:]...); err != nil {
			return nil, err
		}
	}
	if opts.Impl == ImplMetalLB {
		if err := e.createNodes(ctx); err != nil {
			return nil, err
		}
		if err := e.runMetalLB(ctx); err != nil {
			return nil, err
		}
		return e, nil
	}
	if opts.Config != "" {
		if err := framework.ApplyConfig(ctx, e.Client, opts.Config); err != nil {
			return nil, err
		}
	}
	if err := e.createNodes(ctx); err != nil {
		return nil, err
	}
	if opts.FRR != nil {
		rs := lab.Routers()
		if len(rs) == 0 {
			return nil, fmt.Errorf("labenv: Options.FRR needs a router in the lab (Options.Routers)")
		}
		opts.Logf("labenv: starting FRR on %s", rs[0].Name)
		if e.Router, err = routers.StartFRR(ctx, rs[0], routers.FRROptions{BGPD: opts.FRR(lab)}); err != nil {
			return nil, err
		}
	}
	opts.Logf("labenv: starting ironlb-ccm and %d speakers", len(lab.Nodes()))
	if e.CCM, err = cp.StartCCM(context.Background(), framework.CCMOptions{Args: []string{"--allocation-retry-interval=2s"}}); err != nil {
		return nil, err
	}
	if e.keyFile, err = writeKey(lab.Dir); err != nil {
		return nil, err
	}
	for _, n := range lab.Nodes() {
		if err := e.StartSpeaker(ctx, n.Name); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// createNodes registers a Node per lab node, as kubelet would, with its
// InternalIP (speakers find each other through it).
func (e *Env) createNodes(ctx context.Context) error {
	for _, n := range e.Lab.Nodes() {
		node := &v1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: map[string]string{v1.LabelHostname: n.Name}},
			Status: v1.NodeStatus{Addresses: []v1.NodeAddress{
				{Type: v1.NodeInternalIP, Address: n.IPv4.String()},
				{Type: v1.NodeInternalIP, Address: n.IPv6.String()},
				{Type: v1.NodeHostName, Address: n.Name},
			}},
		}
		if _, err := e.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node %s: %w", n.Name, err)
		}
	}
	return nil
}

// writeKey writes a fresh memberlist key, as the install generates one.
func writeKey(dir string) (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "memberlist.key")
	return path, os.WriteFile(path, []byte(hex.EncodeToString(key)), 0o600)
}

// StartSpeaker runs ironlb-speaker (or MetalLB's speaker, with ImplMetalLB)
// in node's namespace (again, after a kill).
func (e *Env) StartSpeaker(ctx context.Context, node string) error {
	if e.opts.Impl == ImplMetalLB {
		return e.startMetalLBSpeaker(node)
	}
	host := e.node(node)
	if host == nil {
		return fmt.Errorf("no node %s", node)
	}
	caps := e.opts.SpeakerCapabilities
	if len(caps) == 0 {
		caps = []string{"net_raw"}
	}
	// Root, but with every capability dropped except these: what the
	// DaemonSet's securityContext gives the speaker.
	keep := "-all,+" + strings.Join(caps, ",+")
	args := append([]string{
		"--bounding-set=" + keep, "--inh-caps=" + keep, "--no-new-privs",
		filepath.Join(e.binDir, "ironlb-speaker"),
		"--kubeconfig=" + e.speakerKubeconfig(node),
		"--node-name=" + node,
		"--memberlist-key-file=" + e.keyFile,
		"--memberlist-bind-address=" + host.IPv4.String(),
		"--metrics-bind-address=" + netip.AddrPortFrom(host.IPv4, speakerMetricsPort).String(),
		"--v=2",
	}, e.opts.SpeakerArgs...)
	p, err := host.StartProcess(context.Background(), "speaker-"+node, "setpriv", args...)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.speakers[node] = p
	e.mu.Unlock()
	return nil
}

func (e *Env) speakerKubeconfig(node string) string {
	if e.opts.SpeakerKubeconfig != nil {
		return e.opts.SpeakerKubeconfig(node)
	}
	return e.CP.Kubeconfig
}

// Speaker returns node's speaker process.
func (e *Env) Speaker(node string) *framework.Process {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.speakers[node]
}

func (e *Env) node(name string) *netlab.Host {
	for _, n := range e.Lab.Nodes() {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// NodeByMAC names the node owning a MAC address, or "".
func (e *Env) NodeByMAC(mac string) string {
	if n := e.Lab.NodeByMAC(mac); n != nil {
		return n.Name
	}
	return ""
}

// WaitForIP waits for a service's first load-balancer address.
func (e *Env) WaitForIP(ctx context.Context, namespace, name string, timeout time.Duration) (netip.Addr, error) {
	ips, err := framework.WaitForIngress(ctx, e.Client, namespace, name, 1, timeout)
	if err != nil {
		return netip.Addr{}, err
	}
	return netip.ParseAddr(ips[0])
}

// Answering asks the VIP over HTTP from the client and returns the node that
// answered (one fresh connection, bounded by timeout).
func (e *Env) Answering(ctx context.Context, vip netip.Addr, timeout time.Duration) (string, error) {
	return AnsweringFrom(ctx, e.Lab.Client(), vip, timeout)
}

// AnsweringFrom asks the VIP over HTTP from host (e.g. client2, which
// reaches VIPs only through the router) and returns the node that answered
// (one fresh connection, so a new source port, bounded by timeout).
func AnsweringFrom(ctx context.Context, host *netlab.Host, vip netip.Addr, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	body, err := host.HTTPGet(ctx, fmt.Sprintf("http://%s/", netip.AddrPortFrom(vip, HTTPPort)))
	if err != nil {
		return "", err
	}
	node, ok := strings.CutPrefix(strings.TrimSpace(body), "node=")
	if !ok {
		return "", fmt.Errorf("unexpected answer %q", body)
	}
	return node, nil
}

// ClientNeighbor returns the MAC the client's kernel has for vip ("" if none
// or not resolved).
func (e *Env) ClientNeighbor(ctx context.Context, vip netip.Addr) (string, error) {
	return e.Lab.Client().Neighbor(ctx, vip)
}

// Close stops everything (speakers, CCM, control plane) and removes the lab.
func (e *Env) Close() {
	e.Stop()
	_ = e.Lab.Close()
}

// Stop stops the speakers, the CCM and FRR, leaving the lab up. It is safe
// to call more than once.
func (e *Env) Stop() {
	e.mu.Lock()
	procs := make([]*framework.Process, 0, len(e.speakers))
	for _, p := range e.speakers {
		procs = append(procs, p)
	}
	e.mu.Unlock()
	for _, p := range procs {
		_ = p.Stop(3 * time.Second)
	}
	if e.CCM != nil {
		_ = e.CCM.Stop(3 * time.Second)
	}
	if e.MetalLBController != nil {
		_ = e.MetalLBController.Stop(3 * time.Second)
	}
	if e.Router != nil {
		if err := e.Router.Close(); err != nil {
			e.opts.Logf("labenv: closing FRR: %v", err)
		}
	}
}

// WaitConverged waits until every running speaker sees all of them as
// members (its own /metrics) and is ready (/readyz): after a restart or a
// link coming back, until then two speakers may elect differently. With
// ImplMetalLB it waits for the same from MetalLB's speakers' memberlist
// events (waitMetalLBConverged).
func (e *Env) WaitConverged(ctx context.Context, timeout time.Duration) error {
	if e.opts.Impl == ImplMetalLB {
		return e.waitMetalLBConverged(ctx, timeout)
	}
	want := fmt.Sprintf("ironlb_speaker_members %d", len(e.Lab.Nodes()))
	return framework.WaitFor(ctx, timeout, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		for _, n := range e.Lab.Nodes() {
			body, err := e.SpeakerMetrics(ctx, n.Name)
			if err != nil || !strings.Contains(body, want+"\n") {
				return false, nil
			}
			// And each says it is ready (its readiness probe): joined.
			if _, err := n.HTTPGet(ctx, fmt.Sprintf("http://%s/readyz", netip.AddrPortFrom(n.IPv4, speakerMetricsPort))); err != nil {
				return false, nil
			}
		}
		return true, nil
	})
}

// SpeakerMetrics returns node's speaker's /metrics (Prometheus text), read
// from inside the node as a scraper on it would.
func (e *Env) SpeakerMetrics(ctx context.Context, node string) (string, error) {
	return e.SpeakerHTTP(ctx, node, "/metrics")
}

// SpeakerHTTP reads path from node's speaker's metrics address, from inside
// the node (/debug/pprof/heap with --profiling, say).
func (e *Env) SpeakerHTTP(ctx context.Context, node, path string) (string, error) {
	n := e.node(node)
	if n == nil {
		return "", fmt.Errorf("no node %s", node)
	}
	return n.HTTPGet(ctx, fmt.Sprintf("http://%s%s", netip.AddrPortFrom(n.IPv4, speakerMetricsPort), path))
}
