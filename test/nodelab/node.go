package nodelab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/netlab"
)

// Node is one real node: a lab host running containerd, kubelet and
// kube-proxy in a mount and UTS namespace of its own.
type Node struct {
	// Name is the Node object's name and the host's (n1, n2, …).
	Name string
	Host *netlab.Host
	// PodSubnets are where its pods get their addresses: IPv4, then IPv6
	// on a dual-stack cluster.
	PodSubnets []netip.Prefix

	c          *Cluster
	paths      nodePaths
	cgroupRoot string

	mu                                     sync.Mutex
	holder, containerd, kubelet, kubeProxy *framework.Process
}

func (c *Cluster) newNode(h *netlab.Host, k int) (*Node, error) {
	subnets, err := c.podSubnets(k)
	if err != nil {
		return nil, err
	}
	n := &Node{Name: h.Name, Host: h, PodSubnets: subnets, c: c,
		paths: nodePaths{dir: filepath.Join(c.dir, h.Name)}, cgroupRoot: cgroupRoot(h.Netns)}
	for _, d := range []string{"run", "cni/net.d", "cni/ipam", "containerd", "runc", "kubelet", "kubelet-pki", "pod-logs"} {
		if err := os.MkdirAll(n.paths.file(d), 0o755); err != nil {
			return nil, err
		}
	}
	cni, err := cniConfig(c.network, subnets, n.paths.file("cni", "ipam"))
	if err != nil {
		return nil, err
	}
	kubelet, err := kubeletConfig(n.paths, h.IPv4, n.cgroupRoot, c.ControlPlane.CAFile())
	if err != nil {
		return nil, err
	}
	proxy, err := proxyConfig(n.paths, h.Name, c.opts.ProxyMode, c.opts.StrictARP, c.DualStack())
	if err != nil {
		return nil, err
	}
	for file, data := range map[string][]byte{
		n.paths.containerdConfig():                             []byte(containerdConfig(n.paths, PauseImage)),
		filepath.Join(n.paths.cniConfDir(), "10-lab.conflist"): cni,
		n.paths.kubeletConfig():                                kubelet,
		n.paths.proxyConfig():                                  proxy,
	} {
		if err := os.WriteFile(file, data, 0o644); err != nil {
			return nil, err
		}
	}
	// The identities kubeadm gives a node's kubelet and kube-proxy.
	if err := c.ControlPlane.WriteUserKubeconfig(n.paths.kubeletKubeconfig(), "system:node:"+h.Name, "system:nodes"); err != nil {
		return nil, err
	}
	if err := c.ControlPlane.WriteUserKubeconfig(n.paths.proxyKubeconfig(), "system:kube-proxy"); err != nil {
		return nil, err
	}
	return n, nil
}

// Start boots the node: its namespaces, containerd with the images, then
// kubelet and kube-proxy. After Kill it starts the node again on the same
// folders, as a rebooted machine would.
func (n *Node) Start(ctx context.Context) error {
	begin := time.Now()
	if err := createCgroupRoot(n.cgroupRoot); err != nil {
		return fmt.Errorf("nodelab: %s: %w", n.Name, err)
	}
	if err := n.startHolder(ctx); err != nil {
		return err
	}
	containerd, err := n.start("containerd", "containerd", "--config", n.paths.containerdConfig())
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.containerd = containerd
	n.mu.Unlock()
	if err := n.importImages(ctx); err != nil {
		return err
	}
	bins := n.c.opts.Binaries
	kubelet, err := n.start("kubelet", bins.Kubelet,
		"--config="+n.paths.kubeletConfig(),
		"--kubeconfig="+n.paths.kubeletKubeconfig(),
		"--root-dir="+n.paths.file("kubelet"),
		"--cert-dir="+n.paths.file("kubelet-pki"),
		"--node-ip="+n.nodeIPs(),
		"--hostname-override="+n.Name,
		"--cloud-provider=external",
		"--v=1",
	)
	if err != nil {
		return err
	}
	proxy, err := n.start("kube-proxy", bins.KubeProxy, "--config="+n.paths.proxyConfig(), "--v=1")
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.kubelet, n.kubeProxy = kubelet, proxy
	n.mu.Unlock()
	n.c.logf("nodelab: %s: containerd, kubelet and kube-proxy started (%s)", n.Name, time.Since(begin).Round(time.Millisecond))
	return nil
}

// startHolder starts the process that holds the node's mount and UTS
// namespaces; every other process of the node joins them. `ip netns exec`
// is not used: it remounts /sys, which hides the cgroup hierarchies, and it
// would give each process a mount namespace of its own.
func (n *Node) startHolder(ctx context.Context) error {
	holder, err := framework.StartProcessWith(n.c.procCtx, framework.ProcessOptions{
		Name:    n.Name + "/namespaces",
		LogPath: n.logPath("namespaces"),
	}, "nsenter", "--net=/run/netns/"+n.Host.Netns, "--",
		"unshare", "--mount", "--uts", "--propagation", "slave", "--",
		"sh", "-c", "hostname "+n.Name+" && exec sleep infinity")
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.holder = holder
	n.mu.Unlock()
	self, _ := os.Readlink("/proc/self/ns/mnt")
	err = framework.WaitFor(ctx, 10*time.Second, 10*time.Millisecond, func(context.Context) (bool, error) {
		if holder.Exited() {
			return false, fmt.Errorf("exited: %s", holder.LogTail(5))
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", holder.Pid()))
		mnt, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", holder.Pid()))
		return strings.TrimSpace(string(comm)) == "sleep" && mnt != "" && mnt != self, nil
	})
	if err != nil {
		return fmt.Errorf("nodelab: %s: namespaces: %w", n.Name, err)
	}
	return nil
}

// start runs a program inside the node's namespaces.
func (n *Node) start(name, cmd string, args ...string) (*framework.Process, error) {
	n.mu.Lock()
	pid := n.holder.Pid()
	n.mu.Unlock()
	return framework.StartProcessWith(n.c.procCtx, framework.ProcessOptions{
		Name:      n.Name + "/" + name,
		LogPath:   n.logPath(name),
		StopGrace: 5 * time.Second,
	}, "nsenter", append([]string{"--target", strconv.Itoa(pid), "--mount", "--uts", "--net", "--", cmd}, args...)...)
}

// nodeIPs is kubelet's --node-ip: IPv4, and IPv6 on a dual-stack cluster.
func (n *Node) nodeIPs() string {
	if n.c.DualStack() {
		return n.Host.IPv4.String() + "," + n.Host.IPv6.String()
	}
	return n.Host.IPv4.String()
}

func (n *Node) logPath(name string) string {
	return filepath.Join(n.c.opts.Lab.Dir, n.Name+"-"+name+".log")
}

// importImages waits for containerd and loads every archive into its k8s.io
// namespace, where the CRI plugin finds images.
func (n *Node) importImages(ctx context.Context) error {
	sock := n.paths.containerdSocket()
	err := framework.WaitFor(ctx, 30*time.Second, 50*time.Millisecond, func(ctx context.Context) (bool, error) {
		if n.containerd.Exited() {
			return false, fmt.Errorf("containerd exited: %s", n.containerd.LogTail(10))
		}
		return exec.CommandContext(ctx, "ctr", "--address", sock, "version").Run() == nil, nil
	})
	if err != nil {
		return fmt.Errorf("nodelab: %s: containerd: %w", n.Name, err)
	}
	for _, a := range n.c.archives {
		out, err := exec.CommandContext(ctx, "ctr", "--address", sock, "--namespace", "k8s.io", "images", "import", a).CombinedOutput()
		if err != nil {
			return fmt.Errorf("nodelab: %s: import %s: %w: %s", n.Name, a, err, out)
		}
	}
	return nil
}

// PowerCut stops the node as a power cut would: its link goes down, and
// every process of it dies (Kill) with no chance to deregister or withdraw
// anything. PowerOn boots it again.
func (n *Node) PowerCut(ctx context.Context) error {
	if err := n.SetLink(ctx, false); err != nil {
		return err
	}
	n.Kill(ctx)
	return nil
}

// PowerOn brings a node back after PowerCut: its link up (with its routes),
// then containerd, kubelet and kube-proxy, which restart its pods.
func (n *Node) PowerOn(ctx context.Context) error {
	if err := n.SetLink(ctx, true); err != nil {
		return err
	}
	return n.Start(ctx)
}

// Kill stops every process of the node, pods included: everything in its
// network namespace and its cgroups is SIGKILLed. Its kernel state stays
// (the namespace, its link, kube-proxy's rules), so the node still
// forwards what reaches it; PowerCut takes the link down too. Start boots
// it again.
func (n *Node) Kill(ctx context.Context) {
	n.mu.Lock()
	procs := []*framework.Process{n.kubelet, n.kubeProxy, n.containerd, n.holder}
	n.kubelet, n.kubeProxy, n.containerd, n.holder = nil, nil, nil, nil
	n.mu.Unlock()
	for _, p := range procs {
		if p != nil {
			_ = p.Kill()
		}
	}
	// Pods and containerd's shims: the shims live in the node's network
	// namespace, the containers in its cgroups (and their own network
	// namespaces, except hostNetwork pods).
	_ = framework.WaitFor(ctx, 10*time.Second, 50*time.Millisecond, func(context.Context) (bool, error) {
		pids := cgroupPids(n.cgroupRoot)
		pids = append(pids, netnsPids(n.Host.Netns)...)
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		return len(pids) == 0, nil
	})
}

// SetLink brings the node's LAN interface down or up (netlab.Host.SetLink):
// the node drops off the network, its processes keep running. Coming up,
// it gets back the cluster routes the kernel removed with the link.
func (n *Node) SetLink(ctx context.Context, up bool) error {
	if err := n.Host.SetLink(ctx, up); err != nil || !up {
		return err
	}
	return n.c.routesFrom(ctx, n.Host)
}

// LogTails returns the last lines of the node's component logs.
func (n *Node) LogTails(lines int) string {
	var b strings.Builder
	for _, name := range []string{"containerd", "kubelet", "kube-proxy"} {
		fmt.Fprintf(&b, "--- %s %s ---\n%s\n", n.Name, name, tail(n.logPath(name), lines))
	}
	return b.String()
}

// ContainerLogs is what the containers named container, of the pods in
// namespace whose names start with podPrefix, wrote on this node, read from
// the kubelet's pod log directory: in the lab the apiserver cannot reach a
// kubelet by its node name, so `kubectl logs` does not work.
func (n *Node) ContainerLogs(namespace, podPrefix, container string) (string, error) {
	files, err := filepath.Glob(filepath.Join(n.paths.file("pod-logs"), namespace+"_"+podPrefix+"*", container, "*.log"))
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		b.Write(data)
	}
	return b.String(), nil
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// netnsPids lists the processes in the named network namespace, except
// this one (whose threads visit lab namespaces).
func netnsPids(netns string) []int {
	target, err := os.Stat("/run/netns/" + netns)
	if err != nil {
		return nil
	}
	targetStat, ok := target.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		fi, err := os.Stat(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Ino == targetStat.Ino && st.Dev == targetStat.Dev {
			pids = append(pids, pid)
		}
	}
	return pids
}

// ComponentPids are the process ids of the node's containerd, kubelet and
// kube-proxy, by name (those running).
func (n *Node) ComponentPids() map[string]int {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[string]int{}
	for name, p := range map[string]*framework.Process{"containerd": n.containerd, "kubelet": n.kubelet, "kube-proxy": n.kubeProxy} {
		if p != nil && !p.Exited() {
			out[name] = p.Pid()
		}
	}
	return out
}

// Pids lists the node's processes named comm (as /proc/<pid>/comm shows
// it, e.g. kubelet or ironlb-speaker) that run in its network namespace:
// its own components and its host-network pods.
func (n *Node) Pids(comm string) []int {
	var out []int
	for _, pid := range netnsPids(n.Host.Netns) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err == nil && strings.TrimSpace(string(b)) == comm {
			out = append(out, pid)
		}
	}
	return out
}
