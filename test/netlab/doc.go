// Package netlab builds a small network of Linux network namespaces on this
// machine, so ironlb's tests can prove with real ARP, NDP, TCP and BGP
// packets that traffic for a load-balancer address reaches a node.
//
// A lab is a set of namespaces named <id>-<suffix>, with <id> = "ilb" + 4 hex
// digits unique per lab:
//
//	<id>-sw   the switch: Linux bridge br0 (and br1 for LAN2), no addresses
//	<id>-cp   the control plane host (etcd + kube-apiserver, Lab.StartControlPlane)
//	<id>-n1…  the nodes, each with eth0 on the LAN
//	<id>-cl   a client on the LAN
//	<id>-r1…  routers on the LAN (for BGP); the first also routes LAN2
//	<id>-c2   a client on LAN2, reachable only through the first router
//
// Every host NIC is a veth pair: eth0 inside the host, its peer p-<host> in
// the switch namespace, enslaved to br0 (the first router's LAN2 NIC is eth1,
// peer q-<router> on br1). Nothing is ever created or changed
// in the namespace the test runs in; the test reaches into the lab with
// Host.Dialer, Host.Exec and framework.NetnsDialer, which open sockets or run
// commands inside a lab namespace.
//
// # Address plan
//
// Only documentation ranges are used (RFC 5737, RFC 3849):
//
//	LAN   198.51.100.0/25    2001:db8:100::/64   (LANv4, LANv6)
//	LAN2  198.51.100.128/25  2001:db8:101::/64   (LAN2v4, LAN2v6)
//	VIPs  203.0.113.0/24     2001:db8:200::/64   (VIPv4, VIPv6; never on a host)
//
// On the LAN, host number n has 198.51.100.n and 2001:db8:100::n (n written
// in decimal, read as hex, so the two look alike), and the MAC
// 02:00:c6:33:64:xx, which spells the IPv4 address (c6:33:64:0b is
// 198.51.100.11):
//
//	n=1      first router (later routers: 3…9)
//	n=2      control plane
//	n=11…99  nodes n1…n89
//	n=100    client
//
// On LAN2 the first router is 198.51.100.129 / 2001:db8:101::1 and client2 is
// 198.51.100.228 / 2001:db8:101::100; LAN hosts route LAN2 through the first
// router and client2's default route points back at it. The client has
// on-link routes for the VIP ranges, as a LAN neighbour of a layer2 load
// balancer would: it resolves a VIP with ARP/NDP, whoever answers gets the
// traffic.
//
// # Clean-up
//
// Close (or the test's Cleanup, with NewForTest) stops the control plane and
// the HTTP servers, kills every process left in the lab's namespaces and
// deletes them. A SIGINT, SIGTERM or SIGHUP does the same for every open lab
// before the process dies (unless Options.NoSignalHandler). A crash or
// SIGKILL leaves the namespaces behind: New calls Sweep first, which deletes
// the namespaces of labs whose owning process is gone, proven by the marker
// file /run/ironlb-netlab/<id>.pid; namespaces without a marker are never
// touched.
package netlab
