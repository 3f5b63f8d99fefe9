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
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/internal/detach"
)

func main() {
	detach.Command{
		Name:     "controlplane",
		Server:   "control plane",
		StateDir: ".cache/cluster",
		Usage: `usage: controlplane up|down|status [flags]

  up      start etcd + kube-apiserver in the background; prints export KUBECONFIG=…
  down    stop them
  status  report whether they are running and ready

Run "controlplane <command> -h" for the command's flags.
`,
		Up:     up,
		Down:   down,
		Status: status,
		Serve:  serve,
	}.Main()
}

func up(fs *detach.Flags) error {
	cidr := fs.String("service-cidr", framework.DefaultServiceCIDR, "service ClusterIP range(s), comma-separated for dual stack")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long to wait for the control plane to become ready")
	srv := fs.Server()
	if _, err := srv.Up([]string{"-service-cidr", *cidr, "-timeout", timeout.String()}, *timeout); err != nil {
		return err
	}
	printExport(srv.Dir)
	return nil
}

func printExport(dir string) {
	fmt.Printf("export KUBECONFIG=%s\n", filepath.Join(dir, "kubeconfig"))
}

// serve runs the control plane in the foreground until SIGTERM/SIGINT, or
// until one of the servers dies.
func serve(fs *detach.Flags) error {
	cidr := fs.String("service-cidr", framework.DefaultServiceCIDR, "service ClusterIP range(s)")
	timeout := fs.Duration("timeout", framework.DefaultStartTimeout, "start-up bound")
	srv := fs.Server()
	return srv.Serve(func(ctx context.Context) error {
		cp, err := framework.StartControlPlane(ctx, framework.Options{
			Dir:          srv.Dir,
			ServiceCIDR:  *cidr,
			StartTimeout: *timeout,
			Logf:         detach.Logf,
		})
		if err != nil {
			return err
		}
		defer cp.Stop()
		unready, err := srv.SetReady(cp.Kubeconfig)
		if err != nil {
			return err
		}
		defer unready()

		select {
		case <-ctx.Done():
			detach.Logf("signal received, stopping")
			return nil
		case <-cp.Etcd.Done():
			return fmt.Errorf("etcd exited unexpectedly (%v); stopping", cp.Etcd.Wait())
		case <-cp.Apiserver.Done():
			return fmt.Errorf("kube-apiserver exited unexpectedly (%v); stopping", cp.Apiserver.Wait())
		}
	})
}

func status(fs *detach.Flags) error {
	srv := fs.Server()
	pid, err := srv.Check()
	if err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(srv.Dir, "kubeconfig"))
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if err := detach.ProbeAPIServer(pid, cfg.Host, client); err != nil {
		return err
	}
	printExport(srv.Dir)
	return nil
}

func down(fs *detach.Flags) error {
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait before SIGKILL")
	// The servers have Pdeathsig set, so they die with serve.
	if wasRunning, err := fs.Server().Down(*timeout); err != nil || !wasRunning {
		return err
	}
	fmt.Fprintln(os.Stderr, "control plane stopped")
	return nil
}
