package vip

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// AddressProtocol is the IFA_PROTO value that marks every address this
// package adds ('i' for ironlb); iproute2 6.3 and later show it as the
// address's "proto". Values 1-3 are the kernel's own.
const AddressProtocol uint8 = 0x69

// ifaProto is the IFA_PROTO attribute (linux/if_addr.h, Linux 6.3), which
// golang.org/x/sys/unix does not define yet.
const ifaProto = 11

// labelSuffix ends the IFA_LABEL of IPv4 addresses this package adds, as in
// "eth0:ilb". A label is at most IFNAMSIZ-1 bytes, and by convention (which
// iproute2 enforces) starts with the interface name.
const labelSuffix = ":ilb"

// netlinkTimeout bounds every netlink exchange: they take microseconds, but a
// kernel busy under the RTNL lock (thousands of pods starting) must not hang
// a sync forever.
const netlinkTimeout = 10 * time.Second

// dumpRetries bounds how often an address dump is retried when the kernel
// reports it was interrupted by a concurrent change.
const dumpRetries = 5

// labelFor returns the IPv4 label marking our addresses on iface, or "" when
// the name is too long for one (the protocol marker still applies).
func labelFor(iface string) string {
	if l := iface + labelSuffix; len(l) <= unix.IFNAMSIZ-1 {
		return l
	}
	return ""
}

// hostBits is the prefix length that covers exactly addr.
func hostBits(addr netip.Addr) int {
	return addr.BitLen()
}

// kernelAddr is one address as the kernel reports it.
type kernelAddr struct {
	addr      netip.Addr
	prefixLen int
	index     int
	label     string
	flags     uint32
	proto     uint8
}

// ours reports whether this package added a. The protocol is the marker; the
// label also counts for IPv4, so addresses stay recognisable on a kernel
// older than 6.3, which drops IFA_PROTO silently.
func (a kernelAddr) ours() bool {
	return a.proto == AddressProtocol || (a.addr.Is4() && strings.HasSuffix(a.label, labelSuffix))
}

// addrTable adds, removes and lists addresses over a NETLINK_ROUTE socket of
// its own. vishvananda/netlink v1.3.1 neither sends nor parses IFA_PROTO, so
// the messages are built here with its nl package.
type addrTable struct {
	sock *nl.SocketHandle
}

// newAddrTable opens the socket in the calling thread's network namespace.
func newAddrTable() (*addrTable, error) {
	s, err := nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("opening netlink socket: %w", err)
	}
	tv := unix.NsecToTimeval(netlinkTimeout.Nanoseconds())
	_ = s.SetSendTimeout(&tv)
	_ = s.SetReceiveTimeout(&tv)
	// The kernel then says why it refused a request, not only an errno.
	_ = s.SetExtAck(true)
	return &addrTable{sock: &nl.SocketHandle{Socket: s}}, nil
}

func (t *addrTable) close() {
	t.sock.Close()
}

func (t *addrTable) request(msgType, flags int) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(msgType, flags)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: t.sock}
	return req
}

// add adds addr as a host address (/32, /128) to the interface index,
// marked as ours. IPv6 addresses skip duplicate address detection, so they
// are usable at once, and are deprecated (preferred lifetime 0), so the
// node never picks a load-balancer address as the source of its own
// connections: it still receives and answers on it, and the address may move
// to another node at any time.
func (t *addrTable) add(index int, iface string, addr netip.Addr) error {
	req := t.request(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	msg := nl.NewIfAddrmsg(familyNumber(addr))
	msg.Prefixlen = uint8(hostBits(addr))
	msg.Scope = unix.RT_SCOPE_UNIVERSE
	msg.Index = uint32(index)
	var flags uint32
	if addr.Is6() {
		flags = unix.IFA_F_NODAD
	}
	msg.Flags = uint8(flags)
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFA_LOCAL, addr.AsSlice()))
	req.AddData(nl.NewRtAttr(unix.IFA_ADDRESS, addr.AsSlice()))
	req.AddData(nl.NewRtAttr(unix.IFA_FLAGS, nl.Uint32Attr(flags)))
	req.AddData(nl.NewRtAttr(ifaProto, nl.Uint8Attr(AddressProtocol)))
	if addr.Is4() {
		if label := labelFor(iface); label != "" {
			req.AddData(nl.NewRtAttr(unix.IFA_LABEL, nl.ZeroTerminated(label)))
		}
	} else {
		ci := &nl.IfaCacheInfo{IfaCacheinfo: unix.IfaCacheinfo{Prefered: 0, Valid: ^uint32(0)}}
		req.AddData(nl.NewRtAttr(unix.IFA_CACHEINFO, ci.Serialize()))
	}
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// del removes exactly the address a: same interface, prefix length and, for
// IPv4, label, so a node's own address that happens to be equal is never hit.
func (t *addrTable) del(a kernelAddr) error {
	req := t.request(unix.RTM_DELADDR, unix.NLM_F_ACK)
	msg := nl.NewIfAddrmsg(familyNumber(a.addr))
	msg.Prefixlen = uint8(a.prefixLen)
	msg.Index = uint32(a.index)
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFA_LOCAL, a.addr.AsSlice()))
	req.AddData(nl.NewRtAttr(unix.IFA_ADDRESS, a.addr.AsSlice()))
	if a.addr.Is4() && a.label != "" {
		req.AddData(nl.NewRtAttr(unix.IFA_LABEL, nl.ZeroTerminated(a.label)))
	}
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// list returns every IPv4 and IPv6 address in the namespace.
func (t *addrTable) list() ([]kernelAddr, error) {
	var err error
	for range dumpRetries {
		var out []kernelAddr
		req := t.request(unix.RTM_GETADDR, unix.NLM_F_DUMP)
		req.AddData(nl.NewIfAddrmsg(unix.AF_UNSPEC))
		err = req.ExecuteIter(unix.NETLINK_ROUTE, unix.RTM_NEWADDR, func(m []byte) bool {
			if a, ok := parseAddr(m); ok {
				out = append(out, a)
			}
			return true
		})
		if err == nil {
			return out, nil
		}
		if !errors.Is(err, nl.ErrDumpInterrupted) {
			break
		}
	}
	return nil, fmt.Errorf("listing addresses: %w", err)
}

// parseAddr decodes an RTM_NEWADDR message (struct ifaddrmsg, then
// attributes). It skips what it cannot decode and families other than IPv4
// and IPv6.
func parseAddr(m []byte) (kernelAddr, bool) {
	if len(m) < unix.SizeofIfAddrmsg {
		return kernelAddr{}, false
	}
	family := int(m[0])
	if family != unix.AF_INET && family != unix.AF_INET6 {
		return kernelAddr{}, false
	}
	a := kernelAddr{
		prefixLen: int(m[1]),
		flags:     uint32(m[2]),
		index:     int(nl.NativeEndian().Uint32(m[4:8])),
	}
	attrs, err := nl.ParseRouteAttr(m[unix.SizeofIfAddrmsg:])
	if err != nil {
		return kernelAddr{}, false
	}
	var local, address netip.Addr
	for _, attr := range attrs {
		v := attr.Value
		switch attr.Attr.Type {
		case unix.IFA_LOCAL:
			local, _ = netip.AddrFromSlice(v)
		case unix.IFA_ADDRESS:
			address, _ = netip.AddrFromSlice(v)
		case unix.IFA_LABEL:
			a.label = strings.TrimRight(string(v), "\x00")
		case unix.IFA_FLAGS:
			if len(v) >= 4 {
				a.flags = nl.NativeEndian().Uint32(v)
			}
		case ifaProto:
			if len(v) >= 1 {
				a.proto = v[0]
			}
		}
	}
	// IPv4 sends the address as IFA_LOCAL (IFA_ADDRESS is the peer on
	// point-to-point links); IPv6 sends IFA_ADDRESS, and IFA_LOCAL only with
	// a peer.
	a.addr = local
	if !a.addr.IsValid() {
		a.addr = address
	}
	if !a.addr.IsValid() {
		return kernelAddr{}, false
	}
	a.addr = a.addr.Unmap()
	return a, true
}

func familyNumber(addr netip.Addr) int {
	if addr.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}
