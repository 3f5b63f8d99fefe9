package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/netlab"
	"github.com/ironlb/ironlb/test/nodelab"
	"github.com/ironlb/ironlb/test/routers"
)

// demoConfig has one pool per mode the speaker implements. The layer2 VIPs
// lie outside the lab's LAN subnet, so that pool names its interface; the
// vip pool is on the LAN subnet, so its owner puts the address on eth0; the
// bgp pool is announced by every node to FRR on r1 (AS 64512), which
// spreads traffic over them with ECMP.
const demoConfig = `# ironlb demo: one pool per mode
pools:
- name: lan-l2
  addresses: [203.0.113.10-203.0.113.49, "2001:db8:200::10-2001:db8:200::49"]
  mode: layer2
  interfaces: [eth0]
- name: lan-vip
  addresses: [198.51.100.50-198.51.100.59]
  mode: vip
  autoAssign: false
- name: lan-bgp
  addresses: [` + demoBGPRange + `, "2001:db8:200::100-2001:db8:200::1ff"]
  mode: bgp
  autoAssign: false
bgp:
  localASN: 64515
  peers:                        # r1; a node that goes silent is dropped after 9 s
  - {name: r1, address: 198.51.100.1, asn: 64512, holdTime: 9s}
  - {name: r1-v6, address: "2001:db8:100::1", asn: 64512, holdTime: 9s}
  advertisements:
  - pools: [lan-bgp]
    communities: ["64512:100"]
`

// The demo's BGP: its pool's IPv4 range (which the client reaches through
// r1), and the ASes of r1 and of the nodes.
const (
	demoBGPRange = "203.0.113.128/26"
	demoRouterAS = 64512
	demoNodeAS   = 64515
)

// frrVtyFile, in the lab's directory, names FRR's vty socket directory for
// the up command, which prints how to reach it.
const frrVtyFile = "frr-vty-dir"

// demoServices are created once ironlb runs.
var demoServices = []*v1.Service{
	demoService("web", nil),
	demoService("shop", nil),
	demoService("api", nil),
	demoService("web-v6", func(s *v1.Service) {
		s.Spec.IPFamilies, s.Spec.IPFamilyPolicy = []v1.IPFamily{v1.IPv6Protocol}, ptr.To(v1.IPFamilyPolicySingleStack)
	}),
	demoService("intranet", func(s *v1.Service) { s.Annotations[config.AnnotationPool] = "lan-vip" }),
	demoService("routed", func(s *v1.Service) { s.Annotations[config.AnnotationPool] = "lan-bgp" }),
}

// demoApp is the Deployment every demo service selects: the echo app, one
// pod per node, answering with its pod and node names.
const demoApp = "hello"

func demoService(name string, adjust func(*v1.Service)) *v1.Service {
	s := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Annotations: map[string]string{}},
		Spec: v1.ServiceSpec{
			Type:     v1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": demoApp},
			Ports: []v1.ServicePort{{Name: "http", Protocol: v1.ProtocolTCP, Port: demoPort,
				TargetPort: intstr.FromInt32(nodelab.EchoPort)}},
		},
	}
	if adjust != nil {
		adjust(s)
	}
	return s
}

// demoPort is where the demo services listen.
const demoPort = 80

// demo is ironlb installed on the lab's real nodes.
type demo struct {
	cluster *nodelab.Cluster
	frr     *routers.FRR
}

// Close stops the nodes (pods included) and FRR.
func (d *demo) Close() {
	if d.cluster != nil {
		d.cluster.Close()
	}
	if d.frr != nil {
		_ = d.frr.Close()
	}
}

// startDemo makes the lab's nodes real Kubernetes nodes (containerd,
// kubelet, kube-proxy), installs ironlb on them as a user would (kubectl
// apply -k manifests/kubeadm, the images loaded from archives), starts FRR
// on the first router peering with every node, and creates the demo app
// and services.
func startDemo(ctx context.Context, lab *netlab.Lab, cp *framework.ControlPlane, logf func(string, ...any)) (_ *demo, err error) {
	rs := lab.Routers()
	if len(rs) == 0 {
		return nil, errors.New("the demo's bgp pool needs a router: run with -routers r1 (the default)")
	}
	r1, client := rs[0], lab.Client()
	if client == nil {
		return nil, errors.New("the demo needs the client: run with -client (the default)")
	}
	// The client is on the LAN with on-link routes for the VIP ranges, as a
	// neighbour of a layer2 load balancer is; the bgp range it reaches as
	// any host behind a router does, through r1. r1 must then forward rather
	// than send the client an ICMP redirect to whichever node its ECMP route
	// picked, which the client would follow from then on, bypassing r1. And
	// r1 hashes flows over its ECMP paths by ports too (Linux's default is
	// by addresses only), so repeated requests from the client spread over
	// the nodes. These sysctls are r1's own (per namespace).
	for _, c := range []struct {
		host *netlab.Host
		cmd  []string
	}{
		{client, []string{"ip", "route", "replace", netlab.VIPv4.String(), "dev", netlab.Iface}},
		{client, []string{"ip", "-6", "route", "replace", netlab.VIPv6.String(), "dev", netlab.Iface}},
		{client, []string{"ip", "route", "replace", demoBGPRange, "via", r1.IPv4.String()}},
		{r1, []string{"sysctl", "-q", "-w", "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf." + r1.Iface + ".send_redirects=0",
			"net.ipv4.fib_multipath_hash_policy=1"}},
	} {
		if _, err := c.host.Exec(ctx, c.cmd[0], c.cmd[1:]...); err != nil {
			return nil, err
		}
	}
	d := &demo{}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	logf("demo: starting FRR on %s", r1.Name)
	if d.frr, err = routers.StartFRR(ctx, r1, routers.FRROptions{BGPD: routers.FRRNodesConfig(r1, demoRouterAS, demoNodeAS, lab.Nodes(), "")}); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(lab.Dir, frrVtyFile), []byte(d.frr.VtyDir()+"\n"), 0o644); err != nil {
		return nil, err
	}
	archives, err := nodelab.IronLBArchives(filepath.Join(lab.Dir, "images"))
	if err != nil {
		return nil, err
	}
	if d.cluster, err = nodelab.Start(ctx, nodelab.Options{Lab: lab, ControlPlane: cp, Archives: archives, Logf: logf}); err != nil {
		return nil, err
	}
	root, err := framework.RepoRoot()
	if err != nil {
		return nil, err
	}
	logf("demo: kubectl apply -k manifests/kubeadm")
	if out, err := d.cluster.Kubectl(ctx, "", "apply", "--server-side", "-k", filepath.Join(root, "manifests", "kubeadm")); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, out)
	}
	if _, err := d.cluster.WaitIronLBInstalled(ctx, 3*time.Minute); err != nil {
		return nil, err
	}
	if err := framework.ApplyConfig(ctx, cp.Client, demoConfig); err != nil {
		return nil, err
	}
	app := nodelab.EchoDeployment("default", demoApp, int32(len(lab.Nodes())))
	app.Spec.Template.Spec.TopologySpreadConstraints = []v1.TopologySpreadConstraint{{
		MaxSkew: 1, TopologyKey: v1.LabelHostname, WhenUnsatisfiable: v1.ScheduleAnyway, LabelSelector: app.Spec.Selector,
	}}
	if _, err := cp.Client.AppsV1().Deployments("default").Create(ctx, app, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	for _, svc := range demoServices {
		if _, err := cp.Client.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// demoRow is one line of the demo table.
type demoRow struct {
	service, ip, pool, mode, announcer, answer string
	// ready is set once the row shows the steady state: an address that
	// answers and, for bgp, every node announcing it.
	ready bool
}

// demoVantage is where the demo asks the services from: the client's
// namespace, and the router through which it reaches bgp addresses.
type demoVantage struct {
	clientNetns, router string
}

// printDemo waits (bounded) until every LoadBalancer service has an address
// that answers from the client, then prints what a person wants to see.
func printDemo(ctx context.Context, w io.Writer, client kubernetes.Interface, dyn dynamic.Interface, from demoVantage) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var rows []demoRow
	err := framework.WaitFor(ctx, 90*time.Second, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
		var err error
		rows, err = demoRows(ctx, client, dyn, from)
		if err != nil {
			return false, nil
		}
		for _, r := range rows {
			if !r.ready {
				return false, nil
			}
		}
		return len(rows) > 0, nil
	})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tEXTERNAL-IP\tPOOL\tMODE\tANNOUNCED BY\tHTTP FROM THE CLIENT")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.service, dash(r.ip), dash(r.pool), dash(r.mode), dash(r.announcer), dash(r.answer))
	}
	_ = tw.Flush()
	return err
}

func demoRows(ctx context.Context, client kubernetes.Interface, dyn dynamic.Interface, from demoVantage) ([]demoRow, error) {
	cm, err := client.CoreV1().ConfigMaps(config.DefaultNamespace).Get(ctx, config.DefaultConfigMapName, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	cfg, errs := config.Parse([]byte(cm.Data[config.ConfigMapKey]))
	if len(errs) > 0 {
		return nil, errs.ToAggregate()
	}
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	list, err := client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var rows []demoRow
	for _, svc := range list.Items {
		if svc.Spec.Type != v1.ServiceTypeLoadBalancer {
			continue
		}
		row := demoRow{service: svc.Namespace + "/" + svc.Name, pool: svc.Annotations[config.AnnotationAllocatedFrom]}
		if p := cfg.Pool(row.pool); p != nil {
			row.mode = string(p.Mode)
		}
		if ips := framework.IngressIPs(&svc); len(ips) > 0 {
			row.ip = ips[0]
			row.answer = httpFrom(ctx, from.clientNetns, ips[0])
			row.ready = strings.HasPrefix(row.answer, "pod ")
			if row.mode == string(config.ModeBGP) {
				// Every eligible node announces; the router spreads the
				// traffic over them.
				announcers := bgpAdvertisers(ctx, dyn, row.pool, ips[0])
				row.announcer = strings.Join(announcers, ",")
				row.ready = row.ready && len(announcers) == len(nodes.Items)
				if row.ready && from.router != "" {
					row.answer += " (via " + from.router + ")"
				}
			} else {
				row.announcer = latestAnnouncer(ctx, client, &svc, ips[0])
			}
		}
		rows = append(rows, row)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].service < rows[j].service })
	return rows, nil
}

// announcingEvents lists the Announcing events about ip on svc.
func announcingEvents(ctx context.Context, client kubernetes.Interface, svc *v1.Service, ip string) []v1.Event {
	events, err := client.CoreV1().Events(svc.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.name=" + svc.Name + ",reason=Announcing"})
	if err != nil {
		return nil
	}
	var out []v1.Event
	for _, e := range events.Items {
		// "n2 announces 203.0.113.10 on eth0 (layer2)"
		if strings.Contains(e.Message, " announces "+ip+" ") {
			out = append(out, e)
		}
	}
	return out
}

// latestAnnouncer names the node of the newest Announcing event for ip: in
// layer2 and vip mode, the one owner.
func latestAnnouncer(ctx context.Context, client kubernetes.Interface, svc *v1.Service, ip string) string {
	var latest *v1.Event
	events := announcingEvents(ctx, client, svc, ip)
	for i := range events {
		if e := &events[i]; latest == nil || e.LastTimestamp.After(latest.LastTimestamp.Time) {
			latest = e
		}
	}
	if latest == nil {
		return ""
	}
	return strings.Fields(latest.Message)[0]
}

// bgpAdvertisers names, sorted, the nodes whose running speaker advertises
// ip of pool: those naming the pool in their SpeakerStatus (a Cluster
// Service's address is not listed one by one) or listing ip.
func bgpAdvertisers(ctx context.Context, dyn dynamic.Interface, pool, ip string) []string {
	list, err := dyn.Resource(v1alpha1.SpeakerStatusResource).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil
	}
	var names []string
	for i := range list.Items {
		s, err := v1alpha1.FromUnstructured(&list.Items[i])
		if err != nil || s.Status.State != v1alpha1.SpeakerRunning {
			continue
		}
		if slices.ContainsFunc(s.Status.BGPPools, func(p v1alpha1.BGPPool) bool { return p.Pool == pool }) ||
			slices.ContainsFunc(s.Status.Announcements, func(a v1alpha1.Announcement) bool { return a.IP == ip }) {
			names = append(names, s.Name)
		}
	}
	slices.Sort(names)
	return names
}

// httpFrom asks the VIP from the client's namespace.
func httpFrom(ctx context.Context, netns, ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	body, err := framework.HTTPGetFrom(ctx, netns, fmt.Sprintf("http://%s/", netip.AddrPortFrom(addr, demoPort)))
	if err != nil {
		return "no answer"
	}
	e, ok := nodelab.ParseEcho(body)
	if !ok {
		return strings.TrimSpace(body)
	}
	return fmt.Sprintf("pod %s on %s", e.Pod, e.Node)
}

// printDemoFromState prints the demo table of a running lab, and how to ask
// r1's FRR what it learned.
func printDemoFromState(w io.Writer, dir string) error {
	st, err := readState(dir)
	if err != nil {
		return err
	}
	cfg, err := labConfig(st)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	from := demoVantage{clientNetns: st.ID + "-cl"}
	for _, h := range st.Hosts {
		if h.Role == string(netlab.RoleRouter) {
			from.router = h.Name
			break
		}
	}
	fmt.Fprintln(w, "\nironlb is installed on the lab's nodes; waiting for every service to answer from the client...")
	if err := printDemo(context.Background(), w, client, dyn, from); err != nil {
		return err
	}
	if err := printPluginStatus(w, st); err != nil {
		return err
	}
	if err := printPods(w, st); err != nil {
		return err
	}
	if vty, err := os.ReadFile(filepath.Join(dir, frrVtyFile)); err == nil {
		fmt.Fprintf(w, "\n%s runs FRR (AS %d; the nodes are AS %d). What it learned:\n  vtysh --vty_socket %s -c 'show bgp summary' -c 'show ip bgp'\n",
			from.router, demoRouterAS, demoNodeAS, strings.TrimSpace(string(vty)))
	}
	return nil
}

// printPluginStatus runs `kubectl ironlb status` from the client, as an
// operator on the LAN would, and says how to run it by hand.
func printPluginStatus(w io.Writer, st *state) error {
	binDir, err := framework.IronLBBinaries()
	if err != nil {
		return err
	}
	clientNetns := st.ID + "-cl"
	cmd := exec.Command("ip", "netns", "exec", clientNetns, "kubectl", "ironlb", "status", "--kubeconfig", st.Kubeconfig)
	// kubectl finds plugins on PATH.
	cmd.Env = append(os.Environ(), "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("kubectl ironlb status: %v\n%s", err, out)
	}
	fmt.Fprintf(w, "\n$ kubectl ironlb status\n%s", out)
	fmt.Fprintf(w, "\nRun it again (or kubectl get speakerstatuses) with:\n  PATH=%s:$PATH ip netns exec %s kubectl ironlb status --kubeconfig %s\n",
		binDir, clientNetns, st.Kubeconfig)
	return nil
}

// printPods shows the pods on the nodes, as `kubectl get pods -A` does, and
// how to run kubectl by hand.
func printPods(w io.Writer, st *state) error {
	cpNetns := st.ID + "-cp"
	out, err := exec.Command("ip", "netns", "exec", cpNetns, "kubectl", "--kubeconfig", st.Kubeconfig, "get", "pods", "-A", "-o", "wide").CombinedOutput()
	if err != nil {
		return fmt.Errorf("kubectl get pods: %v\n%s", err, out)
	}
	fmt.Fprintf(w, "\n$ kubectl get pods -A -o wide\n%s", out)
	fmt.Fprintf(w, "\nEach node runs containerd, kubelet and kube-proxy; kubectl from the control plane host:\n  ip netns exec %s kubectl --kubeconfig %s get nodes -o wide\n", cpNetns, st.Kubeconfig)
	return nil
}
