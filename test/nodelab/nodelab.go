package nodelab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/netlab"
)

// DefaultTimeout bounds Start: images, every node's containerd, kubelet and
// kube-proxy, and every Node Ready.
const DefaultTimeout = 3 * time.Minute

// ApiserverArgs are what the lab's kube-apiserver needs for real nodes (pass
// them in netlab.Options.ControlPlane.ExtraApiserverArgs): the
// NodeRestriction admission kubeadm enables, and the kubernetes Service's
// endpoints published, so pods reach the apiserver through its ClusterIP.
var ApiserverArgs = []string{
	"--enable-admission-plugins=NodeRestriction",
	"--endpoint-reconciler-type=lease",
}

// Binaries are the Kubernetes programs a cluster runs.
type Binaries struct {
	Kubelet, KubeProxy, ControllerManager, Scheduler string
}

// DefaultBinaries are the ones hack/ensure-kube.sh builds into the
// repository's .cache/bin for the tools module's Kubernetes version.
func DefaultBinaries() (Binaries, error) {
	var b Binaries
	for name, dst := range map[string]*string{
		"kubelet": &b.Kubelet, "kube-proxy": &b.KubeProxy,
		"kube-controller-manager": &b.ControllerManager, "kube-scheduler": &b.Scheduler,
	} {
		p, err := framework.DefaultKubeBinary(name)
		if err != nil {
			return Binaries{}, err
		}
		*dst = p
	}
	return b, nil
}

// Options configures Start.
type Options struct {
	// Lab provides the hosts: every lab node becomes a Kubernetes node.
	Lab *netlab.Lab
	// ControlPlane is the lab's, started with ApiserverArgs.
	ControlPlane *framework.ControlPlane
	// Archives are docker archives every node's containerd imports, besides
	// the lab's own images (e.g. bin/images/*.tar from `make image`).
	Archives []string
	// ProxyMode is kube-proxy's mode. Default ProxyIPTables.
	ProxyMode ProxyMode
	// StrictARP is kube-proxy's ipvs.strictARP (IPVS mode only).
	StrictARP bool
	// Binaries default to DefaultBinaries().
	Binaries Binaries
	// Dir holds every node's folders and the logs. Default: the lab's Dir.
	Dir string
	// Timeout bounds Start. Default DefaultTimeout.
	Timeout time.Duration
	// Logf receives progress messages. Default: the lab's.
	Logf func(format string, args ...any)
}

// Cluster is a running set of real nodes on a lab; see the package
// documentation.
type Cluster struct {
	Lab          *netlab.Lab
	ControlPlane *framework.ControlPlane
	// ControllerManager and Scheduler run on the control plane host.
	ControllerManager, Scheduler *framework.Process

	opts     Options
	dir      string
	network  string // the CNI network's name, unique per cluster
	archives []string
	nodes    []*Node
	// hostPaths is what existed outside Dir before the start, for Close.
	hostPaths hostPaths
	logf      func(format string, args ...any)

	procCtx   context.Context // lives until Close
	cancel    context.CancelFunc
	closeOnce sync.Once
}

// Start makes every node of opts.Lab a Kubernetes node and returns once
// every Node is Ready. The nodes register as kubeadm's would with an
// external cloud provider: tainted node.cloudprovider.kubernetes.io/
// uninitialized until a cloud-controller-manager initializes them. ctx
// bounds only the start; the cluster lives until Close. On error nothing is
// left running.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	begin := time.Now()
	if opts.Lab == nil || opts.ControlPlane == nil {
		return nil, errors.New("nodelab: Options.Lab and Options.ControlPlane are required")
	}
	if len(opts.Lab.Nodes()) == 0 {
		return nil, errors.New("nodelab: the lab has no nodes")
	}
	if opts.ProxyMode == "" {
		opts.ProxyMode = ProxyIPTables
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Dir == "" {
		opts.Dir = opts.Lab.Dir
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.Binaries == (Binaries{}) {
		if opts.Binaries, err = DefaultBinaries(); err != nil {
			return nil, err
		}
	}
	if err := checkTools(opts.Binaries); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()

	Sweep(ctx, opts.Logf)
	c := &Cluster{
		Lab: opts.Lab, ControlPlane: opts.ControlPlane,
		opts: opts, dir: filepath.Join(opts.Dir, "nodelab"), network: "ironlb-" + opts.Lab.ID,
		logf: opts.Logf,
	}
	c.procCtx, c.cancel = context.WithCancel(context.Background())
	c.hostPaths = snapshotHostPaths()
	defer func() {
		if err != nil {
			c.Close()
		}
	}()

	labArchives, err := buildLabImages(ctx, filepath.Join(c.dir, "images"))
	if err != nil {
		return nil, fmt.Errorf("nodelab: lab images: %w", err)
	}
	c.archives = append(labArchives, opts.Archives...)
	for _, a := range c.archives {
		if _, err := os.Stat(a); err != nil {
			return nil, fmt.Errorf("nodelab: image archive: %w", err)
		}
	}
	c.logf("nodelab: images ready (%s)", time.Since(begin).Round(time.Millisecond))

	if err := c.routeClusterNetworks(ctx); err != nil {
		return nil, err
	}
	if err := c.publishProxyConfig(ctx); err != nil {
		return nil, err
	}
	if err := c.startControllers(ctx); err != nil {
		return nil, err
	}
	for i, h := range opts.Lab.Nodes() {
		n, err := c.newNode(h, i+1)
		if err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, n)
	}
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		wg.Go(func() { errs[i] = n.Start(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := c.WaitNodesReady(ctx, c.NodeNames()...); err != nil {
		return nil, err
	}
	c.logf("nodelab: %d nodes Ready in %s", len(c.nodes), time.Since(begin).Round(time.Millisecond))
	return c, nil
}

// checkTools names what is missing, and how to get it.
func checkTools(b Binaries) error {
	var missing []string
	for _, p := range []string{b.Kubelet, b.KubeProxy, b.ControllerManager, b.Scheduler} {
		if fi, err := os.Stat(p); err != nil || fi.Mode()&0o111 == 0 {
			missing = append(missing, p+" (hack/ensure-kube.sh builds it)")
		}
	}
	for _, tool := range []string{"containerd", "ctr", "runc", "nsenter", "unshare", "iptables-restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool+" (hack/ensure-deps.sh installs it)")
		}
	}
	for _, plugin := range []string{"bridge", "host-local", "loopback", "portmap"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/cni", plugin)); err != nil {
			missing = append(missing, "/usr/lib/cni/"+plugin+" (containernetworking-plugins; hack/ensure-deps.sh installs it)")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("nodelab: missing %s", strings.Join(missing, ", "))
	}
	return nil
}

// routeClusterNetworks gives every node and the control plane host its
// routes to the cluster's networks (routesFrom).
func (c *Cluster) routeClusterNetworks(ctx context.Context) error {
	for _, h := range append(c.Lab.Nodes(), c.Lab.ControlPlane()) {
		if err := c.routesFrom(ctx, h); err != nil {
			return err
		}
	}
	return nil
}

// routesFrom routes every other node's pod subnets from h, a node or the
// control plane host (which the kubernetes Service's endpoint is), and
// gives a node a route to the Service CIDR: the lab's hosts have no default
// route, and without any route a host-network client of a ClusterIP (a
// speaker reaching the apiserver) fails before kube-proxy's rules see its
// packet. A link that goes down loses its routes; Node.SetLink puts them
// back when it comes up, as a node's network configuration would.
func (c *Cluster) routesFrom(ctx context.Context, h *netlab.Host) error {
	nodes := c.Lab.Nodes()
	if h.Role == netlab.RoleNode {
		for _, cidr := range strings.Split(c.ControlPlane.ServiceCIDR, ",") {
			if _, err := h.Exec(ctx, "ip", "route", "replace", strings.TrimSpace(cidr), "dev", h.Iface); err != nil {
				return fmt.Errorf("nodelab: route services from %s: %w", h.Name, err)
			}
		}
	}
	for i, n := range nodes {
		if n == h {
			continue
		}
		subnets, err := c.podSubnets(i + 1)
		if err != nil {
			return err
		}
		for _, s := range subnets {
			via := n.IPv4
			if s.Addr().Is6() {
				via = n.IPv6
			}
			if _, err := h.Exec(ctx, "ip", "route", "replace", s.String(), "via", via.String()); err != nil {
				return fmt.Errorf("nodelab: route pods of %s from %s: %w", n.Name, h.Name, err)
			}
		}
	}
	return nil
}

// DualStack reports whether the cluster runs IPv4 and IPv6: it does when
// the control plane's Service CIDR has an IPv6 range.
func (c *Cluster) DualStack() bool {
	for _, cidr := range strings.Split(c.ControlPlane.ServiceCIDR, ",") {
		if p, err := netip.ParsePrefix(strings.TrimSpace(cidr)); err == nil && p.Addr().Is6() {
			return true
		}
	}
	return false
}

// podSubnets are the pod subnets of the node numbered k: IPv4, then IPv6
// on a dual-stack cluster.
func (c *Cluster) podSubnets(k int) ([]netip.Prefix, error) {
	v4, err := podSubnet(k)
	if err != nil {
		return nil, err
	}
	if !c.DualStack() {
		return []netip.Prefix{v4}, nil
	}
	return []netip.Prefix{v4, podSubnetV6(k)}, nil
}

// publishProxyConfig stores kube-proxy's configuration where kubeadm does,
// in kube-system/kube-proxy (key config.conf), which ironlb's speaker reads
// to warn about IPVS without strictARP.
func (c *Cluster) publishProxyConfig(ctx context.Context) error {
	conf, err := proxyConfig(nodePaths{dir: "/var/lib/kube-proxy"}, "", c.opts.ProxyMode, c.opts.StrictARP, c.DualStack())
	if err != nil {
		return err
	}
	cm := &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: "kube-proxy", Labels: map[string]string{"app": "kube-proxy"}},
		Data:       map[string]string{"config.conf": string(conf)},
	}
	_, err = c.ControlPlane.Client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Create(ctx, cm, metav1.CreateOptions{})
	return err
}

// startControllers runs kube-controller-manager and kube-scheduler on the
// control plane host, each as the user kubeadm gives it.
func (c *Cluster) startControllers(ctx context.Context) error {
	cp := c.ControlPlane
	dir := filepath.Join(c.dir, "controlplane")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	kcmConfig := filepath.Join(dir, "controller-manager.kubeconfig")
	schedConfig := filepath.Join(dir, "scheduler.kubeconfig")
	if err := cp.WriteUserKubeconfig(kcmConfig, "system:kube-controller-manager"); err != nil {
		return err
	}
	if err := cp.WriteUserKubeconfig(schedConfig, "system:kube-scheduler"); err != nil {
		return err
	}
	host := c.Lab.ControlPlane()
	var err error
	c.ControllerManager, err = host.StartProcess(c.procCtx, "kube-controller-manager", c.opts.Binaries.ControllerManager,
		"--kubeconfig="+kcmConfig,
		"--authentication-kubeconfig="+kcmConfig,
		"--authorization-kubeconfig="+kcmConfig,
		"--service-account-private-key-file="+cp.ServiceAccountKeyFile(),
		"--root-ca-file="+cp.CAFile(),
		"--use-service-account-credentials=true",
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		// Node lifecycle as kubeadm has it, but a dead node's pods are
		// evicted sooner than the default 5 minutes would allow a test.
		"--node-monitor-grace-period=20s",
	)
	if err != nil {
		return err
	}
	c.Scheduler, err = host.StartProcess(c.procCtx, "kube-scheduler", c.opts.Binaries.Scheduler,
		"--kubeconfig="+schedConfig,
		"--authentication-kubeconfig="+schedConfig,
		"--authorization-kubeconfig="+schedConfig,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
	)
	return err
}

// Nodes are the cluster's nodes, n1…nN.
func (c *Cluster) Nodes() []*Node { return c.nodes }

// Node returns the node named name, or nil.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// NodeNames are the Node objects' names.
func (c *Cluster) NodeNames() []string {
	names := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		names[i] = n.Name
	}
	return names
}

// WaitNodesReady waits until each named Node reports Ready.
func (c *Cluster) WaitNodesReady(ctx context.Context, names ...string) error {
	var pending string
	err := framework.WaitFor(ctx, c.opts.Timeout, 250*time.Millisecond, func(ctx context.Context) (bool, error) {
		for _, name := range names {
			node, err := c.ControlPlane.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				pending = fmt.Sprintf("node %s: %v", name, err)
				return false, nil
			}
			if !NodeReady(node) {
				pending = fmt.Sprintf("node %s not Ready", name)
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		tails := ""
		for _, n := range c.nodes {
			tails += n.LogTails(15)
		}
		return fmt.Errorf("nodelab: %s: %w\n%s", pending, err, tails)
	}
	return nil
}

// NodeReady reports whether node's Ready condition is True.
func NodeReady(node *v1.Node) bool {
	for _, cond := range node.Status.Conditions {
		if cond.Type == v1.NodeReady {
			return cond.Status == v1.ConditionTrue
		}
	}
	return false
}

// LogTails returns the last n lines of every component's log.
func (c *Cluster) LogTails(n int) string {
	var b strings.Builder
	for _, p := range []*framework.Process{c.ControllerManager, c.Scheduler} {
		if p != nil {
			fmt.Fprintf(&b, "--- %s ---\n%s\n", p.Name, p.LogTail(n))
		}
	}
	for _, node := range c.nodes {
		b.WriteString(node.LogTails(n))
	}
	return b.String()
}

// Close stops every node (pods included) and the controllers, and removes
// what the cluster left outside its Dir: cgroups and the host paths named
// in the package documentation. The lab itself is the caller's to close.
func (c *Cluster) Close() {
	c.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var wg sync.WaitGroup
		for _, n := range c.nodes {
			wg.Go(func() {
				n.Kill(ctx)
				if err := removeCgroupRoot(ctx, n.cgroupRoot); err != nil {
					c.logf("nodelab: %v", err)
				}
			})
		}
		wg.Wait()
		removeCgroupParent()
		c.cancel()
		for _, p := range []*framework.Process{c.Scheduler, c.ControllerManager} {
			if p != nil {
				_ = p.Stop(5 * time.Second)
			}
		}
		c.hostPaths.clean(c.network, c.dir, c.logf)
	})
}
