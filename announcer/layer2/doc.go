// Package layer2 answers ARP (IPv4) and NDP neighbor solicitations (IPv6)
// for the load-balancer addresses this node owns, and announces them with
// gratuitous ARP / unsolicited neighbor advertisements when it takes them
// over.
//
// Election is not this package's job: the speaker decides which node owns an
// address and hands the complete set to [Announcer.SetAnnounced].
//
// # Sockets
//
// Each (interface, family) in use gets one AF_PACKET socket with a kernel BPF
// filter, so only ARP requests, respectively ICMPv6 neighbor solicitations,
// received by the host reach user space. Frames are parsed here, built by
// announcer/neighbor, and written on the same socket. A packet socket, rather than an ICMPv6 socket,
// is used for NDP because the load-balancer address is normally not assigned
// to the node: the kernel then never delivers the unicast solicitations
// neighbours send to verify reachability (RFC 4861 7.3, NUD) to a raw ICMPv6
// socket, and every neighbour would lose the entry after each probe. For IPv6
// an ICMPv6 socket is still opened per interface, solely to join the
// solicited-node multicast group of each address, so the NIC filter and
// MLD-snooping switches deliver the multicast solicitations. Only CAP_NET_RAW
// is needed.
//
// # Packets
//
// IPv4: an ARP request for an owned address, received by this host and not
// sent by it, is answered with a unicast ARP reply from the interface MAC to
// the requester's hardware address; RFC 5227 probes (sender 0.0.0.0) are
// answered the same way, which defends the address. On takeover each
// scheduled round sends a broadcast ARP announcement (request, sender and
// target IP = address, target MAC zero) and a broadcast gratuitous reply
// (sender = target = address and MAC, the form Linux accepts as gratuitous).
//
// IPv6: a neighbor solicitation for an owned address is answered with a
// neighbor advertisement carrying the interface MAC as target link-layer
// address, with Override set and sourced from the owned address itself (as
// the kernel does for its own addresses, so no link-local address, and no
// wait for one to leave the tentative state, is needed). A solicitation from
// a unicast source gets a unicast Solicited advertisement to that source; a
// duplicate address detection probe (source ::) gets one to ff02::1 with
// Solicited clear. On takeover each scheduled round sends an unsolicited
// advertisement (Override set, Solicited clear) to ff02::1.
//
// Neighbours that already hold an entry for an address update it from
// gratuitous packets; by default Linux does not create entries from them
// (arp_accept, accept_untracked_na), which is harmless: those neighbours will
// ask, and get answered.
package layer2
