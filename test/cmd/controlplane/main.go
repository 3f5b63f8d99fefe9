// Command controlplane runs the integration-test control plane (etcd +
// kube-apiserver on loopback) in the background for hands-on work:
//
//	eval "$(go run ./test/cmd/controlplane up)"   # prints export KUBECONFIG=…
//	kubectl get ns
//	go run ./test/cmd/controlplane status
//	go run ./test/cmd/controlplane down
//
// `up` re-executes itself as a detached `serve` process (new session, so it
// survives the shell command) that owns the servers and tears them down on
// SIGTERM. State lives in <repo>/.cache/cluster and is wiped by the next `up`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ironlb/ironlb/test/framework"
)

const (
	pidFile   = "serve.pid"
	readyFile = "ready" // written by serve once the control plane is usable
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
		fmt.Fprintf(os.Stderr, "controlplane %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintf(os.Stderr, `usage: controlplane up|down|status [flags]

  up      start etcd + kube-apiserver in the background; prints export KUBECONFIG=…
  down    stop them
  status  report whether they are running and ready

Run "controlplane <command> -h" for the command's flags.
`)
}

// commonFlags are accepted by every subcommand.
type commonFlags struct {
	dir string
}

func newFlagSet(name string, cf *commonFlags) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	fs.StringVar(&cf.dir, "dir", "", "state directory (default <repo>/.cache/cluster)")
	return fs
}

func (cf *commonFlags) resolveDir() error {
	if cf.dir == "" {
		root, err := framework.RepoRoot()
		if err != nil {
			return err
		}
		cf.dir = filepath.Join(root, ".cache", "cluster")
	}
	abs, err := filepath.Abs(cf.dir)
	cf.dir = abs
	return err
}

func up(args []string) error {
	var cf commonFlags
	fs := newFlagSet("up", &cf)
	cidr := fs.String("service-cidr", framework.DefaultServiceCIDR, "service ClusterIP range(s), comma-separated for dual stack")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long to wait for the control plane to become ready")
	_ = fs.Parse(args)
	if err := cf.resolveDir(); err != nil {
		return err
	}

	if pid, ok := runningServe(cf.dir); ok {
		if _, err := os.Stat(filepath.Join(cf.dir, readyFile)); err == nil {
			fmt.Fprintf(os.Stderr, "control plane already running (pid %d)\n", pid)
			printExport(cf.dir)
			return nil
		}
		return fmt.Errorf("a control plane (pid %d) is starting or unhealthy; run `down` first", pid)
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
	cmd := exec.Command(self, "serve", "-dir", cf.dir, "-service-cidr", *cidr, "-timeout", timeout.String())
	cmd.Stdout, cmd.Stderr = logf, logf
	// A new session: no controlling terminal, not in the shell's job, so it
	// outlives this command and ^C here.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "starting control plane in %s (pid %d, log %s)\n", cf.dir, cmd.Process.Pid, logf.Name())

	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(*timeout + 10*time.Second) // serve enforces *timeout itself
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("serve exited (%v) before the control plane was ready; %s:\n%s", err, logf.Name(), tail(logf.Name(), 30))
		case <-deadline:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			return fmt.Errorf("control plane not ready after %v; sent SIGTERM to pid %d; see %s", *timeout, cmd.Process.Pid, logf.Name())
		case <-tick.C:
			if _, err := os.Stat(filepath.Join(cf.dir, readyFile)); err == nil {
				printExport(cf.dir)
				return nil
			}
		}
	}
}

func printExport(dir string) {
	fmt.Printf("export KUBECONFIG=%s\n", filepath.Join(dir, "kubeconfig"))
}

// serve runs the control plane in the foreground until SIGTERM/SIGINT, or
// until one of the servers dies.
func serve(args []string) error {
	var cf commonFlags
	fs := newFlagSet("serve", &cf)
	cidr := fs.String("service-cidr", framework.DefaultServiceCIDR, "service ClusterIP range(s)")
	timeout := fs.Duration("timeout", framework.DefaultStartTimeout, "start-up bound")
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
	cp, err := framework.StartControlPlane(ctx, framework.Options{
		Dir:          cf.dir,
		ServiceCIDR:  *cidr,
		StartTimeout: *timeout,
		Logf:         logf,
	})
	if err != nil {
		return err
	}
	defer cp.Stop()

	readyPath := filepath.Join(cf.dir, readyFile)
	if err := os.WriteFile(readyPath, []byte(cp.Kubeconfig+"\n"), 0o644); err != nil {
		return err
	}
	defer os.Remove(readyPath)

	select {
	case <-ctx.Done():
		logf("signal received, stopping")
		return nil
	case <-cp.Etcd.Done():
		return fmt.Errorf("etcd exited unexpectedly (%v); stopping", cp.Etcd.Wait())
	case <-cp.Apiserver.Done():
		return fmt.Errorf("kube-apiserver exited unexpectedly (%v); stopping", cp.Apiserver.Wait())
	}
}

func down(args []string) error {
	var cf commonFlags
	fs := newFlagSet("down", &cf)
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait before SIGKILL")
	_ = fs.Parse(args)
	if err := cf.resolveDir(); err != nil {
		return err
	}
	pid, ok := runningServe(cf.dir)
	if !ok {
		fmt.Fprintln(os.Stderr, "control plane is not running")
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	fmt.Fprintf(os.Stderr, "stopping control plane (pid %d)\n", pid)
	deadline := time.Now().Add(*timeout)
	for alive(pid) {
		if time.Now().After(deadline) {
			// The servers have Pdeathsig set, so they die with serve.
			fmt.Fprintf(os.Stderr, "pid %d ignored SIGTERM for %v; killing it\n", pid, *timeout)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = os.Remove(filepath.Join(cf.dir, pidFile))
	_ = os.Remove(filepath.Join(cf.dir, readyFile))
	fmt.Fprintln(os.Stderr, "control plane stopped")
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
		return fmt.Errorf("starting (pid %d), not ready yet; see %s", pid, filepath.Join(cf.dir, serveLog))
	}
	kubeconfig := filepath.Join(cf.dir, "kubeconfig")
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
		return fmt.Errorf("running (pid %d) but %s is not ready: %w", pid, cfg.Host, err)
	}
	fmt.Fprintf(os.Stderr, "running (pid %d), %s ready\n", pid, cfg.Host)
	printExport(cf.dir)
	return nil
}

// runningServe returns the pid from dir's pid file if that process is alive
// and is a controlplane serve process for dir (guarding against a recycled
// pid).
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
