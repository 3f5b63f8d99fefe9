package install

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/netlab"
	"github.com/ironlb/ironlb/test/nodelab"
	"github.com/ironlb/ironlb/test/routers"
)

// The chart's values for TestHelmInstall: a bgp pool announced to FRR on
// r1 by every node, and a vip pool on the LAN's own subnet.
const helmValues = `config:
  pools:
  - name: routed
    mode: bgp
    addresses: [` + bgpRange + `]
  - name: office
    mode: vip
    addresses: [198.51.100.50-198.51.100.59]
    autoAssign: false
  bgp:
    localASN: 64515
    peers:
    - {name: r1, address: 198.51.100.1, asn: 64512, holdTime: 9s}
`

const (
	bgpRange = "203.0.113.128/26"
	routerAS = 64512
	nodeAS   = 64515
)

// TestHelmInstall: `helm install` of charts/ironlb onto three real nodes,
// its pools in the values; a client reaches a real Deployment through a bgp
// address (FRR on r1 holding a route through every node) and through a vip
// address on its owner's interface.
func TestHelmInstall(t *testing.T) {
	c := startCluster(t, netlab.Options{Nodes: 3, Routers: []string{"r1"}})
	ctx := t.Context()
	r1 := c.Lab.Router("r1")
	// The client reaches the bgp range as a host behind a router does, and
	// r1 forwards rather than redirecting the client to a node.
	for _, cmd := range []struct {
		host *netlab.Host
		args []string
	}{
		{c.Lab.Client(), []string{"ip", "route", "replace", bgpRange, "via", r1.IPv4.String()}},
		{r1, []string{"sysctl", "-q", "-w", "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf." + r1.Iface + ".send_redirects=0"}},
	} {
		if _, err := cmd.host.Exec(ctx, cmd.args[0], cmd.args[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	frr, err := routers.StartFRR(ctx, r1, routers.FRROptions{BGPD: routers.FRRNodesConfig(r1, routerAS, nodeAS, c.Lab.Nodes(), "")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("FRR on r1:\n%s", frr.LogTails(30))
		}
		_ = frr.Close()
	})

	helm, err := framework.HelmBinary()
	if err != nil {
		t.Fatal(err)
	}
	root, err := framework.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte(helmValues), 0o644); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	helmCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if out, err := c.Lab.ControlPlane().Exec(helmCtx, helm, "install", "ironlb", filepath.Join(root, "charts", "ironlb"),
		"--kubeconfig", c.ControlPlane.Kubeconfig, "--namespace", "ironlb-system", "--create-namespace", "-f", values); err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	c.waitInstalled(t)
	t.Logf("ironlb installed by helm and Ready %s after helm install", time.Since(begin).Round(time.Millisecond))

	t.Run("bgp", func(t *testing.T) {
		vip := c.createEcho(t, "demo", "routed", 3, v1.ServiceExternalTrafficPolicyCluster)
		if !netip.MustParsePrefix(bgpRange).Contains(vip) {
			t.Fatalf("got %s, want an address of the bgp pool %s", vip, bgpRange)
		}
		var nodes []netip.Addr
		for _, n := range c.Lab.Nodes() {
			nodes = append(nodes, n.IPv4)
		}
		_, took, err := routers.WaitRoute(ctx, frr, netip.PrefixFrom(vip, 32), installTimeout, nodes...)
		if err != nil {
			t.Fatalf("FRR's route to %s: %v", vip, err)
		}
		t.Logf("FRR holds %s through all three nodes (%s after asking)", vip, took.Round(time.Millisecond))
		// Through r1: the client's neighbour is the router, not a node.
		e := c.waitServedVia(t, vip)
		t.Logf("client served by %s through r1", e)
	})
	t.Run("vip", func(t *testing.T) {
		vip := c.createEcho(t, "demo", "office", 2, v1.ServiceExternalTrafficPolicyCluster, func(s *v1.Service) {
			s.Annotations = map[string]string{config.AnnotationPool: "office"}
		})
		e := c.waitServed(t, vip, failoverTimeout, anyAnswer)
		out, err := c.Node(e.Via).Host.Exec(ctx, "ip", "-o", "addr", "show", "dev", netlab.Iface)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, " "+vip.String()+"/") {
			t.Errorf("%s answers for %s but does not hold it on %s:\n%s", e.Via, vip, netlab.Iface, out)
		}
		t.Logf("%s: on %s's %s, served by %s", vip, e.Via, netlab.Iface, e.Pod)
		c.checkStatus(t, "demo", "office", vip, e.Via)
	})
}

// waitServedVia waits until the client is served through vip, which it
// reaches through a router, and returns the pod that answered.
func (c *cluster) waitServedVia(t *testing.T, vip netip.Addr) string {
	t.Helper()
	var pod string
	var last error
	err := framework.WaitFor(t.Context(), failoverTimeout, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		body, err := c.Lab.Client().HTTPGet(ctx, "http://"+netip.AddrPortFrom(vip, 80).String()+"/")
		last = err
		e, ok := nodelab.ParseEcho(body)
		pod = e.Pod
		return err == nil && ok, nil
	})
	if err != nil {
		t.Fatalf("%s: %v (last: %v)\n%s", vip, err, last, c.podLogs())
	}
	return pod
}
