package labenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/netlab"
)

// Impl names the load balancer an Env runs on the lab.
type Impl string

// Implementations Options.Impl accepts.
const (
	// ImplIronLB (or "") runs ironlb-ccm and ironlb-speaker.
	ImplIronLB Impl = "ironlb"
	// ImplMetalLB runs MetalLB's own controller and speaker instead, built
	// by hack/ensure-peers.sh from the version test/peers/metallb/go.mod
	// requires, in layer2 mode with its defaults: memberlist on, its key
	// from the Secret MetalLB's controller creates. For comparisons on the
	// very same lab (bench-failover).
	ImplMetalLB Impl = "metallb"
)

// MetalLBOptions configure MetalLB (Options.Impl == ImplMetalLB).
type MetalLBOptions struct {
	// Addresses of the one IPAddressPool, in MetalLB's syntax (CIDRs and
	// first-last ranges).
	Addresses []string
	// Interfaces of the L2Advertisement; empty: every interface.
	Interfaces []string
}

// What MetalLB's own manifests (config/controllers, config/native) name;
// the speaker finds its memberlist peers by listing Pods with these labels.
const (
	MetalLBNamespace     = "metallb-system"
	metallbSpeakerLabels = "app=metallb,component=speaker"
	metallbMLSecret      = "memberlist" // METALLB_ML_SECRET_NAME
	metallbMLSecretKey   = "secretkey"  // the key the controller writes and the speaker reads
	metallbDeployment    = "controller" // METALLB_DEPLOYMENT: owner of the memberlist Secret
	metallbControllerPod = "controller-lab"
	metallbPoolName      = "lab"
	metallbMetricsPort   = "9120" // --port, as its manifests set it
)

var (
	ipAddressPools   = schema.GroupVersionResource{Group: "metallb.io", Version: "v1beta1", Resource: "ipaddresspools"}
	l2Advertisements = schema.GroupVersionResource{Group: "metallb.io", Version: "v1beta1", Resource: "l2advertisements"}
)

// metallbState is what a MetalLB Env keeps.
type metallbState struct {
	version    string
	speakerBin string
	keyDir     string // the memberlist Secret, "mounted" as kubelet would
	tmpDir     string
}

// runMetalLB brings MetalLB up where Run brings ironlb up: its CRDs, its
// namespace and the objects its manifests create, the pool, its controller
// in the control plane's namespace and one speaker per node.
func (e *Env) runMetalLB(ctx context.Context) error {
	if len(e.opts.MetalLB.Addresses) == 0 {
		return errors.New("labenv: MetalLB needs MetalLBOptions.Addresses for its IPAddressPool")
	}
	for _, p := range []string{"/etc/metallb/excludel2.yaml", "/etc/metallb/memberlist/config.json"} {
		// The speaker reads these fixed paths (ConfigMaps in its
		// manifests) from the host; the lab does not provide them.
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("labenv: %s exists on this machine and would change MetalLB's defaults; move it away", p)
		}
	}
	version, err := framework.PeerMetalLB.Version()
	if err != nil {
		return err
	}
	e.opts.Logf("labenv: hack/ensure-peers.sh metallb metallb-speaker (builds them on first use)")
	controllerBin, err := framework.PeerMetalLB.Binary(ctx)
	if err != nil {
		return err
	}
	speakerBin, err := framework.PeerMetalLBSpeaker.Binary(ctx)
	if err != nil {
		return err
	}
	modDir, err := framework.PeerMetalLB.ModuleDir(ctx)
	if err != nil {
		return err
	}
	st := &metallbState{version: version, speakerBin: speakerBin,
		keyDir: filepath.Join(e.Lab.Dir, "metallb", "ml_secret_key"), tmpDir: filepath.Join(e.Lab.Dir, "metallb", "tmp")}
	for _, d := range []string{st.keyDir, st.tmpDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	e.metallb = st

	e.opts.Logf("labenv: installing MetalLB %s (CRDs from %s)", version, filepath.Join(modDir, "config", "crd", "bases"))
	dyn, err := dynamic.NewForConfig(e.CP.RESTConfig)
	if err != nil {
		return err
	}
	crds, err := filepath.Glob(filepath.Join(modDir, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(crds) == 0 {
		return fmt.Errorf("no MetalLB CRDs in %s (%v)", modDir, err)
	}
	if err := framework.ApplyCRDFiles(ctx, e.CP.RESTConfig, crds...); err != nil {
		return err
	}
	if err := e.createMetalLBObjects(ctx, dyn); err != nil {
		return err
	}

	e.opts.Logf("labenv: starting MetalLB's controller and %d speakers", len(e.Lab.Nodes()))
	if err := e.startMetalLBController(ctx, controllerBin); err != nil {
		return err
	}
	for _, n := range e.Lab.Nodes() {
		if err := e.StartSpeaker(ctx, n.Name); err != nil {
			return err
		}
	}
	return nil
}

// createMetalLBObjects creates what MetalLB's manifests and a cluster would
// hold: the namespace, the service accounts, the controller's Deployment
// (owner of the memberlist Secret the controller creates), one Pod per
// component (the lab has no kubelet: a Pod bound to each node, with the
// status a kubelet would report, for the speakers' memberlist discovery),
// the IPAddressPool and the L2Advertisement.
func (e *Env) createMetalLBObjects(ctx context.Context, dyn dynamic.Interface) error {
	c := e.Client.CoreV1()
	ns := &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: MetalLBNamespace, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "privileged",
	}}}
	if _, err := c.Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	for _, sa := range []string{"controller", "speaker"} {
		obj := &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: MetalLBNamespace, Name: sa}}
		if _, err := c.ServiceAccounts(MetalLBNamespace).Create(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	controllerLabels := map[string]string{"app": "metallb", "component": "controller"}
	image := "quay.io/metallb/controller:" + e.metallb.version
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: MetalLBNamespace, Name: metallbDeployment, Labels: controllerLabels},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: controllerLabels},
			Template: v1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: controllerLabels},
				Spec:       v1.PodSpec{ServiceAccountName: "controller", Containers: []v1.Container{{Name: "controller", Image: image}}},
			},
		},
	}
	if _, err := e.Client.AppsV1().Deployments(MetalLBNamespace).Create(ctx, deploy, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	cpHost := e.Lab.ControlPlane()
	if err := e.createRunningPod(ctx, metallbControllerPod, "", controllerLabels, "controller", image, false, cpHost); err != nil {
		return err
	}
	speakerLabels := map[string]string{"app": "metallb", "component": "speaker"}
	for _, n := range e.Lab.Nodes() {
		if err := e.createRunningPod(ctx, "speaker-"+n.Name, n.Name, speakerLabels, "speaker",
			"quay.io/metallb/speaker:"+e.metallb.version, true, n); err != nil {
			return err
		}
	}

	pool := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
		"metadata": map[string]any{"name": metallbPoolName, "namespace": MetalLBNamespace},
		"spec":     map[string]any{"addresses": toAny(e.opts.MetalLB.Addresses)},
	}}
	if _, err := dyn.Resource(ipAddressPools).Namespace(MetalLBNamespace).Create(ctx, pool, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create IPAddressPool: %w", err)
	}
	spec := map[string]any{"ipAddressPools": []any{metallbPoolName}}
	if len(e.opts.MetalLB.Interfaces) > 0 {
		spec["interfaces"] = toAny(e.opts.MetalLB.Interfaces)
	}
	adv := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
		"metadata": map[string]any{"name": metallbPoolName, "namespace": MetalLBNamespace},
		"spec":     spec,
	}}
	if _, err := dyn.Resource(l2Advertisements).Namespace(MetalLBNamespace).Create(ctx, adv, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create L2Advertisement: %w", err)
	}
	return nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// createRunningPod creates a Pod (bound to node, if given) and sets the
// status a kubelet would once its container runs: Running, Ready, and the
// host's addresses (hostNetwork) as pod and host IPs.
func (e *Env) createRunningPod(ctx context.Context, name, node string, labels map[string]string, container, image string, hostNetwork bool, host *netlab.Host) error {
	pods := e.Client.CoreV1().Pods(MetalLBNamespace)
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: MetalLBNamespace, Name: name, Labels: labels},
		Spec: v1.PodSpec{NodeName: node, HostNetwork: hostNetwork, ServiceAccountName: container,
			Containers: []v1.Container{{Name: container, Image: image}}},
	}
	created, err := pods.Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create pod %s: %w", name, err)
	}
	now := metav1.Now()
	created.Status = v1.PodStatus{
		Phase:     v1.PodRunning,
		HostIP:    host.IPv4.String(),
		HostIPs:   []v1.HostIP{{IP: host.IPv4.String()}, {IP: host.IPv6.String()}},
		PodIP:     host.IPv4.String(),
		PodIPs:    []v1.PodIP{{IP: host.IPv4.String()}, {IP: host.IPv6.String()}},
		StartTime: &now,
		Conditions: []v1.PodCondition{
			{Type: v1.PodScheduled, Status: v1.ConditionTrue, LastTransitionTime: now},
			{Type: v1.PodInitialized, Status: v1.ConditionTrue, LastTransitionTime: now},
			{Type: v1.ContainersReady, Status: v1.ConditionTrue, LastTransitionTime: now},
			{Type: v1.PodReady, Status: v1.ConditionTrue, LastTransitionTime: now},
		},
		ContainerStatuses: []v1.ContainerStatus{{Name: container, Image: image, Ready: true, Started: ptr.To(true),
			State: v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: now}}}},
	}
	if _, err := pods.UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("pod %s status: %w", name, err)
	}
	return nil
}

// metallbEnv is the environment MetalLB's processes get from their
// manifests' Downward API and fixed values (plus the kubeconfig a pod's
// service account would give).
func (e *Env) metallbEnv(extra ...string) []string {
	return append([]string{
		"KUBECONFIG=" + e.CP.Kubeconfig,
		"METALLB_NAMESPACE=" + MetalLBNamespace,
		// Anything it writes to a temporary folder goes with the lab.
		"TMPDIR=" + e.metallb.tmpDir,
	}, extra...)
}

// startMetalLBController runs MetalLB's controller in the control plane's
// namespace, webhooks disabled, and waits for the memberlist Secret it
// creates; then writes the Secret's key where the speakers read it, as
// kubelet mounts it.
func (e *Env) startMetalLBController(ctx context.Context, bin string) error {
	cp := e.Lab.ControlPlane()
	p, err := framework.StartProcessWith(context.Background(), framework.ProcessOptions{
		Name:    cp.Name + "/metallb-controller",
		LogPath: filepath.Join(e.Lab.Dir, cp.Name+"-metallb-controller.log"),
		Netns:   cp.Netns,
		Env: e.metallbEnv(
			"METALLB_POD_NAME="+metallbControllerPod,
			"METALLB_ML_SECRET_NAME="+metallbMLSecret,
			"METALLB_DEPLOYMENT="+metallbDeployment,
		),
		StopGrace: 3 * time.Second,
	}, bin, "--port="+metallbMetricsPort, "--log-level=info", "--webhook-mode=disabled")
	if err != nil {
		return err
	}
	e.MetalLBController = p
	var key []byte
	err = framework.WaitFor(ctx, 60*time.Second, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("MetalLB's controller exited:\n%s", p.LogTail(30))
		}
		s, err := e.Client.CoreV1().Secrets(MetalLBNamespace).Get(ctx, metallbMLSecret, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		key = s.Data[metallbMLSecretKey]
		return len(key) > 0, nil
	})
	if err != nil {
		return fmt.Errorf("MetalLB's controller created no Secret %s/%s: %w\n%s", MetalLBNamespace, metallbMLSecret, err, p.LogTail(30))
	}
	return os.WriteFile(filepath.Join(e.metallb.keyDir, metallbMLSecretKey), key, 0o600)
}

// startMetalLBSpeaker runs MetalLB's speaker in node's namespace with only
// the capabilities its DaemonSet grants (NET_RAW), configured as its
// manifests configure it.
func (e *Env) startMetalLBSpeaker(node string) error {
	host := e.node(node)
	if host == nil {
		return fmt.Errorf("no node %s", node)
	}
	const keep = "-all,+net_raw"
	ip := host.IPv4.String()
	p, err := framework.StartProcessWith(context.Background(), framework.ProcessOptions{
		Name:    host.Name + "/metallb-speaker",
		LogPath: filepath.Join(e.Lab.Dir, host.Name+"-metallb-speaker.log"),
		Netns:   host.Netns,
		Env: e.metallbEnv(
			"METALLB_NODE_NAME="+node,
			"METALLB_POD_NAME=speaker-"+node,
			"METALLB_HOST="+ip,
			"METALLB_ML_BIND_ADDR="+ip,
			"METALLB_ML_LABELS="+metallbSpeakerLabels,
			"METALLB_ML_SECRET_KEY_PATH="+e.metallb.keyDir,
		),
		StopGrace: 3 * time.Second,
	}, "setpriv", "--bounding-set="+keep, "--inh-caps="+keep, "--no-new-privs",
		e.metallb.speakerBin, "--port="+metallbMetricsPort, "--log-level=info")
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.speakers[node] = p
	e.mu.Unlock()
	return nil
}

// waitMetalLBConverged waits until every MetalLB speaker has its ARP
// responder on the lab interface and sees every speaker as a memberlist
// member. MetalLB exports no member count, so this follows the memberlist
// events each speaker logs ("node event": NodeJoin/NodeLeave/NodeUpdate)
// since it last started.
func (e *Env) waitMetalLBConverged(ctx context.Context, timeout time.Duration) error {
	nodes := e.Lab.Nodes()
	var pending string
	err := framework.WaitFor(ctx, timeout, 100*time.Millisecond, func(context.Context) (bool, error) {
		for _, n := range nodes {
			p := e.Speaker(n.Name)
			if p == nil {
				pending = n.Name + " has no speaker"
				return false, nil
			}
			if p.Exited() {
				return false, fmt.Errorf("MetalLB speaker on %s exited:\n%s", n.Name, p.LogTail(30))
			}
			members, arp, err := metallbSpeakerView(p)
			if err != nil {
				return false, err
			}
			if !arp {
				pending = n.Name + " has no ARP responder on " + netlab.Iface + " yet"
				return false, nil
			}
			for _, m := range nodes {
				if !members[m.Name] {
					pending = fmt.Sprintf("%s does not see %s (members %v)", n.Name, m.Name, slices.Sorted(mapKeys(members)))
					return false, nil
				}
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("MetalLB speakers not converged (%s): %w", pending, err)
	}
	return nil
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k, ok := range m {
			if ok && !yield(k) {
				return
			}
		}
	}
}

// metallbSpeakerView reads a speaker's log since its last start: the
// memberlist members it has seen join and not leave, and whether it created
// its ARP responder on the lab interface.
func metallbSpeakerView(p *framework.Process) (members map[string]bool, arp bool, err error) {
	data, err := os.ReadFile(p.LogPath)
	if err != nil {
		return nil, false, err
	}
	// framework.Process marks each start: "=== <time> starting <name>: …".
	if i := bytes.LastIndex(data, []byte(" starting "+p.Name+": ")); i >= 0 {
		data = data[i:]
	}
	members = map[string]bool{}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var entry map[string]any
		if json.Unmarshal(line, &entry) != nil {
			continue
		}
		switch {
		case entry["event"] == "createARPResponder" && entry["interface"] == netlab.Iface:
			arp = true
		case entry["event"] == "deleteARPResponder" && entry["interface"] == netlab.Iface:
			arp = false
		}
		name, _ := entry["node name"].(string)
		switch entry["node event"] {
		case "NodeJoin", "NodeUpdate":
			members[name] = true
		case "NodeLeave":
			delete(members, name)
		}
	}
	return members, arp, nil
}
