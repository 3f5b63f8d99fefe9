package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/labenv"
)

// VIPs on the LAN's subnet get an owner that puts them on eth0; VIPs on no
// node subnet go on every node's off-subnet interface (lo on this kernel,
// which has no dummy interfaces).
const vipConfig = `
pools:
- name: onlink
  addresses: [198.51.100.50-198.51.100.59]
  mode: vip
- name: routed
  addresses: [203.0.113.100-203.0.113.110]
  mode: vip
  autoAssign: false
`

// holders lists the nodes whose interface carries vip as a host address.
func holders(t *testing.T, env *labenv.Env, iface string, vip netip.Addr) []string {
	t.Helper()
	var out []string
	for _, n := range env.Lab.Nodes() {
		addrs, err := n.Exec(t.Context(), "ip", "-o", "addr", "show", "dev", iface)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(addrs, " "+vip.String()+"/") {
			out = append(out, n.Name)
		}
	}
	return out
}

func waitHolders(t *testing.T, env *labenv.Env, iface string, vip netip.Addr, want func([]string) bool) []string {
	t.Helper()
	var got []string
	err := framework.WaitFor(t.Context(), takeoverTimeout, 100*time.Millisecond, func(context.Context) (bool, error) {
		got = holders(t, env, iface, vip)
		return want(got), nil
	})
	if err != nil {
		t.Fatalf("%s on %s held by %v: %v", vip, iface, got, err)
	}
	return got
}

func TestVIP(t *testing.T) {
	env := startEnv(t, labenv.Options{Nodes: 3, Config: vipConfig, SpeakerCapabilities: []string{"net_raw", "net_admin"}})
	one := func(h []string) bool { return len(h) == 1 }

	vip := create(t, env, lbService("web"))
	if !netip.MustParsePrefix("198.51.100.50/31").Contains(vip) {
		t.Fatalf("got %s, want 198.51.100.50", vip)
	}
	owner := waitHolders(t, env, "eth0", vip, one)[0]
	if got := waitAnswering(t, env, vip, anyNode); got != owner {
		t.Errorf("HTTP answered by %s, but %s holds the address", got, owner)
	}
	if ev := announcer(t, env, "web", vip); ev != owner {
		t.Errorf("the Event names %s, %s holds the address", ev, owner)
	}

	t.Run("graceful stop moves the address and the client follows", func(t *testing.T) {
		_ = env.Speaker(owner).Signal(syscall.SIGTERM)
		waitExit(t, env.Speaker(owner))
		next := waitHolders(t, env, "eth0", vip, func(h []string) bool { return len(h) == 1 && h[0] != owner })[0]
		if got := waitAnswering(t, env, vip, func(n string) bool { return n == next }); got != next {
			t.Errorf("answered by %s, want %s", got, next)
		}
		restartSpeaker(t, env, owner)
		owner = waitHolders(t, env, "eth0", vip, one)[0]
	})

	t.Run("no address left behind after kill -9 and restart", func(t *testing.T) {
		killed := owner
		_ = env.Speaker(killed).Kill()
		// The killed speaker could not remove its address; another node
		// takes it over meanwhile.
		waitHolders(t, env, "eth0", vip, func(h []string) bool { return len(h) == 2 })
		restartSpeaker(t, env, killed)
		h := waitHolders(t, env, "eth0", vip, one)
		t.Logf("after restarting %s's speaker, %s holds %s", killed, h[0], vip)
	})

	t.Run("off-subnet addresses go on every node's fallback interface", func(t *testing.T) {
		routed := create(t, env, lbService("routed", func(s *v1.Service) { s.Annotations["ironlb.io/pool"] = "routed" }))
		waitHolders(t, env, "lo", routed, func(h []string) bool { return len(h) == 3 })
		if err := env.Client.CoreV1().Services("default").Delete(t.Context(), "routed", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitHolders(t, env, "lo", routed, func(h []string) bool { return len(h) == 0 })
	})

	t.Run("26 addresses on one node, kill -9: it restarts (its meta never overflows) and takes them back", func(t *testing.T) {
		// 26 host addresses would not fit in memberlist's 512-byte meta
		// (198.51.100.127 is the LAN's broadcast address).
		many := vipConfig + `- name: many
  addresses: [198.51.100.101-198.51.100.126]
  mode: vip
  autoAssign: false
  nodeSelector: {matchLabels: {edge: "true"}}
`
		if err := framework.ApplyConfig(t.Context(), env.Client, many); err != nil {
			t.Fatal(err)
		}
		labelNode(t, env, "n1", "true")
		var vips []netip.Addr
		for i := range 26 {
			name := fmt.Sprintf("many-%d", i)
			vips = append(vips, create(t, env, lbService(name, func(s *v1.Service) { s.Annotations["ironlb.io/pool"] = "many" })))
			t.Cleanup(func() {
				_ = env.Client.CoreV1().Services("default").Delete(context.Background(), name, metav1.DeleteOptions{})
			})
		}
		onN1 := func(h []string) bool { return len(h) == 1 && h[0] == "n1" }
		for _, vip := range vips {
			waitHolders(t, env, "eth0", vip, onN1)
		}
		restartSpeaker(t, env, "n1") // kill -9, start, wait until converged
		for _, vip := range vips {
			waitHolders(t, env, "eth0", vip, onN1)
		}
		waitAnswering(t, env, vips[25], func(n string) bool { return n == "n1" })
		labelNode(t, env, "n1", "")
		if err := framework.ApplyConfig(t.Context(), env.Client, vipConfig); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("config deleted: the address stays on its node until released", func(t *testing.T) {
		t.Cleanup(func() {
			if err := framework.ApplyConfig(context.Background(), env.Client, vipConfig); err != nil {
				t.Errorf("restoring the config: %v", err)
			}
		})
		owner := waitHolders(t, env, "eth0", vip, one)[0]
		// Only the owner holds it; probed from its namespace alone, and
		// without t (the probe runs in its own goroutine).
		onOwner := func(ctx context.Context) bool {
			addrs, err := env.Lab.Node(nodeIndex(env, owner)).Exec(ctx, "ip", "-o", "addr", "show", "dev", "eth0")
			return err == nil && strings.Contains(addrs, " "+vip.String()+"/")
		}
		gaps := watchGaps(t, vip, onOwner)
		deleteConfig(t, env)
		gaps.check(t, "ironlb-config deleted: "+vip.String()+" on "+owner, time.Second)
		waitAnswering(t, env, vip, func(n string) bool { return n == owner })
	})
}
