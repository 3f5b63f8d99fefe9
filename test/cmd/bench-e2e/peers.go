package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/ironlb/ironlb/test/framework"
)

const (
	// peerStartTimeout bounds a peer's start until it serves its health
	// endpoint.
	peerStartTimeout = 60 * time.Second
	peerStopGrace    = 10 * time.Second

	// kube-vip-cloud-provider's pool: the ConfigMap it reads by default
	// (KUBEVIP_NAMESPACE, KUBEVIP_CONFIG_MAP unset), with one global pool.
	kubeVIPNamespace = metav1.NamespaceSystem
	kubeVIPConfigMap = "kubevip"
	kubeVIPPoolKey   = "cidr-global"

	// MetalLB's namespace, as its manifests install it, and the name of the
	// Pod object its controller looks itself up by.
	metalLBNamespace = "metallb-system"
	metalLBPod       = "controller"
)

var ipAddressPools = schema.GroupVersionResource{Group: "metallb.io", Version: "v1beta1", Resource: "ipaddresspools"}

// instance is a running contestant.
type instance struct {
	// main is the process that assigns addresses: its memory is sampled and
	// its exit ends the run.
	main *framework.Process
	// metrics reads a cloud-provider's /metrics (ironlb-ccm and
	// kube-vip-cloud-provider); nil for MetalLB, whose metrics need a token.
	metrics *framework.CCM
	// stop stops what start started.
	stop func()
}

// startContestant configures the pool for c in the fresh control plane and
// starts c's binary; it returns once the binary serves its health endpoint.
// peerBin is the peer's binary (unused for ironlb).
func startContestant(ctx context.Context, c contestant, cp *framework.ControlPlane, pool []netip.Prefix, installed []string, peerBin string) (*instance, error) {
	switch c.kind {
	case kindKubeVIP:
		return startKubeVIP(ctx, cp, pool, peerBin)
	case kindMetalLB:
		return startMetalLB(ctx, cp, pool, peerBin)
	}
	if err := framework.ApplyConfig(ctx, cp.Client, poolConfig(pool)); err != nil {
		return nil, fmt.Errorf("apply ironlb-config: %w", err)
	}
	ccm, err := cp.StartCCM(ctx, framework.CCMOptions{Name: "ironlb-ccm", Args: c.ironlbArgs(installed)})
	if err != nil {
		return nil, fmt.Errorf("start ironlb-ccm: %w", err)
	}
	return &instance{main: ccm.Process, metrics: ccm, stop: func() { _ = ccm.Stop(ccmStopGrace) }}, nil
}

// startKubeVIP runs kube-vip-cloud-provider as its own manifest
// (manifest/kube-vip-cloud-controller.yaml in its module) does: the upstream
// cloud-controller-manager command with --leader-elect-resource-name=
// kube-vip-cloud-controller and otherwise its defaults (one service worker).
// Outside a pod it needs --OutSideCluster, with which its provider reads
// $HOME/.kube/config (in a pod it uses the in-cluster account); the
// controller manager itself takes --kubeconfig, and --bind-address and
// --secure-port keep it on a free loopback port. One flag is added for the
// report only: /metrics readable without a token (as ironlb-ccm serves it),
// so its service syncs and API requests can be counted as ironlb's are.
func startKubeVIP(ctx context.Context, cp *framework.ControlPlane, pool []netip.Prefix, bin string) (*instance, error) {
	cm := &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: kubeVIPNamespace, Name: kubeVIPConfigMap},
		Data:       map[string]string{kubeVIPPoolKey: joinPrefixes(pool, ",")},
	}
	if _, err := cp.Client.CoreV1().ConfigMaps(kubeVIPNamespace).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create ConfigMap %s/%s: %w", kubeVIPNamespace, kubeVIPConfigMap, err)
	}
	home := filepath.Join(cp.Dir, "kube-vip-home")
	if err := copyFile(cp.Kubeconfig, filepath.Join(home, ".kube", "config")); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	name := framework.PeerKubeVIP.Name
	p, err := framework.StartProcessWith(ctx, framework.ProcessOptions{
		Name: name, LogPath: filepath.Join(cp.Dir, name+".log"), Env: []string{"HOME=" + home}, StopGrace: peerStopGrace,
	}, bin,
		"--leader-elect-resource-name=kube-vip-cloud-controller",
		"--OutSideCluster=true",
		"--kubeconfig="+cp.Kubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(port),
		"--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
	)
	if err != nil {
		return nil, err
	}
	m := &framework.CCM{Process: p, Port: port}
	if err := waitServing(ctx, p, func(ctx context.Context) (int, error) {
		code, _, err := m.Get(ctx, "/healthz")
		return code, err
	}); err != nil {
		_ = p.Kill()
		return nil, err
	}
	return &instance{main: p, metrics: m, stop: func() { _ = p.Stop(peerStopGrace) }}, nil
}

// startMetalLB runs MetalLB's controller (the part that assigns addresses;
// the speakers only announce them) with its manifest's flags (--port for
// metrics, --log-level=info) plus what a run outside a pod needs: the
// namespace and its own Pod's name (from the downward API in a pod), a
// kubeconfig, and --webhook-mode=disabled (the webhooks only validate
// MetalLB's own objects, and would need a Service, a certificate and a
// ValidatingWebhookConfiguration pointing at it). It reads its pools from
// IPAddressPool objects, whose CRDs come from the release's own files
// (config/crd/bases in its module).
func startMetalLB(ctx context.Context, cp *framework.ControlPlane, pool []netip.Prefix, bin string) (*instance, error) {
	src, err := framework.PeerMetalLB.ModuleDir(ctx)
	if err != nil {
		return nil, err
	}
	crds, err := filepath.Glob(filepath.Join(src, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(crds) == 0 {
		return nil, fmt.Errorf("no MetalLB CRDs in %s/config/crd/bases (%v)", src, err)
	}
	if err := framework.ApplyCRDFiles(ctx, cp.RESTConfig, crds...); err != nil {
		return nil, err
	}
	if err := metalLBObjects(ctx, cp, pool); err != nil {
		return nil, err
	}
	// Both listen on every address (MetalLB has no flag to choose one), on
	// free ports so runs never collide.
	ports := make([]int, 2)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	name := "metallb-controller"
	p, err := framework.StartProcessWith(ctx, framework.ProcessOptions{
		Name: name, LogPath: filepath.Join(cp.Dir, name+".log"), StopGrace: peerStopGrace,
		Env: []string{"METALLB_NAMESPACE=" + metalLBNamespace, "METALLB_POD_NAME=" + metalLBPod},
	}, bin,
		"--port="+strconv.Itoa(ports[0]),
		"--log-level=info",
		"--webhook-mode=disabled",
		"--health-probe-port="+strconv.Itoa(ports[1]),
		"--kubeconfig="+cp.Kubeconfig,
	)
	if err != nil {
		return nil, err
	}
	health := &http.Client{Timeout: 5 * time.Second}
	if err := waitServing(ctx, p, func(ctx context.Context) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[1]), nil)
		if err != nil {
			return 0, err
		}
		resp, err := health.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}); err != nil {
		_ = p.Kill()
		return nil, err
	}
	return &instance{main: p, stop: func() { _ = p.Stop(peerStopGrace) }}, nil
}

// metalLBObjects creates what MetalLB's install would: its namespace, the
// Pod object its controller reads its own owner references from (nothing
// runs it: there is no scheduler or kubelet), and one IPAddressPool.
func metalLBObjects(ctx context.Context, cp *framework.ControlPlane, pool []netip.Prefix) error {
	client := cp.Client
	ns := &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: metalLBNamespace}}
	if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", metalLBNamespace, err)
	}
	// The ServiceAccount admission plugin wants the Pod's account to exist;
	// no controller manager creates "default" here.
	sa := &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: metalLBNamespace, Name: "controller"}}
	if _, err := client.CoreV1().ServiceAccounts(metalLBNamespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create ServiceAccount %s/controller: %w", metalLBNamespace, err)
	}
	no := false
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: metalLBNamespace, Name: metalLBPod, Labels: map[string]string{"app": "metallb", "component": "controller"}},
		Spec: v1.PodSpec{
			ServiceAccountName:           "controller",
			AutomountServiceAccountToken: &no,
			Containers:                   []v1.Container{{Name: "controller", Image: "quay.io/metallb/controller"}},
		},
	}
	if _, err := client.CoreV1().Pods(metalLBNamespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create Pod %s/%s: %w", metalLBNamespace, metalLBPod, err)
	}
	dyn, err := dynamic.NewForConfig(cp.RESTConfig)
	if err != nil {
		return err
	}
	addrs := make([]any, len(pool))
	for i, p := range pool {
		addrs[i] = p.String()
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "metallb.io/v1beta1",
		"kind":       "IPAddressPool",
		"metadata":   map[string]any{"name": "bench", "namespace": metalLBNamespace},
		"spec":       map[string]any{"addresses": addrs},
	}}
	if _, err := dyn.Resource(ipAddressPools).Namespace(metalLBNamespace).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create IPAddressPool: %w", err)
	}
	return nil
}

// waitServing polls get until it answers 200, the process exits, or
// peerStartTimeout passes.
func waitServing(ctx context.Context, p *framework.Process, get func(context.Context) (int, error)) error {
	var last error
	err := framework.WaitFor(ctx, peerStartTimeout, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("%s exited:\n%s", p.Name, p.LogTail(30))
		}
		code, err := get(ctx)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("status %d", code)
		}
		last = err
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("%s is not serving (last: %v): %w\n--- %s log tail ---\n%s", p.Name, last, err, p.Name, p.LogTail(30))
	}
	return nil
}

// freePort returns a TCP port free on loopback at the time of the call.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o600)
}

func joinPrefixes(pool []netip.Prefix, sep string) string {
	s := make([]string, len(pool))
	for i, p := range pool {
		s[i] = p.String()
	}
	return strings.Join(s, sep)
}
