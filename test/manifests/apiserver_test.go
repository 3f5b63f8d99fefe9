package manifests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	cloudproviderapi "k8s.io/cloud-provider/api"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/test/framework"
)

// TestAgainstAPIServer checks the install against a real kube-apiserver
// (authorization-mode Node,RBAC, default admission plugins incl. Pod
// Security). The subtests run in order and build on each other: dry runs
// first, then the kubeadm overlay applied for real, then its RBAC probed and
// ironlb-ccm run under it.
func TestAgainstAPIServer(t *testing.T) {
	cp := framework.NewForTest(t, framework.Options{})
	kc := cp.Kubeconfig
	root := repoRoot(t)

	// A server-side dry run of a namespaced object needs its namespace to
	// exist: create ironlb-system for real first, from the manifest itself.
	kubectl(t, kc, nil, "apply", "-f", filepath.Join(root, "manifests", "base", "namespace.yaml"))

	t.Run("dry-run kubeadm overlay", func(t *testing.T) {
		out := kubectl(t, kc, nil, "apply", "--dry-run=server", "-k", filepath.Join(root, "manifests", "kubeadm"))
		wantApplied(t, out, decode(t, renderOverlay(t, "kubeadm")))
	})
	for _, overlay := range []string{"k3s", "k3s-cloud-node"} {
		t.Run("dry-run "+overlay+" overlay", func(t *testing.T) {
			out := kubectl(t, kc, nil, "apply", "--dry-run=server", "-k", filepath.Join(root, "manifests", overlay))
			wantApplied(t, out, decode(t, renderOverlay(t, overlay)))
		})
	}
	t.Run("dry-run chart defaults", func(t *testing.T) {
		rendered := renderChart(t, namespace)
		out := kubectl(t, kc, rendered, "apply", "--dry-run=server", "-f", "-")
		wantApplied(t, out, decode(t, rendered))
	})
	t.Run("dry-run chart values-all", func(t *testing.T) {
		// Its own namespace, rendered by the chart (namespace.create): apply
		// that for real, the rest as a dry run. The PodMonitors need the
		// Prometheus Operator's CRDs, which this apiserver does not have;
		// their shape is checked instead.
		var rest []*unstructured.Unstructured
		for _, o := range decode(t, renderChart(t, "lb-system", "-f", valuesAll)) {
			switch o.GetKind() {
			case "Namespace":
				kubectl(t, kc, yamlOf(t, o), "apply", "-f", "-")
			case "PodMonitor":
				checkPodMonitor(t, o)
			default:
				rest = append(rest, o)
			}
		}
		out := kubectl(t, kc, yamlOf(t, rest...), "apply", "--dry-run=server", "-f", "-")
		wantApplied(t, out, rest)
	})
	t.Run("dry-run chart values-servicemonitor", func(t *testing.T) {
		// The metrics Services and the dashboard ConfigMap for real (dry
		// run); the ServiceMonitors need the Prometheus Operator's CRDs:
		// their wiring is checked instead.
		objs := decode(t, renderChart(t, namespace, "-f", valuesServiceMonitor))
		var rest []*unstructured.Unstructured
		for _, o := range objs {
			if o.GetKind() == "ServiceMonitor" {
				checkServiceMonitor(t, o, objs, "20s")
				continue
			}
			rest = append(rest, o)
		}
		out := kubectl(t, kc, yamlOf(t, rest...), "apply", "--dry-run=server", "-f", "-")
		wantApplied(t, out, rest)
	})
	t.Run("dry-run grafana kustomization", func(t *testing.T) {
		out := kubectl(t, kc, nil, "apply", "--dry-run=server", "-k", filepath.Join(root, "manifests", "grafana"))
		wantApplied(t, out, decode(t, renderOverlay(t, "grafana")))
	})

	// From here on the kubeadm overlay is installed for real (nothing runs
	// its pods: there is no kubelet or controller-manager).
	kubectl(t, kc, nil, "apply", "-k", filepath.Join(root, "manifests", "kubeadm"))
	t.Run("pod security", func(t *testing.T) { checkPodSecurity(t, cp.Client) })
	t.Run("rbac ironlb-ccm", func(t *testing.T) { checkCanI(t, kc, ccmSA, ccmMust, ccmMustNot) })
	t.Run("rbac ironlb-speaker", func(t *testing.T) { checkCanI(t, kc, speakerSA, speakerMust, speakerMustNot) })
	t.Run("speakers write only their own SpeakerStatus", func(t *testing.T) { checkSpeakerStatusPolicy(t, cp) })
	t.Run("speakers claim the side Lease only for themselves", func(t *testing.T) { checkSideLeasePolicy(t, cp) })
	t.Run("ironlb-ccm runs under its RBAC", func(t *testing.T) { runCCMUnderRBAC(t, cp) })
}

// wantApplied checks that kubectl reported every object.
func wantApplied(t *testing.T, out string, objs []*unstructured.Unstructured) {
	t.Helper()
	lines := strings.Count(strings.TrimSpace(out), "\n") + 1
	if lines != len(objs) {
		t.Errorf("kubectl reported %d objects, %d were sent:\n%s", lines, len(objs), out)
	}
}

func yamlOf(t *testing.T, objs ...*unstructured.Unstructured) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, o := range objs {
		data, err := sigsyaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n")
		b.Write(data)
	}
	return b.Bytes()
}

// checkPodMonitor: a PodMonitor scrapes a port its pods declare.
func checkPodMonitor(t *testing.T, o *unstructured.Unstructured) {
	t.Helper()
	endpoints, _, _ := unstructured.NestedSlice(o.Object, "spec", "podMetricsEndpoints")
	selector, _, _ := unstructured.NestedStringMap(o.Object, "spec", "selector", "matchLabels")
	if len(endpoints) != 1 || selector["app.kubernetes.io/component"] == "" {
		t.Fatalf("%s: want one endpoint and a component selector, got %v / %v", key(o), endpoints, selector)
	}
	port, _, _ := unstructured.NestedString(endpoints[0].(map[string]any), "port")
	want := map[string]string{"ccm": "https", "speaker": "metrics"}[selector["app.kubernetes.io/component"]]
	if port != want {
		t.Errorf("%s scrapes port %q, the pods serve /metrics on %q", key(o), port, want)
	}
}

// checkPodSecurity: the CCM's pod meets the "restricted" Pod Security level;
// the speaker's needs "privileged", which is why ironlb-system is labelled
// so, and is admitted there.
func checkPodSecurity(t *testing.T, client kubernetes.Interface) {
	ctx := t.Context()
	objs := decode(t, renderOverlay(t, "kubeadm"))
	ccm := typed[appsv1.Deployment](t, find(t, objs, "Deployment", namespace, "ironlb-ccm")).Spec.Template.Spec
	speaker := typed[appsv1.DaemonSet](t, find(t, objs, "DaemonSet", namespace, "ironlb-speaker")).Spec.Template.Spec

	for _, level := range []string{"restricted", "baseline"} {
		ns := &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "psa-" + level, Labels: map[string]string{
			"pod-security.kubernetes.io/enforce": level, "pod-security.kubernetes.io/enforce-version": "latest"}}}
		if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		// The ServiceAccount admission plugin wants the pods' accounts to exist.
		for _, sa := range []string{ccm.ServiceAccountName, speaker.ServiceAccountName} {
			acct := &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}
			if _, err := client.CoreV1().ServiceAccounts(ns.Name).Create(ctx, acct, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
		}
	}
	dryRun := func(ns, name string, spec v1.PodSpec) error {
		pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
		_, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	}
	if err := dryRun("psa-restricted", "ccm", ccm); err != nil {
		t.Errorf("ironlb-ccm's pod does not meet the restricted Pod Security level: %v", err)
	}
	if err := dryRun(namespace, "ccm", ccm); err != nil {
		t.Errorf("ironlb-ccm's pod is refused in %s: %v", namespace, err)
	}
	if err := dryRun(namespace, "speaker", speaker); err != nil {
		t.Errorf("ironlb-speaker's pod is refused in %s: %v", namespace, err)
	}
	// The label on ironlb-system is needed: baseline refuses the speaker.
	if err := dryRun("psa-baseline", "speaker", speaker); err == nil || !strings.Contains(err.Error(), "violates PodSecurity") {
		t.Errorf("ironlb-speaker's pod in a baseline namespace: got %v, want a PodSecurity refusal (hostNetwork, NET_ADMIN, NET_RAW)", err)
	}
}

// A can-i probe: kubectl auth can-i arguments (cluster-wide unless they say
// -n), and why the answer must be what it is.
type probe struct{ args, why string }

// What ironlb-ccm must be allowed, each for the call that needs it.
var ccmMust = []probe{
	{"list services", "service controller informer; the provider's seeding LIST"},
	{"watch services", "service controller informer"},
	{"get services -n app", "provider: a service before warning AddressNotInPool"},
	{"patch services --subresource=status -n app", "service controller: finalizer, allocated-from annotation and status.loadBalancer in one patch"},
	{"list nodes", "node informer"},
	{"watch nodes", "node informer"},
	{"get nodes", "cloud-node: label reconcile"},
	{"patch nodes", "cloud-node: label reconcile"},
	{"update nodes", "cloud-node: uninitialized taint removal, providerID"},
	{"patch nodes --subresource=status", "cloud-node: node addresses"},
	{"list namespaces", "provider: namespace informer (namespaceSelector)"},
	{"watch namespaces", "provider: namespace informer"},
	{"create events -n app", "events on services"},
	{"patch events -n default", "events on nodes (repeat counts)"},
	{"create events -n ironlb-system", "events on the ConfigMap and the Lease"},
	{"create leases.coordination.k8s.io -n ironlb-system", "leader election: first acquisition"},
	{"get leases.coordination.k8s.io/ironlb-cloud-controller-manager -n ironlb-system", "leader election"},
	{"update leases.coordination.k8s.io/ironlb-cloud-controller-manager -n ironlb-system", "leader election: renewals"},
	{"list configmaps/ironlb-config -n ironlb-system", "provider: config informer (fieldSelector metadata.name)"},
	{"watch configmaps/ironlb-config -n ironlb-system", "provider: config informer"},
	{"create configmaps -n ironlb-system", "provider: the kept configs, created once"},
	{"get configmaps/ironlb-config-last-good -n ironlb-system", "provider: the kept configs, read on start"},
	{"update configmaps/ironlb-config-last-good -n ironlb-system", "provider: the kept configs"},
	{"get secrets/ironlb-memberlist -n ironlb-system", "provider: does the memberlist key exist"},
	{"create secrets -n ironlb-system", "provider: create the memberlist key"},
	{"create tokenreviews.authentication.k8s.io", "secure port: delegated authentication"},
	{"create subjectaccessreviews.authorization.k8s.io", "secure port: delegated authorization"},
}

// What ironlb-ccm must never be allowed.
var ccmMustNot = []probe{
	{"* *", "no wildcard anything"},
	{"list secrets", "no Secret reads beyond its key"},
	{"list secrets -n ironlb-system", "not even in its namespace"},
	{"watch secrets -n ironlb-system", "not even in its namespace"},
	{"get secrets/bgp-tor-a -n ironlb-system", "only the memberlist key"},
	{"get secrets -n kube-system", "no Secret reads elsewhere"},
	{"update secrets/ironlb-memberlist -n ironlb-system", "an existing key is never touched"},
	{"delete secrets/ironlb-memberlist -n ironlb-system", "an existing key is never touched"},
	{"create services -n app", "it never creates services"},
	{"update services -n app", "it writes services only through the status subresource"},
	{"patch services -n app", "it writes services only through the status subresource"},
	{"delete services -n app", "it never deletes services"},
	{"update services --subresource=status -n app", "patches only"},
	{"create nodes", "it never registers nodes"},
	{"delete nodes", "cloud-node-lifecycle is not run"},
	{"update nodes --subresource=status", "patches only"},
	{"get namespaces", "informer only"},
	{"list configmaps -n ironlb-system", "only ironlb-config"},
	{"get configmaps/ironlb-config -n ironlb-system", "informer only"},
	{"update configmaps/ironlb-config -n ironlb-system", "the pools are the operator's"},
	{"delete configmaps/ironlb-config-last-good -n ironlb-system", "the kept configs are only ever rewritten"},
	{"get configmaps -n kube-system", "no kube-system reads (client-CA lookup is skipped)"},
	{"get leases.coordination.k8s.io/kube-controller-manager -n kube-system", "only its own lease"},
	{"update leases.coordination.k8s.io/other -n ironlb-system", "only its own lease"},
	{"delete leases.coordination.k8s.io/ironlb-cloud-controller-manager -n ironlb-system", "never deletes its lease"},
	{"update events -n app", "the recorder creates and patches"},
	{"create pods -n ironlb-system", "no workloads"},
	{"create pods --subresource=exec -n ironlb-system", "no exec"},
	{"list pods", "no pod reads"},
	{"create serviceaccounts --subresource=token -n ironlb-system", "no tokens"},
	{"escalate clusterroles", "no RBAC escalation"},
	{"bind clusterroles", "no RBAC escalation"},
	{"create clusterrolebindings", "no RBAC changes"},
	{"impersonate users", "no impersonation"},
	{"impersonate serviceaccounts -n ironlb-system", "no impersonation"},
}

// What ironlb-speaker must be allowed.
var speakerMust = []probe{
	{"list services", "service informer"},
	{"watch services", "service informer"},
	{"list endpointslices.discovery.k8s.io", "endpointslice informer (externalTrafficPolicy: Local)"},
	{"watch endpointslices.discovery.k8s.io", "endpointslice informer"},
	{"list nodes", "node informer"},
	{"watch nodes", "node informer"},
	{"get nodes", "this node's InternalIP at start"},
	{"create events -n app", "Announcing on services"},
	{"patch events -n default", "StrictARPDisabled on nodes (repeat counts)"},
	{"list configmaps/ironlb-config -n ironlb-system", "config informer (fieldSelector metadata.name)"},
	{"watch configmaps/ironlb-config -n ironlb-system", "config informer"},
	{"list configmaps/ironlb-config-last-good -n ironlb-system", "kept configs informer (fieldSelector metadata.name)"},
	{"watch configmaps/ironlb-config-last-good -n ironlb-system", "kept configs informer"},
	{"get secrets/bgp-tor-a -n ironlb-system", "BGP peer passwords (passwordSecretRef)"},
	{"get configmaps/kube-proxy -n kube-system", "IPVS strictARP check"},
	{"create speakerstatuses.ironlb.io", "its node's SpeakerStatus, first write"},
	{"update speakerstatuses.ironlb.io/n1", "its node's SpeakerStatus; departed nodes' marked Unreachable"},
	{"watch speakerstatuses.ironlb.io", "informer on its own SpeakerStatus"},
	{"patch speakerstatuses.ironlb.io/n1", "its node's SpeakerStatus, only what changed"},
	{"create leases.coordination.k8s.io -n ironlb-system", "the side Lease, first claim (the admission policy pins the name)"},
	{"get leases.coordination.k8s.io/ironlb-speaker-side -n ironlb-system", "the side Lease"},
	{"update leases.coordination.k8s.io/ironlb-speaker-side -n ironlb-system", "the side Lease: renewals and take-overs"},
}

// What ironlb-speaker must never be allowed.
var speakerMustNot = []probe{
	{"* *", "no wildcard anything"},
	{"list secrets -n ironlb-system", "get by name only"},
	{"watch secrets -n ironlb-system", "get by name only"},
	{"list secrets", "no Secret reads elsewhere"},
	{"get secrets -n kube-system", "no Secret reads elsewhere"},
	{"get secrets -n default", "no Secret reads elsewhere"},
	{"create secrets -n ironlb-system", "read-only"},
	{"update secrets/ironlb-memberlist -n ironlb-system", "read-only"},
	{"get services -n app", "informer only"},
	{"patch services -n app", "never writes services"},
	{"patch services --subresource=status -n app", "the CCM writes the status"},
	{"patch nodes", "never writes nodes"},
	{"update nodes", "never writes nodes"},
	{"delete nodes", "never deletes nodes"},
	{"patch nodes --subresource=status", "never writes nodes"},
	{"get configmaps/coredns -n kube-system", "only kube-proxy's ConfigMap"},
	{"list configmaps -n kube-system", "only kube-proxy's ConfigMap"},
	{"list configmaps -n ironlb-system", "only ironlb-config"},
	{"update configmaps/ironlb-config -n ironlb-system", "the pools are the operator's"},
	{"update configmaps/ironlb-config-last-good -n ironlb-system", "the kept configs are ironlb-ccm's"},
	{"update leases.coordination.k8s.io/ironlb-cloud-controller-manager -n ironlb-system", "the CCM's leader lease"},
	{"get leases.coordination.k8s.io/ironlb-cloud-controller-manager -n ironlb-system", "the side Lease only"},
	{"create leases.coordination.k8s.io -n kube-system", "the side Lease only, in its namespace"},
	{"delete leases.coordination.k8s.io/ironlb-speaker-side -n ironlb-system", "never deletes it"},
	{"create pods --subresource=exec -n ironlb-system", "no exec"},
	{"list pods", "no pod reads"},
	{"create tokenreviews.authentication.k8s.io", "no secure port to delegate for"},
	{"create serviceaccounts --subresource=token -n ironlb-system", "no tokens"},
	{"escalate clusterroles", "no RBAC escalation"},
	{"impersonate users", "no impersonation"},
	{"delete speakerstatuses.ironlb.io/n1", "the Node's garbage collection removes them"},
}

// checkCanI asks the apiserver, as user, every probe; must ones must be yes,
// mustNot ones no. kubectl warnings (an unknown resource) fail the probe, so
// a typo cannot pass as "no".
func checkCanI(t *testing.T, kubeconfig, user string, must, mustNot []probe) {
	kubectlBin := kubectlPath(t)
	for _, c := range []struct {
		want   string
		probes []probe
	}{{"yes", must}, {"no", mustNot}} {
		for _, p := range c.probes {
			t.Run(c.want+" "+p.args, func(t *testing.T) {
				t.Parallel()
				args := append([]string{"--kubeconfig=" + kubeconfig, "auth", "can-i", "--as=" + user}, strings.Fields(p.args)...)
				if !slices.Contains(args, "-n") && !slices.Contains(args, "-A") {
					// Cluster-wide: for a cluster-scoped resource kubectl
					// would otherwise warn about the kubeconfig's namespace.
					args = append(args, "-A")
				}
				cmd := exec.Command(kubectlBin, args...)
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				_ = cmd.Run() // exit status 1 means "no"
				got := strings.TrimSpace(stdout.String())
				if stderr.Len() > 0 {
					t.Fatalf("kubectl auth can-i %s: %s", p.args, stderr.String())
				}
				if got != c.want {
					t.Errorf("%s can-i %s: %q, want %q (%s)", user, p.args, got, c.want, p.why)
				}
			})
		}
	}
}

// The pool ironlb-ccm allocates from in runCCMUnderRBAC; its
// namespaceSelector makes the provider use its namespace informer.
const rbacPoolConfig = `
pools:
- name: rbac
  addresses: [203.0.113.210-203.0.113.220]
  namespaceSelector:
    matchLabels: {ironlb-test: allowed}
`

// runCCMUnderRBAC runs the real ironlb-ccm with the install's arguments and
// only the install's RBAC (a client certificate for its ServiceAccount's
// user and groups), through everything it does: lead, create the memberlist
// key, load the config, allocate, annotate, record events, initialize a
// node, warn about an orphaned address, release. Any call the RBAC misses
// shows up as a failure here and as "forbidden" in its log.
func runCCMUnderRBAC(t *testing.T, cp *framework.ControlPlane) {
	ctx := t.Context()
	client := cp.Client
	saKubeconfig := filepath.Join(t.TempDir(), "ironlb-ccm.kubeconfig")
	if err := cp.WriteUserKubeconfig(saKubeconfig, ccmSA, saGroups...); err != nil {
		t.Fatal(err)
	}
	deploy := typed[appsv1.Deployment](t, find(t, decode(t, renderOverlay(t, "kubeadm")), "Deployment", namespace, "ironlb-ccm"))
	args := append(deploy.Spec.Template.Spec.Containers[0].Args, "--kubeconfig="+saKubeconfig, "--allocation-retry-interval=1s")
	ccm, err := cp.StartCCM(ctx, framework.CCMOptions{Name: "ironlb-ccm-rbac", FastLeaderElection: true, Args: args})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = ccm.Stop(5 * time.Second)
		log, _ := os.ReadFile(ccm.LogPath)
		if bytes.Contains(bytes.ToLower(log), []byte("forbidden")) {
			t.Errorf("ironlb-ccm hit RBAC refusals:\n%s", grepLines(log, "forbidden"))
		}
		if t.Failed() {
			t.Logf("ironlb-ccm log tail:\n%s", ccm.LogTail(40))
		}
	})
	waitFor(t, "ironlb-ccm to lead", 30*time.Second, func(context.Context) (bool, error) { return ccm.IsLeader(), nil })

	// The memberlist key, created on first leadership: 32 bytes, hex.
	waitFor(t, "the memberlist key Secret", 30*time.Second, func(ctx context.Context) (bool, error) {
		s, err := client.CoreV1().Secrets(namespace).Get(ctx, "ironlb-memberlist", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if k := s.Data["key"]; len(k) != 64 {
			return false, fmt.Errorf("memberlist key is %d characters, want 64 hex digits", len(k))
		}
		return true, nil
	})

	if err := framework.ApplyConfig(ctx, client, rbacPoolConfig); err != nil {
		t.Fatal(err)
	}
	ns := &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app", Labels: map[string]string{"ironlb-test": "allowed"}}}
	if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "web"},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer,
			Ports: []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}}},
	}
	if _, err := client.CoreV1().Services("app").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ips, err := framework.WaitForIngress(ctx, client, "app", "web", 1, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("app/web got %v under ironlb-ccm's RBAC", ips)
	waitFor(t, "the allocated-from annotation", 15*time.Second, func(ctx context.Context) (bool, error) {
		s, err := client.CoreV1().Services("app").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && s.Annotations[config.AnnotationAllocatedFrom] == "rbac", err
	})
	wantEvent(t, client, "app", "web", "IPAllocated")
	wantEvent(t, client, namespace, config.DefaultConfigMapName, "ConfigApplied")

	// A node registered by a kubelet with --cloud-provider=external.
	node := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "fresh", Labels: map[string]string{v1.LabelHostname: "fresh"},
			Annotations: map[string]string{cloudproviderapi.AnnotationAlphaProvidedIPAddr: "198.51.100.77"}},
		Spec: v1.NodeSpec{Taints: []v1.Taint{{Key: cloudproviderapi.TaintExternalCloudProvider, Value: "true", Effect: v1.TaintEffectNoSchedule}}},
	}
	if _, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node fresh to be initialized", 30*time.Second, func(ctx context.Context) (bool, error) {
		n, err := client.CoreV1().Nodes().Get(ctx, "fresh", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, taint := range n.Spec.Taints {
			if taint.Key == cloudproviderapi.TaintExternalCloudProvider {
				return false, nil
			}
		}
		hasIP := false
		for _, a := range n.Status.Addresses {
			hasIP = hasIP || (a.Type == v1.NodeInternalIP && a.Address == "198.51.100.77")
		}
		return n.Spec.ProviderID == "ironlb://fresh" && hasIP, nil
	})

	// The pool goes away: the service keeps its address and is told so.
	if err := framework.ApplyConfig(ctx, client, "pools: []\n"); err != nil {
		t.Fatal(err)
	}
	wantEvent(t, client, "app", "web", "AddressNotInPool")

	// Deleting the service releases the address and the finalizer.
	if err := client.CoreV1().Services("app").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "app/web to be deleted (finalizer removed)", 30*time.Second, func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().Services("app").Get(ctx, "web", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
}

func wantEvent(t *testing.T, client kubernetes.Interface, ns, name, reason string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("event %s on %s/%s", reason, ns, name), 30*time.Second, func(ctx context.Context) (bool, error) {
		msgs, err := framework.EventMessages(ctx, client, ns, name, reason)
		return len(msgs) > 0, err
	})
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func(context.Context) (bool, error)) {
	t.Helper()
	if err := framework.WaitFor(t.Context(), timeout, 200*time.Millisecond, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// grepLines returns the first lines of data containing s
// (case-insensitive).
func grepLines(data []byte, s string) string {
	const max = 10
	var b strings.Builder
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(strings.ToLower(line), s) {
			if n++; n > max {
				b.WriteString("...\n")
				break
			}
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
