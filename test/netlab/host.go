package netlab

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/ironlb/ironlb/test/framework"
)

// Role is what a host is in the lab.
type Role string

// Roles.
const (
	RoleSwitch       Role = "switch"
	RoleControlPlane Role = "control-plane"
	RoleRouter       Role = "router"
	RoleNode         Role = "node"
	RoleClient       Role = "client"
)

// NIC is one of a host's network interfaces and its place on the switch.
type NIC struct {
	// Iface is the interface's name inside the host (eth0, or eth1 for a
	// router's LAN2 side).
	Iface string
	// IPv4 and IPv6 are its addresses, within Prefix4 and Prefix6.
	IPv4, IPv6       netip.Addr
	Prefix4, Prefix6 netip.Prefix
	// MAC is its hardware address.
	MAC net.HardwareAddr
	// SwitchPort is the peer veth in the switch namespace, a port of Bridge.
	SwitchPort, Bridge string
}

// Host is one namespace of a lab. The embedded NIC is its LAN interface (on
// LAN2 for client2; none for the switch).
type Host struct {
	// Name is the host's short name: n1, cl, cp, r1, c2, sw.
	Name string
	// Netns is its network namespace (for `ip netns exec`,
	// framework.StartProcessInNetns, …).
	Netns string
	Role  Role
	NIC
	// LAN2 is the first router's interface on LAN2 (with Options.Client2),
	// else nil.
	LAN2 *NIC

	lab *Lab
}

func (h *Host) String() string { return h.Name + " (" + h.Netns + ")" }

// nics returns the host's interfaces.
func (h *Host) nics() []NIC {
	switch {
	case h.Role == RoleSwitch:
		return nil
	case h.LAN2 != nil:
		return []NIC{h.NIC, *h.LAN2}
	default:
		return []NIC{h.NIC}
	}
}

// Addr returns the host's LAN address of the family of v6.
func (h *Host) Addr(v6 bool) netip.Addr {
	if v6 {
		return h.IPv6
	}
	return h.IPv4
}

// Exec runs cmd with args inside the host's namespace (`ip netns exec`) and
// returns its combined output; the error includes it too. A ctx without
// deadline is bounded to 30 s.
func (h *Host) Exec(ctx context.Context, cmd string, args ...string) (string, error) {
	if err := checkLabNetns(h.Netns); err != nil {
		return "", err
	}
	return run(ctx, "", "ip", append([]string{"netns", "exec", h.Netns, cmd}, args...)...)
}

// Neighbor returns the MAC address h's kernel holds for ip on its LAN
// interface ("" when it holds none): whom h sends ip's packets to.
func (h *Host) Neighbor(ctx context.Context, ip netip.Addr) (string, error) {
	out, err := h.Exec(ctx, "ip", "neigh", "show", ip.String(), "dev", h.Iface)
	if err != nil {
		return "", err
	}
	fields := strings.Fields(out)
	for i, f := range fields {
		if f == "lladdr" && i+1 < len(fields) {
			return fields[i+1], nil
		}
	}
	return "", nil
}

// ExecStdin is Exec with stdin fed to the command (e.g. `kubectl apply -f -`).
func (h *Host) ExecStdin(ctx context.Context, stdin string, cmd string, args ...string) (string, error) {
	if err := checkLabNetns(h.Netns); err != nil {
		return "", err
	}
	return run(ctx, stdin, "ip", append([]string{"netns", "exec", h.Netns, cmd}, args...)...)
}

// StartProcess starts a long-running command inside the host's namespace
// (e.g. a speaker or a routing daemon), logging to <lab dir>/<host>-<name>.log.
// It stops when ctx ends, and Close kills it if it is still there.
func (h *Host) StartProcess(ctx context.Context, name, cmd string, args ...string) (*framework.Process, error) {
	return framework.StartProcessWith(ctx, framework.ProcessOptions{
		Name:    h.Name + "/" + name,
		LogPath: filepath.Join(h.lab.Dir, h.Name+"-"+name+".log"),
		Netns:   h.Netns,
	}, cmd, args...)
}

// SetLink brings the host's LAN interface (eth0) down or up, as the host
// itself would: the node "dies" to the network but its processes keep
// running and see the link go.
func (h *Host) SetLink(ctx context.Context, up bool) error {
	if h.Role == RoleSwitch {
		return errors.New("netlab: the switch has no LAN interface")
	}
	_, err := ipIn(ctx, h.Netns, "link", "set", h.Iface, upDown(up))
	return err
}

// SetSwitchPort brings the host's port on the switch down or up: the cable
// is pulled at the switch. The host sees only its carrier go.
func (h *Host) SetSwitchPort(ctx context.Context, up bool) error {
	if h.Role == RoleSwitch {
		return errors.New("netlab: the switch has no switch port")
	}
	_, err := ipIn(ctx, h.lab.sw.Netns, "link", "set", h.SwitchPort, upDown(up))
	return err
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

// Dialer returns a dial function (net.Dialer.DialContext's signature, for
// http.Transport.DialContext or rest.Config.Dial) whose connections start
// from inside this host's namespace. Addresses must be IP literals.
func (h *Host) Dialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	return framework.NetnsDialer(h.Netns)
}

// Listen opens a listener inside this host's namespace.
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	return framework.ListenInNetns(h.Netns, network, addr)
}

// HTTPGet fetches url from this host; see framework.HTTPGetFrom.
func (h *Host) HTTPGet(ctx context.Context, url string) (string, error) {
	body, err := framework.HTTPGetFrom(ctx, h.Netns, url)
	if err != nil {
		return body, fmt.Errorf("from %s: %w", h.Name, err)
	}
	return body, nil
}

// Ping sends ICMP echo requests from this host to dst every 200 ms until one
// is answered (nil) or ctx ends (an error). A ctx without deadline is
// bounded to 5 s. It needs no ping binary: it uses a raw socket opened
// inside the namespace.
func (h *Host) Ping(ctx context.Context, dst netip.Addr) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	network, request, reply := "ip4:icmp", byte(8), byte(0)
	if dst.Is6() {
		network, request, reply = "ip6:ipv6-icmp", 128, 129
	}
	var conn *net.IPConn
	if err := framework.InNetns(h.Netns, func() error {
		var err error
		// Connected, so the kernel hands this socket only dst's packets.
		conn, err = net.DialIP(network, nil, &net.IPAddr{IP: dst.AsSlice(), Zone: dst.Zone()})
		return err
	}); err != nil {
		return fmt.Errorf("ping %s from %s: %w", dst, h.Name, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()

	var idb [2]byte
	_, _ = rand.Read(idb[:])
	id := binary.BigEndian.Uint16(idb[:])
	buf := make([]byte, 1500)
	for seq := uint16(1); ; seq++ {
		if _, err := conn.Write(echoRequest(request, id, seq, !dst.Is6())); err != nil && ctx.Err() == nil {
			return fmt.Errorf("ping %s from %s: %w", dst, h.Name, err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		for {
			// ReadFrom, unlike Read, strips the IPv4 header.
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				break // the interval is over, or ctx ended
			}
			if n >= 8 && buf[0] == reply && binary.BigEndian.Uint16(buf[4:]) == id {
				return nil
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("ping %s from %s: no reply to %d echo requests: %w", dst, h.Name, seq, context.Cause(ctx))
		}
	}
}

// echoRequest builds an ICMP(v6) echo request. The kernel computes ICMPv6
// checksums itself (they cover a pseudo-header it owns); ICMPv4 ones are
// ours.
func echoRequest(typ byte, id, seq uint16, v4 bool) []byte {
	b := make([]byte, 8, 8+len("ironlb-netlab"))
	b[0] = typ
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	b = append(b, "ironlb-netlab"...)
	if v4 {
		binary.BigEndian.PutUint16(b[2:], inetChecksum(b))
	}
	return b
}

// inetChecksum is the RFC 1071 Internet checksum.
func inetChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// LinkLocal returns the IPv6 link-local address of the host's LAN interface,
// with the interface as zone (ready to dial from this host).
func (h *Host) LinkLocal() (netip.Addr, error) {
	var ll netip.Addr
	err := framework.InNetns(h.Netns, func() error {
		ifi, err := net.InterfaceByName(h.Iface)
		if err != nil {
			return err
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is6() && p.Addr().IsLinkLocalUnicast() {
				ll = p.Addr().WithZone(h.Iface)
				return nil
			}
		}
		return fmt.Errorf("%s has no IPv6 link-local address", h.Iface)
	})
	return ll, err
}
