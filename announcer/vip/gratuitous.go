package vip

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/go-logr/logr"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"golang.org/x/sys/unix"
)

// defaultGratuitousSchedule is layer2's: the first round at once, so a
// takeover does not wait, then growing gaps that land after the ~1 s ARP
// lock time of neighbours that just learnt the previous owner's MAC.
var defaultGratuitousSchedule = []time.Duration{
	0,
	500 * time.Millisecond,
	1100 * time.Millisecond,
	2200 * time.Millisecond,
	4400 * time.Millisecond,
}

// normalizeSchedule returns a sorted copy of s with negative offsets raised
// to zero.
func normalizeSchedule(s []time.Duration) []time.Duration {
	out := make([]time.Duration, len(s))
	for i, d := range s {
		out[i] = max(d, 0)
	}
	slices.Sort(out)
	return out
}

// sender writes whole Ethernet frames on any interface of its namespace. It
// is one AF_PACKET socket of protocol 0: bound to no protocol it receives
// nothing, and the interface is chosen per frame. Sends never block: a
// gratuitous packet that does not fit a full device queue is dropped, and the
// next round repeats it.
type sender struct {
	fd int
}

// openSender opens the socket in the calling thread's network namespace. It
// needs CAP_NET_RAW.
func openSender() (*sender, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("opening packet socket: %w", err)
	}
	return &sender{fd: fd}, nil
}

// send writes frame, which starts with its Ethernet header, on the interface
// index.
func (s *sender) send(index int, frame []byte) error {
	sa := &unix.SockaddrLinklayer{
		// Network byte order, as the kernel reads it.
		Protocol: binary.NativeEndian.Uint16(frame[12:14]),
		Ifindex:  index,
		Halen:    6,
	}
	copy(sa.Addr[:], frame[:6])
	return unix.Sendto(s.fd, frame, 0, sa)
}

func (s *sender) close() error {
	return unix.Close(s.fd)
}

// gratuitousFrames returns the frames of one round for addr announced with
// mac. IPv4: an RFC 5227 ARP announcement (a request whose sender and target
// IP are addr) and a gratuitous reply (target MAC = sender MAC, the form Linux
// takes as gratuitous), both broadcast, as some stacks honour only one form.
// IPv6: an unsolicited neighbor advertisement to all nodes with Override set,
// sourced from addr itself, which is now assigned here.
func gratuitousFrames(mac net.HardwareAddr, addr netip.Addr) ([][]byte, error) {
	if addr.Is4() {
		announcement, err := arpFrame(arp.OperationRequest, mac, addr, make(net.HardwareAddr, 6))
		if err != nil {
			return nil, err
		}
		reply, err := arpFrame(arp.OperationReply, mac, addr, mac)
		if err != nil {
			return nil, err
		}
		return [][]byte{announcement, reply}, nil
	}
	na, err := neighborAdvertisement(mac, addr)
	if err != nil {
		return nil, err
	}
	return [][]byte{na}, nil
}

// arpFrame returns a broadcast ARP frame from mac whose sender and target IP
// are both addr.
func arpFrame(op arp.Operation, mac net.HardwareAddr, addr netip.Addr, targetMAC net.HardwareAddr) ([]byte, error) {
	p, err := arp.NewPacket(op, mac, addr, targetMAC, addr)
	if err != nil {
		return nil, fmt.Errorf("building ARP packet for %s: %w", addr, err)
	}
	payload, err := p.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("building ARP packet for %s: %w", addr, err)
	}
	return (&ethernet.Frame{
		Destination: ethernet.Broadcast,
		Source:      mac,
		EtherType:   ethernet.EtherTypeARP,
		Payload:     payload,
	}).MarshalBinary()
}

// IPv6 constants for building a neighbor advertisement by hand.
const (
	ipv6HeaderLen = 40
	protoICMPv6   = 58
)

var (
	allNodes    = netip.MustParseAddr("ff02::1")
	allNodesMAC = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
)

// neighborAdvertisement returns an Ethernet frame carrying an unsolicited
// neighbor advertisement of addr at mac to all nodes.
func neighborAdvertisement(mac net.HardwareAddr, addr netip.Addr) ([]byte, error) {
	na := &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: addr,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac}},
	}
	msg, err := ndp.MarshalMessageChecksum(na, addr, allNodes)
	if err != nil {
		return nil, fmt.Errorf("building neighbor advertisement for %s: %w", addr, err)
	}
	packet := make([]byte, ipv6HeaderLen+len(msg))
	packet[0] = 6 << 4
	binary.BigEndian.PutUint16(packet[4:6], uint16(len(msg)))
	packet[6] = protoICMPv6
	packet[7] = ndp.HopLimit // receivers drop NDP with any other hop limit
	src, dst := addr.As16(), allNodes.As16()
	copy(packet[8:24], src[:])
	copy(packet[24:40], dst[:])
	copy(packet[ipv6HeaderLen:], msg)
	return (&ethernet.Frame{
		Destination: allNodesMAC,
		Source:      mac,
		EtherType:   ethernet.EtherTypeIPv6,
		Payload:     packet,
	}).MarshalBinary()
}

// burst is the gratuitous announcement of one address on one interface.
type burst struct {
	index  int
	cancel context.CancelFunc
}

// startBurstLocked announces addr on link at each offset of the schedule,
// from now. Called with a.mu held.
func (a *Announcer) startBurstLocked(logger logr.Logger, addr netip.Addr, link linkInfo) {
	a.stopBurstLocked(addr)
	frames, err := gratuitousFrames(link.mac, addr)
	if err != nil {
		logger.Error(err, "Not announcing address", "address", addr, "interface", link.name)
		return
	}
	// Detached from the caller's ctx: the burst outlives the SetAnnounced
	// call that started it and is ended by stopBurstLocked or Close.
	bctx, cancel := context.WithCancel(a.burstCtx)
	a.bursts[addr] = burst{index: link.index, cancel: cancel}
	logger = logger.WithValues("address", addr, "interface", link.name)
	logger.V(1).Info("Sending gratuitous announcements", "mac", link.mac, "rounds", len(a.opts.GratuitousSchedule))
	start := time.Now()
	a.wg.Go(func() {
		defer cancel()
		for _, at := range a.opts.GratuitousSchedule {
			if !sleepUntil(bctx, start.Add(at)) || !a.sendRound(bctx, logger, link, familyOf(addr), frames) {
				return
			}
		}
	})
}

// stopBurstLocked stops the burst of addr, if any. Once it returns nothing
// more is sent for addr. Called with a.mu held.
func (a *Announcer) stopBurstLocked(addr netip.Addr) {
	b, ok := a.bursts[addr]
	if !ok {
		return
	}
	// sendRound checks the context under the read lock, so after this write
	// lock no round is in flight or can start.
	a.sendMu.Lock()
	b.cancel()
	a.sendMu.Unlock()
	delete(a.bursts, addr)
}

// sendRound sends one round unless the burst was stopped, which it reports
// by returning false.
func (a *Announcer) sendRound(ctx context.Context, logger logr.Logger, link linkInfo, family Family, frames [][]byte) bool {
	a.sendMu.RLock()
	defer a.sendMu.RUnlock()
	if ctx.Err() != nil {
		return false
	}
	for _, f := range frames {
		if err := a.sender.send(link.index, f); err != nil {
			// Best effort: a neighbour that misses every round still asks
			// when its entry goes stale, and the kernel answers.
			logger.Error(err, "Sending gratuitous announcement")
			continue
		}
		if a.opts.OnGratuitous != nil {
			a.opts.OnGratuitous(link.name, family)
		}
	}
	return true
}

// sleepUntil waits for t and reports whether ctx is still alive.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
