// Command lab runs ironlb's network lab (test/netlab) in the background for
// hands-on work: namespaces for a switch, a control plane host running etcd +
// kube-apiserver, nodes, a client and routers, all on one bridged LAN.
//
//	go run ./test/cmd/lab up        # or: make lab-up; prints the namespaces and how to use them
//	ip netns exec <id>-cp kubectl --kubeconfig .cache/lab/controlplane/kubeconfig get ns
//	go run ./test/cmd/lab status
//	go run ./test/cmd/lab down      # or: make lab-down
//
// `up` re-executes itself as a detached `serve` process (new session, so it
// survives the shell command) that owns the lab and tears it down on SIGTERM,
// SIGINT or SIGHUP. State lives in <repo>/.cache/lab and is wiped by the next
// `up`. `down` also sweeps what a crashed serve left behind.
//
// Needs root: the lab is made of network namespaces.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/internal/detach"
	"github.com/ironlb/ironlb/test/netlab"
	"github.com/ironlb/ironlb/test/nodelab"
)

// stateFile is where serve records the lab for up and status, next to
// detach's files.
const stateFile = "state.json"

func main() {
	detach.Command{
		Name:     "lab",
		Server:   "lab",
		StateDir: ".cache/lab",
		Usage: `usage: lab up|down|status [flags]

  up      build the network lab and start its control plane in the background
  down    tear it down (and sweep namespaces left by crashed labs)
  status  report whether it runs, and its hosts

Run "lab <command> -h" for the command's flags. Needs root.
`,
		Up:     up,
		Down:   down,
		Status: status,
		Serve:  serve,
	}.Main()
}

// labFlags shape the lab; up passes them on to serve.
type labFlags struct {
	nodes       int
	routers     string
	client      bool
	client2     bool
	serveVIPs   bool
	serviceCIDR string
	timeout     time.Duration
	ttl         time.Duration
	ironlb      bool
}

func (lf *labFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&lf.nodes, "nodes", 3, "number of nodes")
	fs.StringVar(&lf.routers, "routers", "r1", "comma-separated router names (empty: none)")
	fs.BoolVar(&lf.client, "client", true, "add the LAN client")
	fs.BoolVar(&lf.client2, "client2", false, "add client2 on LAN2, behind the first router")
	fs.BoolVar(&lf.serveVIPs, "serve-vips", true, "make nodes accept the VIP ranges and answer HTTP on port 80 with node=<name> (the kube-proxy stand-in; not with -ironlb, whose nodes run kube-proxy)")
	fs.StringVar(&lf.serviceCIDR, "service-cidr", framework.DefaultServiceCIDR, "service ClusterIP range(s), comma-separated for dual stack")
	fs.DurationVar(&lf.timeout, "timeout", 2*time.Minute, "how long to wait for the lab and control plane to be ready")
	fs.BoolVar(&lf.ironlb, "ironlb", false, "make the nodes real (containerd, kubelet, kube-proxy), install ironlb on them from manifests/kubeadm, add the demo pools, app and services, and print who announces what")
	fs.DurationVar(&lf.ttl, "ttl", 8*time.Hour, "tear the lab down by itself after this long (0: never), so a forgotten lab does not linger on a shared machine")
}

func (lf *labFlags) args() []string {
	return []string{
		"-nodes=" + strconv.Itoa(lf.nodes),
		"-routers=" + lf.routers,
		"-client=" + strconv.FormatBool(lf.client),
		"-client2=" + strconv.FormatBool(lf.client2),
		"-serve-vips=" + strconv.FormatBool(lf.serveVIPs),
		"-service-cidr=" + lf.serviceCIDR,
		"-timeout=" + lf.timeout.String(),
		"-ttl=" + lf.ttl.String(),
		"-ironlb=" + strconv.FormatBool(lf.ironlb),
	}
}

func (lf *labFlags) routerNames() []string {
	var names []string
	for _, r := range strings.Split(lf.routers, ",") {
		if r = strings.TrimSpace(r); r != "" {
			names = append(names, r)
		}
	}
	return names
}

func up(fs *detach.Flags) error {
	var lf labFlags
	lf.register(fs.FlagSet)
	srv := fs.Server()
	if os.Geteuid() != 0 {
		return netlab.ErrNotRoot
	}
	started, err := srv.Up(lf.args(), lf.timeout)
	if err != nil {
		return err
	}
	if err := printState(os.Stdout, srv.Dir); err != nil || !started || !lf.ironlb {
		return err
	}
	return printDemoFromState(os.Stdout, srv.Dir)
}

// state is what serve records in state.json for up and status.
type state struct {
	ID          string   `json:"id"`
	Namespaces  []string `json:"namespaces"`
	Hosts       []host   `json:"hosts"`
	Kubeconfig  string   `json:"kubeconfig"`
	APIServer   string   `json:"apiserver"`
	ServeVIPs   bool     `json:"serveVIPs"`
	RealNodes   bool     `json:"realNodes,omitempty"`
	NetworkUp   string   `json:"networkUp"`
	ControlUp   string   `json:"controlPlaneUp"`
	ServePid    int      `json:"servePid"`
	LogDir      string   `json:"logDir"`
	ServiceCIDR string   `json:"serviceCIDR"`
	Expires     string   `json:"expires,omitempty"`
}

type host struct {
	Name  string `json:"name"`
	Role  string `json:"role"`
	Netns string `json:"netns"`
	Iface string `json:"iface,omitempty"`
	IPv4  string `json:"ipv4,omitempty"`
	IPv6  string `json:"ipv6,omitempty"`
	MAC   string `json:"mac,omitempty"`
}

func hostsOf(lab *netlab.Lab) []host {
	var hosts []host
	sw := lab.Switch()
	hosts = append(hosts, host{Name: sw.Name, Role: string(sw.Role), Netns: sw.Netns})
	for _, h := range lab.Hosts() {
		hosts = append(hosts, host{Name: h.Name, Role: string(h.Role), Netns: h.Netns, Iface: h.Iface, IPv4: h.IPv4.String(), IPv6: h.IPv6.String(), MAC: h.MAC.String()})
		if h.LAN2 != nil {
			hosts = append(hosts, host{Name: h.Name, Role: string(h.Role) + " (LAN2)", Netns: h.Netns, Iface: h.LAN2.Iface, IPv4: h.LAN2.IPv4.String(), IPv6: h.LAN2.IPv6.String(), MAC: h.LAN2.MAC.String()})
		}
	}
	return hosts
}

// serve runs the lab in the foreground until SIGTERM/SIGINT/SIGHUP, or until
// a control plane server dies.
func serve(fs *detach.Flags) error {
	var lf labFlags
	lf.register(fs.FlagSet)
	srv := fs.Server()
	return srv.Serve(func(ctx context.Context) error { return runLab(ctx, srv, lf) })
}

// runLab builds the lab and runs it until ctx ends, -ttl passes or a control
// plane server dies.
func runLab(ctx context.Context, srv detach.Server, lf labFlags) error {
	startCtx, cancel := context.WithTimeout(ctx, lf.timeout)
	defer cancel()
	var apiserverArgs []string
	if lf.ironlb {
		apiserverArgs = nodelab.ApiserverArgs
	}

	begin := time.Now()
	lab, err := netlab.New(startCtx, netlab.Options{
		Nodes:   lf.nodes,
		Client:  lf.client,
		Client2: lf.client2,
		Routers: lf.routerNames(),
		Dir:     srv.Dir,
		ControlPlane: framework.Options{
			ServiceCIDR:        lf.serviceCIDR,
			StartTimeout:       lf.timeout,
			ExtraApiserverArgs: apiserverArgs,
		},
		// We handle the signals (ctx above) and close the lab ourselves.
		NoSignalHandler: true,
		Logf:            detach.Logf,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := lab.Close(); err != nil {
			detach.Logf("%v", err)
		}
	}()
	networkUp := time.Since(begin)

	begin = time.Now()
	cp, err := lab.StartControlPlane(startCtx)
	if err != nil {
		return err
	}
	controlUp := time.Since(begin)
	if lf.serveVIPs && !lf.ironlb {
		if err := lab.ServeVIPs(ctx, netlab.VIPv4, netlab.VIPv6, 80); err != nil {
			return err
		}
	}
	if lf.ironlb {
		d, err := startDemo(startCtx, lab, cp, detach.Logf)
		if err != nil {
			return err
		}
		defer d.Close()
	}

	st := state{
		ID:          lab.ID,
		Namespaces:  lab.Namespaces(),
		Hosts:       hostsOf(lab),
		Kubeconfig:  cp.Kubeconfig,
		APIServer:   cp.URL,
		ServeVIPs:   lf.serveVIPs && !lf.ironlb,
		RealNodes:   lf.ironlb,
		NetworkUp:   networkUp.Round(time.Millisecond).String(),
		ControlUp:   controlUp.Round(time.Millisecond).String(),
		ServePid:    os.Getpid(),
		LogDir:      srv.Dir,
		ServiceCIDR: cp.ServiceCIDR,
	}
	var expired <-chan time.Time
	if lf.ttl > 0 {
		t := time.NewTimer(lf.ttl)
		defer t.Stop()
		expired = t.C
		st.Expires = time.Now().Add(lf.ttl).Format(time.RFC3339)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(srv.Dir, stateFile), append(b, '\n'), 0o644); err != nil {
		return err
	}
	unready, err := srv.SetReady(cp.Kubeconfig)
	if err != nil {
		return err
	}
	defer unready()
	detach.Logf("lab %s ready (network %v, control plane %v)", lab.ID, st.NetworkUp, st.ControlUp)

	select {
	case <-ctx.Done():
		detach.Logf("signal received, tearing the lab down")
		return nil
	case <-expired:
		detach.Logf("-ttl %v reached, tearing the lab down", lf.ttl)
		return nil
	case <-cp.Etcd.Done():
		return fmt.Errorf("etcd exited unexpectedly (%v); tearing the lab down", cp.Etcd.Wait())
	case <-cp.Apiserver.Done():
		return fmt.Errorf("kube-apiserver exited unexpectedly (%v); tearing the lab down", cp.Apiserver.Wait())
	}
}

func readState(dir string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", stateFile, err)
	}
	return &st, nil
}

func printState(w io.Writer, dir string) error {
	st, err := readState(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "lab %s is up (network in %s, control plane in %s; serve pid %d, logs in %s)\n\n", st.ID, st.NetworkUp, st.ControlUp, st.ServePid, st.LogDir)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tROLE\tNAMESPACE\tIFACE\tIPV4\tIPV6\tMAC")
	for _, h := range st.Hosts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Name, h.Role, h.Netns, dash(h.Iface), dash(h.IPv4), dash(h.IPv6), dash(h.MAC))
	}
	_ = tw.Flush()
	cpNetns, clNetns, n1 := st.ID+"-cp", st.ID+"-cl", ""
	for _, h := range st.Hosts {
		if h.Name == "n1" {
			n1 = h.IPv4
		}
	}
	fmt.Fprintf(w, "\nThe switch namespace %s-sw holds bridge br0 (every host's eth0 peer is a port of it).\n", st.ID)
	fmt.Fprintf(w, "apiserver: %s (reachable from inside the lab only)\nkubeconfig: %s\n\n", st.APIServer, st.Kubeconfig)
	fmt.Fprintf(w, "Try:\n  ip netns exec %s kubectl --kubeconfig %s get ns\n", cpNetns, st.Kubeconfig)
	if st.ServeVIPs && n1 != "" && slices.Contains(st.Namespaces, clNetns) {
		fmt.Fprintf(w, "  ip netns exec %s curl -s http://%s/        # node=n1; VIPs (%s, %s) answer once announced\n", clNetns, n1, netlab.VIPv4, netlab.VIPv6)
	}
	if st.RealNodes && slices.Contains(st.Namespaces, clNetns) {
		fmt.Fprintf(w, "  ip netns exec %s curl -s http://%s/        # a LoadBalancer address, through kube-proxy to a pod\n", clNetns, netip.AddrFrom4([4]byte{203, 0, 113, 10}))
	}
	fmt.Fprintf(w, "  ip netns exec %s-sw tcpdump -ni br0 'arp or icmp6'\n", st.ID)
	fmt.Fprintf(w, "Stop with: make lab-down (go run ./test/cmd/lab down)")
	if st.Expires != "" {
		fmt.Fprintf(w, "; it stops by itself at %s", st.Expires)
	}
	fmt.Fprintln(w)
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func down(fs *detach.Flags) error {
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait before SIGKILL")
	srv := fs.Server()
	// Its servers have Pdeathsig set and die with it; Sweep below removes
	// the namespaces.
	if _, err := srv.Down(*timeout); err != nil {
		return err
	}

	// Whatever a crashed (or just killed) serve left behind.
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	swept, err := netlab.Sweep(ctx)
	// Then the cgroups of real nodes whose namespaces went.
	nodelab.Sweep(ctx, func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) })
	if len(swept) > 0 {
		fmt.Fprintf(os.Stderr, "swept namespaces of crashed labs: %s\n", strings.Join(swept, " "))
	}
	if err != nil {
		return err
	}
	if st, err := readState(srv.Dir); err == nil {
		var left []string
		for _, ns := range st.Namespaces {
			if _, err := os.Stat(filepath.Join("/run/netns", ns)); err == nil {
				left = append(left, ns)
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("namespaces still there: %s", strings.Join(left, " "))
		}
	}
	fmt.Fprintln(os.Stderr, "lab stopped")
	return nil
}

func status(fs *detach.Flags) error {
	srv := fs.Server()
	pid, err := srv.Check()
	if err != nil {
		return err
	}
	st, err := readState(srv.Dir)
	if err != nil {
		return err
	}
	var missing []string
	for _, ns := range st.Namespaces {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); err != nil {
			missing = append(missing, ns)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("running (pid %d) but namespaces are gone: %s", pid, strings.Join(missing, " "))
	}
	client, err := labClient(st)
	if err != nil {
		return err
	}
	if err := detach.ProbeAPIServer(pid, st.APIServer, client); err != nil {
		return err
	}
	return printState(os.Stdout, srv.Dir)
}

// labClient reaches the lab's apiserver, which listens only inside the lab,
// through its namespace.
func labClient(st *state) (kubernetes.Interface, error) {
	cfg, err := labConfig(st)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// labConfig is the client config that reaches the lab's apiserver.
func labConfig(st *state) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", st.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.Dial = framework.NetnsDialer(st.ID + "-cp")
	return cfg, nil
}
