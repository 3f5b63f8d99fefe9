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
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/netlab"
)

const (
	pidFile   = "serve.pid"
	readyFile = "ready" // written by serve once the lab and control plane are usable
	stateFile = "state.json"
	serveLog  = "serve.log"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "up":
		err = up(args)
	case "down":
		err = down(args)
	case "status":
		err = status(args)
	case "serve":
		err = serve(args)
	case "-h", "-help", "--help", "help":
		usage()
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "lab %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintf(os.Stderr, `usage: lab up|down|status [flags]

  up      build the network lab and start its control plane in the background
  down    tear it down (and sweep namespaces left by crashed labs)
  status  report whether it runs, and its hosts

Run "lab <command> -h" for the command's flags. Needs root.
`)
}

// commonFlags are accepted by every subcommand.
type commonFlags struct {
	dir string
}

func newFlagSet(name string, cf *commonFlags) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	fs.StringVar(&cf.dir, "dir", "", "state directory (default <repo>/.cache/lab)")
	return fs
}

func (cf *commonFlags) resolveDir() error {
	if cf.dir == "" {
		root, err := framework.RepoRoot()
		if err != nil {
			return err
		}
		cf.dir = filepath.Join(root, ".cache", "lab")
	}
	abs, err := filepath.Abs(cf.dir)
	cf.dir = abs
	return err
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
	fs.BoolVar(&lf.serveVIPs, "serve-vips", true, "make nodes accept the VIP ranges and answer HTTP on port 80 with node=<name> (the kube-proxy stand-in)")
	fs.StringVar(&lf.serviceCIDR, "service-cidr", framework.DefaultServiceCIDR, "service ClusterIP range(s), comma-separated for dual stack")
	fs.DurationVar(&lf.timeout, "timeout", 2*time.Minute, "how long to wait for the lab and control plane to be ready")
	fs.BoolVar(&lf.ironlb, "ironlb", false, "run ironlb on the lab (ironlb-ccm, a speaker per node), with the demo pools and services, and print who announces what")
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

func up(args []string) error {
	var cf commonFlags
	var lf labFlags
	fs := newFlagSet("up", &cf)
	lf.register(fs)
	_ = fs.Parse(args)
	if err := cf.resolveDir(); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return netlab.ErrNotRoot
	}

	if pid, ok := runningServe(cf.dir); ok {
		if _, err := os.Stat(filepath.Join(cf.dir, readyFile)); err == nil {
			fmt.Fprintf(os.Stderr, "lab already running (pid %d)\n", pid)
			return printState(os.Stdout, cf.dir)
		}
		return fmt.Errorf("a lab (pid %d) is starting or unhealthy; run `down` first", pid)
	}
	// Fresh state every time: a previous run's etcd data and certificates
	// would only cause confusion.
	if err := os.RemoveAll(cf.dir); err != nil {
		return err
	}
	if err := os.MkdirAll(cf.dir, 0o755); err != nil {
		return err
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(cf.dir, serveLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(self, append([]string{"serve", "-dir", cf.dir}, lf.args()...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// A new session: no controlling terminal, not in the shell's job, so it
	// outlives this command and ^C here.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "starting lab in %s (pid %d, log %s)\n", cf.dir, cmd.Process.Pid, logf.Name())

	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(lf.timeout + 10*time.Second) // serve enforces the timeout itself
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("serve exited (%v) before the lab was ready; %s:\n%s", err, logf.Name(), tail(logf.Name(), 30))
		case <-deadline:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			return fmt.Errorf("lab not ready after %v; sent SIGTERM to pid %d; see %s", lf.timeout, cmd.Process.Pid, logf.Name())
		case <-tick.C:
			if _, err := os.Stat(filepath.Join(cf.dir, readyFile)); err == nil {
				if err := printState(os.Stdout, cf.dir); err != nil || !lf.ironlb {
					return err
				}
				return printDemoFromState(os.Stdout, cf.dir)
			}
		}
	}
}

// state is what serve records in state.json for up and status.
type state struct {
	ID          string   `json:"id"`
	Namespaces  []string `json:"namespaces"`
	Hosts       []host   `json:"hosts"`
	Kubeconfig  string   `json:"kubeconfig"`
	APIServer   string   `json:"apiserver"`
	ServeVIPs   bool     `json:"serveVIPs"`
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
func serve(args []string) error {
	var cf commonFlags
	var lf labFlags
	fs := newFlagSet("serve", &cf)
	lf.register(fs)
	_ = fs.Parse(args)
	if err := cf.resolveDir(); err != nil {
		return err
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format(time.RFC3339)}, args...)...)
	}
	if err := os.MkdirAll(cf.dir, 0o755); err != nil {
		return err
	}
	pidPath := filepath.Join(cf.dir, pidFile)
	if err := os.WriteFile(pidPath, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	defer os.Remove(pidPath)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, lf.timeout)
	defer cancel()

	begin := time.Now()
	lab, err := netlab.New(startCtx, netlab.Options{
		Nodes:   lf.nodes,
		Client:  lf.client,
		Client2: lf.client2,
		Routers: lf.routerNames(),
		Dir:     cf.dir,
		ControlPlane: framework.Options{
			ServiceCIDR:  lf.serviceCIDR,
			StartTimeout: lf.timeout,
		},
		// We handle the signals (ctx above) and close the lab ourselves.
		NoSignalHandler: true,
		Logf:            logf,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := lab.Close(); err != nil {
			logf("%v", err)
		}
	}()
	networkUp := time.Since(begin)

	begin = time.Now()
	cp, err := lab.StartControlPlane(startCtx)
	if err != nil {
		return err
	}
	controlUp := time.Since(begin)
	if lf.serveVIPs || lf.ironlb {
		if err := lab.ServeVIPs(ctx, netlab.VIPv4, netlab.VIPv6, 80); err != nil {
			return err
		}
	}
	if lf.ironlb {
		env, err := startDemo(startCtx, lab, cp, logf)
		if err != nil {
			return err
		}
		defer env.Stop()
	}

	st := state{
		ID:          lab.ID,
		Namespaces:  lab.Namespaces(),
		Hosts:       hostsOf(lab),
		Kubeconfig:  cp.Kubeconfig,
		APIServer:   cp.URL,
		ServeVIPs:   lf.serveVIPs,
		NetworkUp:   networkUp.Round(time.Millisecond).String(),
		ControlUp:   controlUp.Round(time.Millisecond).String(),
		ServePid:    os.Getpid(),
		LogDir:      cf.dir,
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
	if err := os.WriteFile(filepath.Join(cf.dir, stateFile), append(b, '\n'), 0o644); err != nil {
		return err
	}
	readyPath := filepath.Join(cf.dir, readyFile)
	if err := os.WriteFile(readyPath, []byte(cp.Kubeconfig+"\n"), 0o644); err != nil {
		return err
	}
	defer os.Remove(readyPath)
	logf("lab %s ready (network %v, control plane %v)", lab.ID, st.NetworkUp, st.ControlUp)

	select {
	case <-ctx.Done():
		logf("signal received, tearing the lab down")
		return nil
	case <-expired:
		logf("-ttl %v reached, tearing the lab down", lf.ttl)
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

func down(args []string) error {
	var cf commonFlags
	fs := newFlagSet("down", &cf)
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait before SIGKILL")
	_ = fs.Parse(args)
	if err := cf.resolveDir(); err != nil {
		return err
	}
	if pid, ok := runningServe(cf.dir); ok {
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			return err
		}
		fmt.Fprintf(os.Stderr, "stopping lab (pid %d)\n", pid)
		deadline := time.Now().Add(*timeout)
		for alive(pid) {
			if time.Now().After(deadline) {
				// Its servers have Pdeathsig set and die with it; Sweep
				// below removes the namespaces.
				fmt.Fprintf(os.Stderr, "pid %d ignored SIGTERM for %v; killing it\n", pid, *timeout)
				_ = syscall.Kill(pid, syscall.SIGKILL)
				for i := 0; i < 50 && alive(pid); i++ {
					time.Sleep(100 * time.Millisecond)
				}
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	} else {
		fmt.Fprintln(os.Stderr, "lab is not running")
	}
	_ = os.Remove(filepath.Join(cf.dir, pidFile))
	_ = os.Remove(filepath.Join(cf.dir, readyFile))

	// Whatever a crashed (or just killed) serve left behind.
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	swept, err := netlab.Sweep(ctx)
	if len(swept) > 0 {
		fmt.Fprintf(os.Stderr, "swept namespaces of crashed labs: %s\n", strings.Join(swept, " "))
	}
	if err != nil {
		return err
	}
	if st, err := readState(cf.dir); err == nil {
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

func status(args []string) error {
	var cf commonFlags
	fs := newFlagSet("status", &cf)
	_ = fs.Parse(args)
	if err := cf.resolveDir(); err != nil {
		return err
	}
	pid, ok := runningServe(cf.dir)
	if !ok {
		return errors.New("not running")
	}
	if _, err := os.Stat(filepath.Join(cf.dir, readyFile)); err != nil {
		return fmt.Errorf("starting or stopping (pid %d), not ready; see %s", pid, filepath.Join(cf.dir, serveLog))
	}
	st, err := readState(cf.dir)
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
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
		return fmt.Errorf("running (pid %d) but %s is not ready: %w", pid, st.APIServer, err)
	}
	fmt.Fprintf(os.Stderr, "running (pid %d), %s ready\n", pid, st.APIServer)
	return printState(os.Stdout, cf.dir)
}

// labClient reaches the lab's apiserver, which listens only inside the lab,
// through its namespace.
func labClient(st *state) (kubernetes.Interface, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", st.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.Dial = framework.NetnsDialer(st.ID + "-cp")
	return kubernetes.NewForConfig(cfg)
}

// runningServe returns the pid from dir's pid file if that process is alive
// and is a lab serve process for dir (guarding against a recycled pid).
func runningServe(dir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dir, pidFile))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || !alive(pid) {
		return 0, false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0, false
	}
	argv := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if len(argv) < 4 || argv[1] != "serve" || !slices.Contains(argv, dir) {
		return 0, false
	}
	return pid, true
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// Format: pid (comm) state ...; comm may contain spaces or parens.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
