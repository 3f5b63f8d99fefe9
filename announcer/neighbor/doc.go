// Package neighbor builds the frames that tell the hosts on a link which MAC
// address an IP address lives at, and sends the gratuitous bursts that
// announce an address taken over. For IPv4 these are ARP packets, for IPv6
// neighbor advertisements (RFC 4861).
//
// Both of the speaker's link-layer modes need them: announcer/layer2 answers
// ARP and neighbor solicitations itself and announces takeovers, and
// announcer/vip leaves answering to the kernel but still has to announce
// takeovers, which the kernel does not do for an added address.
//
// Frames are whole Ethernet frames, ready for an AF_PACKET socket. The
// sockets stay with the callers, which open them differently (layer2 one per
// interface that it also reads from, vip one for every interface).
//
// # Gratuitous rounds
//
// One round for an IPv4 address is two broadcast frames: an RFC 5227 ARP
// announcement (a request whose sender and target IP are the address, target
// MAC zero) and a gratuitous ARP reply (sender and target are the address and
// the MAC, the form Linux accepts as gratuitous). Some stacks honour only one
// of the two forms, so both are sent. For an IPv6 address a round is one
// unsolicited neighbor advertisement to all nodes (ff02::1) with Override
// set and Solicited clear, sourced from the address itself.
//
// A [Burst] repeats the round at the offsets of a schedule
// ([DefaultSchedule]), so that neighbours that ignored or missed one round
// catch a later one.
package neighbor
