package nodelab

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// PodCIDR and PodCIDRv6 are the cluster's pod networks: node K gets the
// Kth /24 and, when the cluster is dual-stack, the Kth /64.
var (
	PodCIDR   = netip.MustParsePrefix("198.18.64.0/18")
	PodCIDRv6 = netip.MustParsePrefix("2001:db8:64::/48")
)

// podSubnet returns the IPv4 pod subnet of the node numbered k (1-based).
func podSubnet(k int) (netip.Prefix, error) {
	if k < 1 || k > 1<<(24-PodCIDR.Bits()) {
		return netip.Prefix{}, fmt.Errorf("nodelab: node %d: %s has room for %d nodes", k, PodCIDR, 1<<(24-PodCIDR.Bits()))
	}
	b := PodCIDR.Addr().As4()
	b[2] += byte(k - 1)
	return netip.PrefixFrom(netip.AddrFrom4(b), 24), nil
}

// podSubnetV6 returns the IPv6 pod subnet of the node numbered k (1-based):
// 2001:db8:64:<k>::/64, k in hex.
func podSubnetV6(k int) netip.Prefix {
	b := PodCIDRv6.Addr().As16()
	b[6], b[7] = byte(k>>8), byte(k)
	return netip.PrefixFrom(netip.AddrFrom16(b), 64)
}

// nodePaths are one node's folders and files, all under its own directory.
type nodePaths struct {
	dir string
}

func (p nodePaths) file(elem ...string) string {
	return filepath.Join(append([]string{p.dir}, elem...)...)
}

func (p nodePaths) containerdConfig() string { return p.file("containerd.toml") }
func (p nodePaths) containerdSocket() string { return p.file("run", "containerd.sock") }
func (p nodePaths) cniConfDir() string       { return p.file("cni", "net.d") }
func (p nodePaths) kubeletConfig() string    { return p.file("kubelet.yaml") }
func (p nodePaths) kubeletKubeconfig() string {
	return p.file("kubelet.kubeconfig")
}
func (p nodePaths) proxyConfig() string     { return p.file("kube-proxy.yaml") }
func (p nodePaths) proxyKubeconfig() string { return p.file("kube-proxy.kubeconfig") }

// containerdConfig is containerd 1.6's configuration (version 2) for one
// node: everything under the node's folder, runc driven with cgroupfs, and
// the CRI plugin on the node's own CNI configuration.
func containerdConfig(p nodePaths, sandboxImage string) string {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	return fmt.Sprintf(`version = 2
root = %s
state = %s
oom_score = 0

[grpc]
  address = %s

[plugins."io.containerd.internal.v1.opt"]
  path = %s

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %s
  # This machine kind has no CAP_SYS_RESOURCE: without it every sandbox fails
  # with "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  # Pod network namespaces stay inside the node's folder and mount namespace.
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %s
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %s
`, q(p.file("containerd", "root")), q(p.file("containerd", "state")), q(p.containerdSocket()),
		q(p.file("containerd", "opt")), q(sandboxImage), q(p.file("runc")), q(p.cniConfDir()))
}

// cniConfig is the node's pod network: a bridge with the node's pod subnet,
// the node as the pods' gateway. No masquerading: the other nodes and the
// control plane host route the pod subnets, so a pod's address is seen as
// it is (which externalTrafficPolicy: Local relies on in the other
// direction).
func cniConfig(network string, subnets []netip.Prefix, ipamDir string) ([]byte, error) {
	var ranges, routes []any
	for _, s := range subnets {
		ranges = append(ranges, []any{map[string]any{"subnet": s.String()}})
		def := "0.0.0.0/0"
		if s.Addr().Is6() {
			def = "::/0"
		}
		routes = append(routes, map[string]any{"dst": def})
	}
	conf := map[string]any{
		"cniVersion": "0.4.0",
		"name":       network,
		"plugins": []any{
			map[string]any{
				"type":        "bridge",
				"bridge":      "cni0",
				"isGateway":   true,
				"ipMasq":      false,
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  ranges,
					"routes":  routes,
					"dataDir": ipamDir,
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	return json.MarshalIndent(conf, "", "  ")
}

// kubeletConfig is the node's KubeletConfiguration.
func kubeletConfig(p nodePaths, nodeIP netip.Addr, cgroupRoot, clientCA string) ([]byte, error) {
	conf := map[string]any{
		"apiVersion":               "kubelet.config.k8s.io/v1beta1",
		"kind":                     "KubeletConfiguration",
		"address":                  nodeIP.String(),
		"readOnlyPort":             0,
		"healthzBindAddress":       "127.0.0.1",
		"containerRuntimeEndpoint": "unix://" + p.containerdSocket(),
		"cgroupDriver":             "cgroupfs",
		// Each kubelet deletes the cgroups it does not know, so each gets
		// a root of its own.
		"cgroupRoot": cgroupRoot,
		// This machine kind runs cgroup v1, which kubelet 1.36 refuses
		// unless told (it still warns with a CgroupV1 event).
		"failCgroupV1": false,
		"failSwapOn":   false,
		// Each kubelet deletes pod log folders it does not know.
		"podLogsDir": p.file("pod-logs"),
		"authentication": map[string]any{
			"anonymous": map[string]any{"enabled": false},
			"webhook":   map[string]any{"enabled": true},
			"x509":      map[string]any{"clientCAFile": clientCA},
		},
		"authorization": map[string]any{"mode": "Webhook"},
		// The machine's disk and memory are shared with everything else:
		// evict only when they are really gone, and never collect images
		// (nothing could pull them back).
		"evictionHard": map[string]string{
			"memory.available":  "100Mi",
			"nodefs.available":  "1%",
			"nodefs.inodesFree": "1%",
			"imagefs.available": "1%",
		},
		"imageGCHighThresholdPercent": 100,
		"imageGCLowThresholdPercent":  99,
		"serializeImagePulls":         false,
		"resolvConf":                  "/etc/resolv.conf",
		"maxPods":                     40,
		// Status every 2 s instead of 10 s: the tests watch Ready flip.
		"nodeStatusUpdateFrequency": "2s",
		"syncFrequency":             "10s",
	}
	return yaml.Marshal(conf)
}

// ProxyMode is kube-proxy's mode.
type ProxyMode string

// The modes the lab runs.
const (
	ProxyIPTables ProxyMode = "iptables"
	ProxyIPVS     ProxyMode = "ipvs"
)

// proxyConfig is the node's KubeProxyConfiguration. Conntrack settings are
// zero so that kube-proxy leaves the machine's global sysctls alone.
func proxyConfig(p nodePaths, node string, mode ProxyMode, strictARP, dualStack bool) ([]byte, error) {
	clusterCIDR := PodCIDR.String()
	if dualStack {
		clusterCIDR += "," + PodCIDRv6.String()
	}
	zero := "0s"
	conf := map[string]any{
		"apiVersion":         "kubeproxy.config.k8s.io/v1alpha1",
		"kind":               "KubeProxyConfiguration",
		"clientConnection":   map[string]any{"kubeconfig": p.proxyKubeconfig()},
		"hostnameOverride":   node,
		"clusterCIDR":        clusterCIDR,
		"mode":               string(mode),
		"healthzBindAddress": "127.0.0.1:10256",
		"metricsBindAddress": "127.0.0.1:10249",
		"oomScoreAdj":        0,
		"conntrack": map[string]any{
			"maxPerCore":            0,
			"min":                   0,
			"tcpEstablishedTimeout": zero,
			"tcpCloseWaitTimeout":   zero,
		},
		"ipvs": map[string]any{"strictARP": strictARP},
	}
	return yaml.Marshal(conf)
}
