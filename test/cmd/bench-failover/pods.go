package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/netlab"
	"github.com/ironlb/ironlb/test/nodelab"
)

// The pods mode: ironlb installed from manifests/kubeadm on real nodes
// (test/nodelab), the speakers pods of its DaemonSet, the client served by a
// real Deployment through kube-proxy.

// A fault on a real node, and its repair.
type podFault struct {
	name   string
	inject func(ctx context.Context, c *nodelab.Cluster, node string) error
	repair func(ctx context.Context, c *nodelab.Cluster, node string) error
}

var podFaults = []podFault{
	{"kill -9 (speaker container)",
		func(_ context.Context, c *nodelab.Cluster, node string) error {
			pids := c.Node(node).Pids("ironlb-speaker")
			if len(pids) == 0 {
				return fmt.Errorf("no ironlb-speaker process on %s", node)
			}
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			return nil
		},
		// The kubelet restarts the container, but after a few kills with
		// CrashLoopBackOff's growing delay (up to 5 minutes); a new pod
		// starts without one.
		func(ctx context.Context, c *nodelab.Cluster, node string) error {
			if err := c.ControlPlane.Client.CoreV1().Pods(nodelab.IronLBNamespace).DeleteCollection(ctx, metav1.DeleteOptions{},
				metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=speaker", FieldSelector: "spec.nodeName=" + node}); err != nil {
				return err
			}
			return waitSpeakersConverged(ctx, c, node)
		}},
	{"link down",
		func(ctx context.Context, c *nodelab.Cluster, node string) error {
			return c.Node(node).SetLink(ctx, false)
		},
		func(ctx context.Context, c *nodelab.Cluster, node string) error {
			if err := c.Node(node).SetLink(ctx, true); err != nil {
				return err
			}
			return waitSpeakersConverged(ctx, c, node)
		}},
	{"power cut (link down, every process and pod killed)",
		func(ctx context.Context, c *nodelab.Cluster, node string) error {
			return c.Node(node).PowerCut(ctx)
		},
		func(ctx context.Context, c *nodelab.Cluster, node string) error {
			if err := c.Node(node).PowerOn(ctx); err != nil {
				return err
			}
			if err := c.WaitNodesReady(ctx, node); err != nil {
				return err
			}
			return waitSpeakersConverged(ctx, c, node)
		}},
}

// podsDemoApp is the Deployment every trial's Service selects.
const podsDemoApp = "echo"

// measurePods starts real nodes, installs ironlb on them as a user would,
// runs every pod fault's trials, and reports each node's memory.
func measurePods(ctx context.Context, im impl, trials int) (result, error) {
	r := result{impl: im}
	logf := func(f string, a ...any) { fmt.Printf("  "+f+"\n", a...) }
	fmt.Printf("starting the lab for %s (3 real nodes, control plane)...\n", im.title)
	lab, err := netlab.New(ctx, netlab.Options{Nodes: 3, Client: true, Logf: logf,
		ControlPlane: framework.Options{ExtraApiserverArgs: nodelab.ApiserverArgs}})
	if err != nil {
		return r, err
	}
	defer lab.Close()
	cp, err := lab.StartControlPlane(ctx)
	if err != nil {
		return r, err
	}
	archives, err := nodelab.IronLBArchives(filepath.Join(lab.Dir, "images"))
	if err != nil {
		return r, err
	}
	begin := time.Now()
	c, err := nodelab.Start(ctx, nodelab.Options{Lab: lab, ControlPlane: cp, Archives: archives, Logf: logf})
	if err != nil {
		return r, err
	}
	defer c.Close()
	nodesUp := time.Since(begin)
	root, err := framework.RepoRoot()
	if err != nil {
		return r, err
	}
	if out, err := c.Kubectl(ctx, "", "apply", "--server-side", "-k", filepath.Join(root, "manifests", "kubeadm")); err != nil {
		return r, fmt.Errorf("%w\n%s", err, out)
	}
	if _, err := c.WaitIronLBInstalled(ctx, 3*time.Minute); err != nil {
		return r, err
	}
	installed := time.Since(begin)
	if err := framework.ApplyConfig(ctx, cp.Client, benchConfig); err != nil {
		return r, err
	}
	if _, err := lab.Client().Exec(ctx, "ip", "route", "replace", netlab.VIPv4.String(), "dev", netlab.Iface); err != nil {
		return r, err
	}
	app := nodelab.EchoDeployment("default", podsDemoApp, 3)
	app.Spec.Template.Spec.TopologySpreadConstraints = []v1.TopologySpreadConstraint{{
		MaxSkew: 1, TopologyKey: v1.LabelHostname, WhenUnsatisfiable: v1.DoNotSchedule, LabelSelector: app.Spec.Selector}}
	if _, err := cp.Client.AppsV1().Deployments("default").Create(ctx, app, metav1.CreateOptions{}); err != nil {
		return r, err
	}
	if err := c.WaitDeploymentReady(ctx, "default", podsDemoApp, 2*time.Minute); err != nil {
		return r, err
	}
	if err := waitSpeakersConverged(ctx, c, ""); err != nil {
		return r, err
	}
	memory := nodeMemory(c)

	for fi, f := range podFaults {
		fr, err := runFault(ctx, im, f.name, trials, func(i int) (time.Duration, error) {
			return podTrial(ctx, c, fmt.Sprintf("bench-%d-%d", fi, i), f)
		})
		if err != nil {
			return r, err
		}
		r.faults = append(r.faults, fr)
	}
	r.memory = fmt.Sprintf("Three real nodes Ready %s after the lab's control plane, ironlb installed and Ready %s after that (kubectl apply -k manifests/kubeadm). Memory (VmRSS) with ironlb idle: %s.",
		nodesUp.Round(100*time.Millisecond), (installed - nodesUp).Round(100*time.Millisecond), memory)
	return r, nil
}

// podTrial creates a Service in front of the echo pods, injects the fault
// on its announcer, measures the takeover, repairs, and deletes the Service.
func podTrial(ctx context.Context, c *nodelab.Cluster, name string, f podFault) (time.Duration, error) {
	client := c.ControlPlane.Client
	svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": podsDemoApp},
			Ports: []v1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(nodelab.EchoPort)}}}}
	if _, err := client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return 0, err
	}
	defer func() {
		del, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = client.CoreV1().Services("default").Delete(del, name, metav1.DeleteOptions{})
	}()
	ips, err := framework.WaitForIngress(ctx, client, "default", name, 1, time.Minute)
	if err != nil {
		return 0, err
	}
	vip := netip.MustParseAddr(ips[0])
	var owner string
	var last error
	err = framework.WaitFor(ctx, 30*time.Second, 50*time.Millisecond, func(ctx context.Context) (bool, error) {
		owner, last = podAnnouncer(ctx, c, vip)
		return last == nil, nil
	})
	if err != nil {
		return 0, fmt.Errorf("%s never answered: %w (last: %v)", vip, err, last)
	}
	// Let the takeover burst finish so each trial starts from a settled
	// neighbour cache.
	time.Sleep(5 * time.Second)
	start := time.Now()
	if err := f.inject(ctx, c, owner); err != nil {
		return 0, err
	}
	gap, movedOff, err := longestGap(ctx, c, vip, owner, start)
	if err == nil && !movedOff {
		fmt.Printf("    %s kept %s (its speaker was back before the others declared it dead)\n", owner, vip)
	}
	if repairErr := f.repair(ctx, c, owner); repairErr != nil {
		return 0, repairErr
	}
	return gap, err
}

// podAnnouncer asks vip once over HTTP from the client and returns the node
// whose MAC the client's neighbour cache holds for it: the node the request
// went through (a pod on any node may have answered it).
func podAnnouncer(ctx context.Context, c *nodelab.Cluster, vip netip.Addr) (string, error) {
	a, err := c.Ask(ctx, c.Lab.Client(), vip, 500*time.Millisecond)
	if err == nil && a.Via == "" {
		err = fmt.Errorf("the client reached %s through no node", vip)
	}
	return a.Via, err
}

// gapWindow is how long after a fault the client's service is watched when
// no other node takes the address over (a speaker restarted in time keeps
// it).
const gapWindow = 10 * time.Second

// longestGap starts a request every 10 ms from start and returns the
// longest time the client went without a successful answer (from start to
// the first one, or between two), and whether a node other than old took
// the address over. It watches until a takeover (and 200 ms more) or for
// gapWindow.
func longestGap(ctx context.Context, c *nodelab.Cluster, vip netip.Addr, old string, start time.Time) (time.Duration, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var answers []time.Time
	var takenOver time.Time
	var wg sync.WaitGroup
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := start.Add(gapWindow)
	for now := range tick.C {
		mu.Lock()
		done := (!takenOver.IsZero() && now.After(takenOver.Add(200*time.Millisecond))) || (takenOver.IsZero() && now.After(deadline))
		mu.Unlock()
		if done || ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			node, err := podAnnouncer(ctx, c, vip)
			if err != nil {
				return
			}
			at := time.Now()
			mu.Lock()
			defer mu.Unlock()
			answers = append(answers, at)
			if node != old && takenOver.IsZero() {
				takenOver = at
			}
		})
	}
	wg.Wait()
	if len(answers) == 0 {
		return 0, false, fmt.Errorf("no answer for %s at all within %v", vip, time.Since(start).Round(time.Second))
	}
	slices.SortFunc(answers, time.Time.Compare)
	gap, prev := time.Duration(0), start
	for _, at := range answers {
		gap = max(gap, at.Sub(prev))
		prev = at
	}
	return gap, !takenOver.IsZero(), nil
}

// waitSpeakersConverged waits until every node's speaker pod is Ready and
// reports every member alive (its /metrics, read on the node).
func waitSpeakersConverged(ctx context.Context, c *nodelab.Cluster, _ string) error {
	want := fmt.Sprintf("ironlb_speaker_members %d\n", len(c.Nodes()))
	return framework.WaitFor(ctx, 2*time.Minute, 250*time.Millisecond, func(ctx context.Context) (bool, error) {
		ds, err := c.ControlPlane.Client.AppsV1().DaemonSets(nodelab.IronLBNamespace).Get(ctx, "ironlb-speaker", metav1.GetOptions{})
		if err != nil || int(ds.Status.NumberReady) != len(c.Nodes()) {
			return false, nil
		}
		for _, n := range c.Nodes() {
			body, err := n.Host.HTTPGet(ctx, "http://"+netip.AddrPortFrom(n.Host.IPv4, 7472).String()+"/metrics")
			if err != nil || !strings.Contains(body, want) {
				return false, nil
			}
		}
		return true, nil
	})
}

// nodeMemory sums, per component, the resident memory of each node's
// processes.
func nodeMemory(c *nodelab.Cluster) string {
	var parts []string
	for _, name := range []string{"kubelet", "containerd", "kube-proxy", "ironlb-speaker"} {
		var per []string
		for _, n := range c.Nodes() {
			pids := n.Pids(name)
			if pid, ok := n.ComponentPids()[name]; ok {
				pids = []int{pid}
			}
			for _, pid := range pids {
				per = append(per, rss(pid))
			}
		}
		parts = append(parts, name+" "+strings.Join(per, "/"))
	}
	return strings.Join(parts, "; ")
}

func rss(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			return strings.Join(strings.Fields(line)[1:], " ")
		}
	}
	return "?"
}
