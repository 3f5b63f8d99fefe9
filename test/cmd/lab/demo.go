package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/labenv"
	"github.com/ironlb/ironlb/test/netlab"
)

// demoConfig has one pool per mode the speaker implements. The layer2 VIPs
// lie outside the lab's LAN subnet, so that pool names its interface; the
// vip pool is on the LAN subnet, so its owner puts the address on eth0.
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
`

// demoServices are created once ironlb runs.
var demoServices = []*v1.Service{
	demoService("web", nil),
	demoService("shop", nil),
	demoService("api", nil),
	demoService("web-v6", func(s *v1.Service) {
		s.Spec.IPFamilies, s.Spec.IPFamilyPolicy = []v1.IPFamily{v1.IPv6Protocol}, ptr.To(v1.IPFamilyPolicySingleStack)
	}),
	demoService("intranet", func(s *v1.Service) { s.Annotations[config.AnnotationPool] = "lan-vip" }),
}

func demoService(name string, adjust func(*v1.Service)) *v1.Service {
	s := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Annotations: map[string]string{}},
		Spec: v1.ServiceSpec{
			Type:  v1.ServiceTypeLoadBalancer,
			Ports: []v1.ServicePort{{Name: "http", Protocol: v1.ProtocolTCP, Port: labenv.HTTPPort}},
		},
	}
	if adjust != nil {
		adjust(s)
	}
	return s
}

// startDemo runs ironlb on the lab and creates the demo services.
func startDemo(ctx context.Context, lab *netlab.Lab, cp *framework.ControlPlane, logf func(string, ...any)) (*labenv.Env, error) {
	env, err := labenv.Run(ctx, lab, cp, labenv.Options{Config: demoConfig, Logf: logf,
		SpeakerCapabilities: []string{"net_raw", "net_admin"}})
	if err != nil {
		return nil, err
	}
	for _, svc := range demoServices {
		if _, err := env.Client.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			env.Stop()
			return nil, err
		}
	}
	return env, nil
}

// demoRow is one line of the demo table.
type demoRow struct {
	service, ip, pool, mode, announcer, answer string
}

// printDemo waits (bounded) until every LoadBalancer service has an address
// that answers from the client, then prints what a person wants to see.
func printDemo(ctx context.Context, w io.Writer, client kubernetes.Interface, clientNetns string) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var rows []demoRow
	err := framework.WaitFor(ctx, 90*time.Second, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
		var err error
		rows, err = demoRows(ctx, client, clientNetns)
		if err != nil {
			return false, nil
		}
		for _, r := range rows {
			if r.ip == "" || !strings.HasPrefix(r.answer, "node=") {
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

func demoRows(ctx context.Context, client kubernetes.Interface, clientNetns string) ([]demoRow, error) {
	cm, err := client.CoreV1().ConfigMaps(config.DefaultNamespace).Get(ctx, config.DefaultConfigMapName, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	cfg, errs := config.Parse([]byte(cm.Data[config.ConfigMapKey]))
	if len(errs) > 0 {
		return nil, errs.ToAggregate()
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
			row.announcer = latestAnnouncer(ctx, client, &svc, ips[0])
			row.answer = httpFrom(ctx, clientNetns, ips[0])
		}
		rows = append(rows, row)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].service < rows[j].service })
	return rows, nil
}

// latestAnnouncer names the node of the newest Announcing event for ip.
func latestAnnouncer(ctx context.Context, client kubernetes.Interface, svc *v1.Service, ip string) string {
	events, err := client.CoreV1().Events(svc.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.name=" + svc.Name + ",reason=Announcing"})
	if err != nil {
		return ""
	}
	var latest *v1.Event
	for i := range events.Items {
		e := &events.Items[i]
		if strings.Contains(e.Message, " "+ip+" ") && (latest == nil || e.LastTimestamp.After(latest.LastTimestamp.Time)) {
			latest = e
		}
	}
	if latest == nil {
		return ""
	}
	return strings.Fields(latest.Message)[0]
}

// httpFrom asks the VIP from the client's namespace.
func httpFrom(ctx context.Context, netns, ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	body, err := framework.HTTPGetFrom(ctx, netns, fmt.Sprintf("http://%s/", netip.AddrPortFrom(addr, labenv.HTTPPort)))
	if err != nil {
		return "no answer"
	}
	return strings.TrimSpace(body)
}

// printDemoFromState prints the demo table of a running lab.
func printDemoFromState(w io.Writer, dir string) error {
	st, err := readState(dir)
	if err != nil {
		return err
	}
	client, err := labClient(st)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "\nironlb is running on the lab; waiting for every service to answer from the client...")
	return printDemo(context.Background(), w, client, st.ID+"-cl")
}
