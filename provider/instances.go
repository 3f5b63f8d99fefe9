package provider

import (
	"context"
	"net/netip"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	cloudprovider "k8s.io/cloud-provider"
	cloudproviderapi "k8s.io/cloud-provider/api"
)

// providerIDPrefix marks nodes initialized by ironlb.
const providerIDPrefix = ProviderName + "://"

var _ cloudprovider.InstancesV2 = &Cloud{}

// InstanceExists is true for every node the cloud-node controller asks about:
// on bare metal the Node object is the only inventory there is. The
// cloud-node-lifecycle controller, the one caller that would delete nodes on
// a false answer, is not run.
func (c *Cloud) InstanceExists(ctx context.Context, node *v1.Node) (bool, error) {
	return true, nil
}

// InstanceShutdown is false: ironlb cannot see power state.
func (c *Cloud) InstanceShutdown(ctx context.Context, node *v1.Node) (bool, error) {
	return false, nil
}

// InstanceMetadata gives kubelets run with --cloud-provider=external what
// they wait for: a providerID and addresses, taken from the node itself (the
// IPs kubelet was given with --node-ip, then any it already reports).
//
// A node another cloud provider initialized (its providerID names that
// provider, e.g. k3s:// from K3s's embedded CCM) is that provider's: its
// metadata is what it already holds, so the cloud-node controller, which
// asks again every --node-status-update-frequency, never rewrites it. Two
// controllers each adding what they would report (a Hostname from a label
// here, from an annotation there) would take turns rewriting its
// addresses forever.
func (c *Cloud) InstanceMetadata(ctx context.Context, node *v1.Node) (*cloudprovider.InstanceMetadata, error) {
	if node.Spec.ProviderID != "" && !strings.HasPrefix(node.Spec.ProviderID, providerIDPrefix) {
		return &cloudprovider.InstanceMetadata{
			ProviderID:    node.Spec.ProviderID,
			InstanceType:  node.Labels[v1.LabelInstanceTypeStable],
			NodeAddresses: slices.Clone(node.Status.Addresses),
		}, nil
	}
	return &cloudprovider.InstanceMetadata{
		ProviderID:    providerIDPrefix + node.Name,
		InstanceType:  ProviderName,
		NodeAddresses: nodeAddresses(node),
	}, nil
}

func nodeAddresses(node *v1.Node) []v1.NodeAddress {
	var addrs []v1.NodeAddress
	seen := map[v1.NodeAddress]bool{}
	add := func(a v1.NodeAddress) {
		if a.Address != "" && !seen[a] {
			seen[a] = true
			addrs = append(addrs, a)
		}
	}
	for _, ip := range strings.Split(node.Annotations[cloudproviderapi.AnnotationAlphaProvidedIPAddr], ",") {
		if addr, err := netip.ParseAddr(strings.TrimSpace(ip)); err == nil {
			add(v1.NodeAddress{Type: v1.NodeInternalIP, Address: addr.String()})
		}
	}
	for _, a := range node.Status.Addresses {
		add(a)
	}
	hostname := node.Name
	if h, ok := node.Labels[v1.LabelHostname]; ok && h != "" {
		hostname = h
	}
	add(v1.NodeAddress{Type: v1.NodeHostName, Address: hostname})
	return addrs
}
