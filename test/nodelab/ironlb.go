package nodelab

import (
	"context"
	"fmt"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/test/framework"
)

// IronLBNamespace is where the install manifests and the chart put ironlb.
const IronLBNamespace = "ironlb-system"

// Kubectl runs kubectl on the control plane host with the admin
// kubeconfig, as an operator would; stdin, if not empty, is fed to it.
func (c *Cluster) Kubectl(ctx context.Context, stdin string, args ...string) (string, error) {
	args = append([]string{"--kubeconfig", c.ControlPlane.Kubeconfig}, args...)
	if stdin == "" {
		return c.Lab.ControlPlane().Exec(ctx, "kubectl", args...)
	}
	return c.Lab.ControlPlane().ExecStdin(ctx, stdin, "kubectl", args...)
}

// WaitIronLBInstalled waits for what an operator checks after installing
// ironlb: every ironlb-ccm replica Ready and one of them leading, every
// Node initialized by ironlb (the uninitialized taint gone, providerID
// ironlb://<node>, its InternalIPs), and a Ready speaker on every node.
// It returns the leader's identity.
func (c *Cluster) WaitIronLBInstalled(ctx context.Context, timeout time.Duration) (string, error) {
	client := c.ControlPlane.Client
	var last, leader string
	err := framework.WaitFor(ctx, timeout, 250*time.Millisecond, func(ctx context.Context) (bool, error) {
		ccm, err := client.AppsV1().Deployments(IronLBNamespace).Get(ctx, "ironlb-ccm", metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		if ccm.Spec.Replicas == nil || ccm.Status.ReadyReplicas != *ccm.Spec.Replicas {
			last = fmt.Sprintf("ironlb-ccm: %d replicas ready", ccm.Status.ReadyReplicas)
			return false, nil
		}
		for _, n := range c.nodes {
			if last = c.initializedByIronLB(ctx, n); last != "" {
				return false, nil
			}
		}
		ds, err := client.AppsV1().DaemonSets(IronLBNamespace).Get(ctx, "ironlb-speaker", metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		if int(ds.Status.NumberReady) != len(c.nodes) {
			last = fmt.Sprintf("ironlb-speaker: %d of %d ready", ds.Status.NumberReady, len(c.nodes))
			return false, nil
		}
		lease, err := client.CoordinationV1().Leases(IronLBNamespace).Get(ctx, "ironlb-cloud-controller-manager", metav1.GetOptions{})
		if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			last = fmt.Sprintf("no ironlb-ccm leader (%v)", err)
			return false, nil
		}
		leader = *lease.Spec.HolderIdentity
		return true, nil
	})
	if err != nil {
		return "", fmt.Errorf("ironlb install: %s: %w\n%s", last, err, c.IronLBLogs(ctx))
	}
	return leader, nil
}

// initializedByIronLB returns "" once ironlb's cloud-node controller has
// initialized n, else what is missing.
func (c *Cluster) initializedByIronLB(ctx context.Context, n *Node) string {
	node, err := c.ControlPlane.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
	if err != nil {
		return err.Error()
	}
	if slices.ContainsFunc(node.Spec.Taints, func(t v1.Taint) bool { return t.Key == "node.cloudprovider.kubernetes.io/uninitialized" }) {
		return "node " + n.Name + " still tainted uninitialized"
	}
	if node.Spec.ProviderID != "ironlb://"+n.Name {
		return fmt.Sprintf("node %s: providerID %q", n.Name, node.Spec.ProviderID)
	}
	want := []string{n.Host.IPv4.String()}
	if c.DualStack() {
		want = append(want, n.Host.IPv6.String())
	}
	for _, ip := range want {
		if !slices.ContainsFunc(node.Status.Addresses, func(a v1.NodeAddress) bool { return a.Type == v1.NodeInternalIP && a.Address == ip }) {
			return fmt.Sprintf("node %s: addresses %v, want InternalIP %s", n.Name, node.Status.Addresses, ip)
		}
	}
	return ""
}

// IronLBLogs returns every pod's state and the tail of every ironlb pod's
// log, for a failure report.
func (c *Cluster) IronLBLogs(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	pods, err := c.Kubectl(ctx, "", "get", "pods", "-A", "-o", "wide")
	if err != nil {
		pods = err.Error()
	}
	logs, err := c.Kubectl(ctx, "", "-n", IronLBNamespace, "logs", "--all-containers", "--prefix", "--tail=20", "-l", "app.kubernetes.io/part-of=ironlb")
	if err != nil {
		logs = err.Error()
	}
	return pods + "\n" + logs
}
