package announcer

import (
	"context"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"k8s.io/klog/v2"

	"github.com/ironlb/ironlb/announcer/election"
	"github.com/ironlb/ironlb/announcer/membership"
)

// virtualPrefixes name interfaces that never carry a LAN address worth
// announcing on (container and tunnel plumbing); leaving them out keeps the
// published meta under memberlist's 512-byte limit on busy nodes.
var virtualPrefixes = []string{"lo", "veth", "cali", "cni", "flannel", "docker", "kube-ipvs", "cilium", "lxc", "vxlan", "tunl", "genev", "ironlb", "nodelocaldns", "tap", "virbr"}

// LocalMeta describes this node's usable interfaces and their prefixes, as
// published to the other speakers.
func LocalMeta() (membership.Meta, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return membership.Meta{}, err
	}
	meta := membership.Meta{Interfaces: map[string][]string{}}
	for _, ifi := range ifaces {
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagLoopback != 0 || isVirtual(ifi.Name) {
			continue
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		var prefixes []string
		for _, a := range addrs {
			ipnet, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			prefix, err := netip.ParsePrefix(ipnet.String())
			// A host address (/32, /128) puts no subnet on the interface:
			// it is a VIP (vip mode adds its addresses so), and publishing
			// those would make a node that holds many overflow its meta
			// and look eligible for exactly the addresses it holds.
			if err != nil || prefix.Addr().IsLinkLocalUnicast() || prefix.IsSingleIP() {
				continue
			}
			prefixes = append(prefixes, prefix.Masked().String())
		}
		slices.Sort(prefixes)
		meta.Interfaces[ifi.Name] = slices.Compact(prefixes)
	}
	return meta, nil
}

func isVirtual(name string) bool {
	for _, p := range virtualPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// watchAddresses calls changed whenever an address or link on this node
// changes, until ctx ends. Netlink notifications replace polling.
func watchAddresses(ctx context.Context, changed func()) {
	addrs := make(chan netlink.AddrUpdate, 16)
	links := make(chan netlink.LinkUpdate, 16)
	done := make(chan struct{})
	defer close(done)
	if err := netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{}); err != nil {
		klog.ErrorS(err, "Cannot watch interface addresses; interface changes are seen only at start")
		return
	}
	if err := netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{}); err != nil {
		klog.ErrorS(err, "Cannot watch links; link changes are seen only with address changes")
	}
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-addrs:
			if !ok {
				return
			}
			changed()
		case <-links:
			changed()
		}
	}
}

// interfacesOf is a member's published interfaces as the election takes
// them: sorted by name, subnets parsed (one that does not parse is left
// out).
func interfacesOf(meta membership.Meta) []election.Interface {
	out := make([]election.Interface, 0, len(meta.Interfaces))
	for _, name := range slices.Sorted(maps.Keys(meta.Interfaces)) {
		i := election.Interface{Name: name}
		for _, p := range meta.Interfaces[name] {
			if prefix, err := netip.ParsePrefix(p); err == nil {
				i.Prefixes = append(i.Prefixes, prefix)
			}
		}
		out = append(out, i)
	}
	return out
}

// parsedInterfaces is a member as last seen, and interfacesOf its meta.
type parsedInterfaces struct {
	member     membership.Member
	interfaces []election.Interface
}
