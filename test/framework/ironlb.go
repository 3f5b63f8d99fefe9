package framework

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
)

// Where ironlb keeps its config, as the binaries default to.
const (
	IronLBNamespace = "ironlb-system"
	ConfigMapName   = "ironlb-config"
	ConfigMapKey    = "config.yaml"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// IronLBBinaries builds ironlb's commands once per test binary and returns
// the folder holding them. $IRONLB_BIN_DIR, when set, is used as is.
func IronLBBinaries() (string, error) {
	buildOnce.Do(func() {
		if dir := os.Getenv("IRONLB_BIN_DIR"); dir != "" {
			buildDir = dir
			return
		}
		root, err := RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		buildDir = filepath.Join(root, ".cache", "test-bin")
		// As make build does: static, without grpc's tracing (see Makefile).
		cmd := exec.Command("go", "build", "-trimpath", "-tags", "grpcnotrace", "-o", buildDir+string(filepath.Separator), "./cmd/...")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building ironlb: %v\n%s", err, out)
		}
	})
	return buildDir, buildErr
}

// CCMOptions configures StartCCM.
type CCMOptions struct {
	// Name labels the process and its log file; default "ironlb-ccm".
	Name string
	// FastLeaderElection shortens the lease so failover tests take seconds.
	FastLeaderElection bool
	// Args are appended to the defaults.
	Args []string
}

// CCM is a running ironlb-ccm.
type CCM struct {
	*Process
	// Port serves /healthz and /metrics over HTTPS on 127.0.0.1 (of the
	// control plane's network namespace, if it has one).
	Port int

	dial Dialer // nil: the caller's namespace
}

// StartCCM runs the real ironlb-ccm binary against the control plane, in the
// control plane's network namespace if it has one. It returns once /healthz
// answers; the process stops when ctx ends.
func (c *ControlPlane) StartCCM(ctx context.Context, opts CCMOptions) (*CCM, error) {
	dir, err := IronLBBinaries()
	if err != nil {
		return nil, err
	}
	if opts.Name == "" {
		opts.Name = "ironlb-ccm"
	}
	port, err := c.freePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	args := []string{
		"--kubeconfig=" + c.Kubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--v=2",
	}
	if opts.FastLeaderElection {
		args = append(args, "--leader-elect-lease-duration=4s", "--leader-elect-renew-deadline=3s", "--leader-elect-retry-period=500ms")
	}
	args = append(args, opts.Args...)
	p, err := StartProcessWith(ctx, ProcessOptions{Name: opts.Name, LogPath: filepath.Join(c.Dir, opts.Name+".log"), Netns: c.Netns},
		filepath.Join(dir, "ironlb-ccm"), args...)
	if err != nil {
		return nil, err
	}
	ccm := &CCM{Process: p, Port: port, dial: c.Dial}
	err = WaitFor(ctx, 60*time.Second, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("%s exited:\n%s", opts.Name, p.LogTail(30))
		}
		code, _, _ := ccm.Get(ctx, "/healthz")
		return code == http.StatusOK, nil
	})
	if err != nil {
		_ = p.Kill()
		return nil, err
	}
	return ccm, nil
}

// Get fetches path from the CCM's secure port (self-signed, so unverified).
func (m *CCM) Get(ctx context.Context, path string) (int, string, error) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // test-only, loopback
		DialContext:       m.dial,
		DisableKeepAlives: true,
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d%s", m.Port, path), nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// IsLeader reports whether this CCM's log says it acquired the lease.
func (m *CCM) IsLeader() bool {
	data, err := os.ReadFile(m.LogPath)
	return err == nil && strings.Contains(string(data[m.logOffset:]), "Successfully acquired lease")
}

// ApplyConfig creates or replaces ironlb-config (and its namespace).
func ApplyConfig(ctx context.Context, client kubernetes.Interface, configYAML string) error {
	ns := &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: IronLBNamespace}}
	if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	cm := &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: IronLBNamespace, Name: ConfigMapName},
		Data:       map[string]string{ConfigMapKey: configYAML},
	}
	_, err := client.CoreV1().ConfigMaps(IronLBNamespace).Update(ctx, cm, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		_, err = client.CoreV1().ConfigMaps(IronLBNamespace).Create(ctx, cm, metav1.CreateOptions{})
	}
	return err
}

// IngressIPs returns a service's load-balancer addresses.
func IngressIPs(svc *v1.Service) []string {
	var ips []string
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		ips = append(ips, ing.IP)
	}
	return ips
}

// WaitForIngress waits until the service has want addresses and returns them.
func WaitForIngress(ctx context.Context, client kubernetes.Interface, namespace, name string, want int, timeout time.Duration) ([]string, error) {
	var ips []string
	err := WaitFor(ctx, timeout, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		svc, err := client.CoreV1().Services(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		ips = IngressIPs(svc)
		return len(ips) >= want, nil
	})
	if err != nil {
		return ips, fmt.Errorf("service %s/%s has addresses %v, want %d: %w", namespace, name, ips, want, err)
	}
	return ips, nil
}

// EventMessages lists the messages of events with reason on an object.
func EventMessages(ctx context.Context, client kubernetes.Interface, namespace, name, reason string) ([]string, error) {
	selector := fields.Set{"involvedObject.name": name, "reason": reason}.AsSelector().String()
	list, err := client.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: selector})
	if err != nil {
		return nil, err
	}
	var msgs []string
	for _, e := range list.Items {
		msgs = append(msgs, e.Message)
	}
	sort.Strings(msgs)
	return msgs, nil
}

// WaitForEvent waits for an event with reason on an object whose message
// contains substr, and returns that message.
func WaitForEvent(ctx context.Context, client kubernetes.Interface, namespace, name, reason, substr string, timeout time.Duration) (string, error) {
	var found string
	var seen []string
	err := WaitFor(ctx, timeout, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
		msgs, err := EventMessages(ctx, client, namespace, name, reason)
		if err != nil {
			return false, nil
		}
		seen = msgs
		for _, m := range msgs {
			if strings.Contains(m, substr) {
				found = m
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return "", fmt.Errorf("no %s event on %s/%s containing %q (seen: %q): %w", reason, namespace, name, substr, seen, err)
	}
	return found, nil
}
