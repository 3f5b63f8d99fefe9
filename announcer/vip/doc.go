// Package vip is the "vip" mode of the speaker: it assigns each
// load-balancer address this node owns to an interface, as a /32 or /128, so
// the Linux stack itself answers ARP, NDP and connections for it and
// `ip addr` shows it.
//
// Election is not this package's job: the speaker decides which node owns an
// address and hands the complete set to [Announcer.SetAnnounced].
//
// # Ownership
//
// The kernel, not memory, is the record of what this package added, so that
// a restarted speaker finds what a killed one left. Every address it adds
// carries the address protocol [AddressProtocol] (IFA_PROTO, the attribute
// the kernel keeps for exactly this question, "who added this address"), and
// IPv4 addresses also the label "<interface>:ilb" when it fits in 15 bytes.
// An address is ours if it has either mark; nothing else is ever removed, so
// a node's own address that equals a wanted one is left alone and reported
// ([ErrForeignAddress]).
//
// The alternatives are weaker: labels exist only for IPv4; a lifetime
// marker decays and is not exact; a state file can disagree with the kernel
// (a reboot empties one but not the other, a crash between the two writes
// leaks) and needs a host directory. IFA_PROTO needs Linux 6.3; older
// kernels accept and drop it. Every addition is therefore read back: an
// address stored without a mark (IPv6 on such a kernel) is removed again and
// reported ([ErrUnmarkable]) rather than kept where a crash would leak it.
//
// # Addresses outside every node subnet
//
// An empty interface name means no node interface is on the address's
// subnet. Such addresses go on the dummy interface [DummyInterface], created
// (and set up) here, for a routing daemon to announce. On a kernel without
// dummy support, creating it fails with EOPNOTSUPP; the fallback interface
// (Options.FallbackInterface, "lo" by default) is then used, which is logged
// once and shown by [Announcer.OffSubnetInterface]. Gratuitous packets are
// never sent there. Note that with the default arp_ignore=0 Linux answers ARP
// on every interface for addresses on lo or a dummy.
//
// # Gratuitous packets
//
// The kernel announces nothing itself when an address is added: arp_notify
// acts only when a link comes up or changes its MAC, and ndisc_notify sends
// one unsolicited advertisement when duplicate address detection completes,
// which never happens for an address added with IFA_F_NODAD. So each address
// newly assigned to an Ethernet interface gets the same burst as in layer2
// mode, from announcer/neighbor (Options.GratuitousSchedule, counted through
// Options.OnGratuitous): an ARP announcement and a gratuitous ARP reply, or an
// unsolicited neighbor advertisement with Override. They go out on one
// AF_PACKET socket, which needs CAP_NET_RAW; without it the bursts are
// disabled (logged once) and neighbours learn a moved address when their
// entry goes stale. Everything else needs only CAP_NET_ADMIN.
//
// # IPv6 details
//
// IPv6 addresses are added with IFA_F_NODAD, so they are usable at once, and
// with a preferred lifetime of 0 (deprecated). Source address selection
// (RFC 6724) prefers the longest matching prefix, which a /128 next to the
// node's /64 address usually wins: without deprecation the node would pick
// the load-balancer address as the source of its own connections, which
// break when the address moves. Deprecated addresses still receive, answer
// NDP and reply from themselves.
package vip
