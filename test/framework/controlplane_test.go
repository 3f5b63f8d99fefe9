package framework_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/ironlb/ironlb/test/framework"
)

func TestControlPlaneLoadBalancerService(t *testing.T) {
	cp := framework.NewForTest(t, framework.Options{})
	ctx := t.Context()

	ns := createNamespace(ctx, t, cp, "lb-test")
	svc, err := cp.Client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create LoadBalancer service: %v", err)
	}
	expectClusterIPsIn(t, svc, "198.18.0.0/16")
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].NodePort == 0 {
		t.Errorf("LoadBalancer service got no NodePort: %+v", svc.Spec.Ports)
	}

	// The admin kubeconfig must work for kubectl too: developers and later
	// tests use it.
	kctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(kctx, "kubectl", "--kubeconfig", cp.Kubeconfig, "get", "svc", "-A", "-o", "wide").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl get svc -A: %v\n%s", err, out)
	}
	for _, want := range []string{"lb-test", "web", "LoadBalancer", svc.Spec.ClusterIP} {
		if !strings.Contains(string(out), want) {
			t.Errorf("kubectl output lacks %q:\n%s", want, out)
		}
	}
}

func TestControlPlaneDualStack(t *testing.T) {
	cp := framework.NewForTest(t, framework.Options{ServiceCIDR: "198.18.0.0/16,2001:db8:ffff::/112"})
	ctx := t.Context()

	ns := createNamespace(ctx, t, cp, "dual-stack")
	policy := corev1.IPFamilyPolicyRequireDualStack
	svc, err := cp.Client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			Type:           corev1.ServiceTypeLoadBalancer,
			IPFamilyPolicy: &policy,
			Selector:       map[string]string{"app": "web"},
			Ports:          []corev1.ServicePort{{Port: 443, Protocol: corev1.ProtocolTCP}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create dual-stack service: %v", err)
	}
	if len(svc.Spec.ClusterIPs) != 2 {
		t.Fatalf("want two ClusterIPs, got %v", svc.Spec.ClusterIPs)
	}
	expectClusterIPsIn(t, svc, "198.18.0.0/16", "2001:db8:ffff::/112")
}

func TestControlPlaneStopIsIdempotentAndReaps(t *testing.T) {
	cp, err := framework.StartControlPlane(t.Context(), framework.Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	dir := cp.Dir
	pids := []int{cp.Etcd.Pid(), cp.Apiserver.Pid()}
	cp.Stop()
	cp.Stop()
	for _, pid := range pids {
		// The processes were our children and have been reaped, so the pid is
		// gone (barring an unlikely immediate reuse).
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("pid %d still exists after Stop", pid)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("Stop left its temporary dir %s behind (stat: %v)", dir, err)
	}
}

func TestProcessStopEscalates(t *testing.T) {
	log := t.TempDir() + "/sleeper.log"
	// A shell that ignores SIGTERM must still be gone after Stop's bound.
	p, err := framework.StartProcess(t.Context(), "sleeper", log, "sh", "-c", `trap "" TERM; echo ready; while :; do sleep 0.1; done`)
	if err != nil {
		t.Fatal(err)
	}
	if err := framework.WaitFor(t.Context(), 5*time.Second, 20*time.Millisecond, func(context.Context) (bool, error) {
		// The log's first line echoes the command, so match the output line.
		return strings.Contains(p.LogTail(5), "\nready"), nil
	}); err != nil {
		t.Fatalf("sleeper never logged: %v; log:\n%s", err, p.LogTail(10))
	}
	begin := time.Now()
	err = p.Stop(300 * time.Millisecond)
	if !p.Exited() {
		t.Fatal("process still running after Stop")
	}
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Stop of a TERM-ignoring process = %v, want signal: killed", err)
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("Stop took %v", d)
	}
	if tail := p.LogTail(1); !strings.Contains(tail, "sleeper") || !strings.Contains(tail, "killed") {
		t.Errorf("log does not end with the exit marker: %q", tail)
	}
}

func createNamespace(ctx context.Context, t *testing.T, cp *framework.ControlPlane, name string) string {
	t.Helper()
	ns, err := cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	return ns.Name
}

// expectClusterIPsIn checks that svc has one ClusterIP per CIDR, each inside
// the corresponding CIDR.
func expectClusterIPsIn(t *testing.T, svc *corev1.Service, cidrs ...string) {
	t.Helper()
	if len(svc.Spec.ClusterIPs) != len(cidrs) {
		t.Fatalf("service %s/%s: ClusterIPs %v, want one in each of %v", svc.Namespace, svc.Name, svc.Spec.ClusterIPs, cidrs)
	}
	if svc.Spec.ClusterIP != svc.Spec.ClusterIPs[0] {
		t.Errorf("ClusterIP %q != ClusterIPs[0] %q", svc.Spec.ClusterIP, svc.Spec.ClusterIPs[0])
	}
	for i, cidr := range cidrs {
		ip, err := netip.ParseAddr(svc.Spec.ClusterIPs[i])
		if err != nil {
			t.Fatalf("ClusterIPs[%d]: %v", i, err)
		}
		if !netip.MustParsePrefix(cidr).Contains(ip) {
			t.Errorf("ClusterIPs[%d] = %s, not in %s", i, ip, cidr)
		}
	}
}

func TestStartControlPlaneMissingBinary(t *testing.T) {
	_, err := framework.StartControlPlane(t.Context(), framework.Options{ApiserverBinary: "/nonexistent/kube-apiserver"})
	if err == nil || !strings.Contains(err.Error(), "hack/ensure-apiserver.sh") {
		t.Fatalf("error = %v, want a hint to run hack/ensure-apiserver.sh", err)
	}
}

func TestStartControlPlaneFailureReportsLogAndCleansUp(t *testing.T) {
	dir := t.TempDir() + "/cp"
	cp, err := framework.StartControlPlane(t.Context(), framework.Options{
		Dir:                dir,
		ExtraApiserverArgs: []string{"--no-such-flag"},
		Logf:               t.Logf,
	})
	if err == nil {
		cp.Stop()
		t.Fatal("kube-apiserver with an unknown flag started")
	}
	t.Logf("start error, as expected:\n%v", err)
	if !strings.Contains(err.Error(), "unknown flag: --no-such-flag") {
		t.Errorf("error lacks the apiserver's complaint from its log:\n%v", err)
	}
	// etcd had started; a failed start must not leave it running.
	if pids := processesMentioning(t, dir); len(pids) > 0 {
		t.Errorf("processes still running for %s after a failed start: %v", dir, pids)
	}
}

func TestStartProcessInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("creating a network namespace needs root")
	}
	ns := "ironlb-fw-test-" + strconv.Itoa(os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })

	p, err := framework.StartProcessInNetns(t.Context(), ns, "links", t.TempDir()+"/links.log", "ip", "-o", "link", "show")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatalf("ip link show in %s: %v\n%s", ns, err, p.LogTail(20))
	}
	// A fresh namespace has only its own loopback device.
	var links []string
	for _, line := range strings.Split(p.LogTail(20), "\n") {
		if !strings.HasPrefix(line, "=== ") {
			links = append(links, line)
		}
	}
	if len(links) != 1 || !strings.Contains(links[0], ": lo:") {
		t.Errorf("links in new netns = %q, want only lo", links)
	}
}

// processesMentioning returns the pids of live processes whose command line
// contains s.
func processesMentioning(t *testing.T, s string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(cmdline), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestProcessEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	p, err := framework.StartProcessWith(ctx, framework.ProcessOptions{
		Name:      "stubborn",
		LogPath:   t.TempDir() + "/stubborn.log",
		StopGrace: 200 * time.Millisecond,
	}, "sh", "-c", `trap "" TERM; while :; do sleep 0.1; done`)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let sh install its trap
	cancel()
	select {
	case <-p.Done():
		t.Logf("exit after context end: %v", p.Wait())
	case <-time.After(5 * time.Second):
		t.Fatal("process outlived its context by 5s despite a 200ms grace")
	}
}

func TestWaitFor(t *testing.T) {
	n := 0
	if err := framework.WaitFor(t.Context(), 5*time.Second, time.Millisecond, func(context.Context) (bool, error) {
		n++
		return n == 3, nil
	}); err != nil || n != 3 {
		t.Errorf("WaitFor = %v after %d calls, want nil after 3", err, n)
	}
	if err := framework.WaitFor(t.Context(), 50*time.Millisecond, 10*time.Millisecond, func(context.Context) (bool, error) {
		return false, nil
	}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitFor on a never-true condition = %v, want a deadline error", err)
	}
	boom := errors.New("boom")
	if err := framework.WaitFor(t.Context(), 5*time.Second, time.Millisecond, func(context.Context) (bool, error) {
		return false, boom
	}); !errors.Is(err, boom) {
		t.Errorf("WaitFor = %v, want the condition's error", err)
	}
}
