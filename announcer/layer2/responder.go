package layer2

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv6"
	"k8s.io/klog/v2"

	"github.com/ironlb/ironlb/announcer/neighbor"
)

const (
	// writeTimeout bounds a send, so a wedged device queue cannot hold the
	// responder lock (and with it SetAnnounced) for long.
	writeTimeout = time.Second
	// readErrorBackoff keeps a persistent socket error (say, ENETDOWN while
	// the link is down) from spinning the read loop.
	readErrorBackoff = 200 * time.Millisecond
	// frameBufferSize holds any frame the filters admit in full.
	frameBufferSize = 2048
)

// linkKey identifies a responder: one per interface and family in use.
type linkKey struct {
	iface  string
	family neighbor.Family
}

// responder answers for the owned addresses of one family on one interface.
type responder struct {
	key    linkKey
	ifi    net.Interface
	conn   *packet.Conn
	groups *ndp.Conn // IPv6 only: holds solicited-node multicast memberships
	opts   *Options
	logger logr.Logger

	// ctx is cancelled on close, which ends every burst with it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu gates answering: the read loop answers under RLock after checking
	// ownership; add and remove take Lock, and remove stops the address's
	// burst. So once remove returns, nothing more is sent for that address.
	mu sync.RWMutex
	// owned maps each address to its gratuitous burst.
	owned map[netip.Addr]*neighbor.Burst
	// members counts owned addresses per solicited-node group (IPv6), since
	// addresses sharing their low 24 bits share a group.
	members map[netip.Addr]int
}

// openResponder opens the sockets for key on ifi and starts answering (for
// no address yet). Sockets are created in the calling thread's network
// namespace.
func openResponder(ctx context.Context, key linkKey, ifi net.Interface, opts *Options) (*responder, error) {
	var (
		filter []bpf.RawInstruction
		proto  ethernet.EtherType
		err    error
	)
	switch key.family {
	case neighbor.IPv4:
		filter, err = arpFilter()
		proto = ethernet.EtherTypeARP
	case neighbor.IPv6:
		filter, err = ndpFilter()
		proto = ethernet.EtherTypeIPv6
	default:
		err = fmt.Errorf("unknown address family %q", key.family)
	}
	if err != nil {
		return nil, err
	}
	// The filter is attached before bind, so no unfiltered frame is queued.
	conn, err := packet.Listen(&ifi, packet.Raw, int(proto), &packet.Config{Filter: filter})
	if err != nil {
		return nil, fmt.Errorf("opening packet socket on %s: %w", ifi.Name, err)
	}
	r := &responder{
		key:     key,
		ifi:     ifi,
		conn:    conn,
		opts:    opts,
		logger:  klog.FromContext(ctx).WithValues("interface", key.iface, "family", key.family),
		owned:   map[netip.Addr]*neighbor.Burst{},
		members: map[netip.Addr]int{},
	}
	if key.family == neighbor.IPv6 {
		if r.groups, err = listenGroups(&ifi); err != nil {
			_ = conn.Close()
			return nil, err
		}
	}
	// Detached from the caller's ctx: the responder outlives the
	// SetAnnounced call that opened it, and is ended by close.
	r.ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	r.wg.Go(r.serve)
	r.logger.V(2).Info("Started layer 2 responder", "mac", ifi.HardwareAddr)
	return r, nil
}

// listenGroups opens the ICMPv6 socket used only for multicast membership.
// It is bound to the unspecified address, so it works while the interface's
// link-local address is still tentative, and it accepts no messages: the
// packet socket does the reading.
func listenGroups(ifi *net.Interface) (*ndp.Conn, error) {
	c, _, err := ndp.Listen(ifi, ndp.Unspecified)
	if err != nil {
		return nil, fmt.Errorf("opening ICMPv6 socket on %s: %w", ifi.Name, err)
	}
	var f ipv6.ICMPFilter
	f.SetAll(true)
	if err := c.SetICMPFilter(&f); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("filtering ICMPv6 socket on %s: %w", ifi.Name, err)
	}
	return c, nil
}

// close stops the responder and waits for its goroutines.
func (r *responder) close() error {
	r.cancel()
	err := r.conn.Close() // unblocks the read loop
	if r.groups != nil {
		// Closing drops every membership with it.
		err = errors.Join(err, r.groups.Close())
	}
	r.wg.Wait()
	r.logger.V(2).Info("Stopped layer 2 responder")
	return err
}

// empty reports whether the responder owns no address.
func (r *responder) empty() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.owned) == 0
}

// add starts answering for addr and starts its gratuitous burst.
func (r *responder) add(addr netip.Addr) {
	start := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.owned[addr]; ok {
		return
	}
	burst := neighbor.NewBurst(r.ctx)
	r.owned[addr] = burst
	r.join(addr)
	r.wg.Go(func() { r.announce(burst, addr, start) })
}

// remove stops answering and announcing addr. Nothing is sent for addr once
// it returns.
func (r *responder) remove(addr netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	burst, ok := r.owned[addr]
	if !ok {
		return
	}
	burst.Stop()
	delete(r.owned, addr)
	r.leave(addr)
	r.logger.V(1).Info("Stopped answering for address", "address", addr)
}

// join adds addr's solicited-node group if it is the group's first address.
// A failure is logged, not returned: the address is still answered when the
// solicitation reaches us anyway (unicast, or a link that floods multicast).
// Called with mu held.
func (r *responder) join(addr netip.Addr) {
	if r.groups == nil {
		return
	}
	group, err := ndp.SolicitedNodeMulticast(addr)
	if err != nil {
		return
	}
	if r.members[group]++; r.members[group] > 1 {
		return
	}
	if err := r.groups.JoinGroup(group); err != nil {
		r.logger.Error(err, "Joining solicited-node multicast group; multicast solicitations may not reach us", "address", addr, "group", group)
	}
}

// leave drops addr's solicited-node group with its last address. Called with
// mu held.
func (r *responder) leave(addr netip.Addr) {
	if r.groups == nil {
		return
	}
	group, err := ndp.SolicitedNodeMulticast(addr)
	if err != nil {
		return
	}
	if r.members[group]--; r.members[group] > 0 {
		return
	}
	delete(r.members, group)
	if err := r.groups.LeaveGroup(group); err != nil {
		r.logger.Error(err, "Leaving solicited-node multicast group", "address", addr, "group", group)
	}
}

// serve reads and answers until the socket is closed.
func (r *responder) serve() {
	buf := make([]byte, frameBufferSize)
	for {
		n, _, err := r.conn.ReadFrom(buf)
		if err != nil {
			if r.ctx.Err() != nil {
				return
			}
			r.logger.Error(err, "Reading from packet socket")
			select {
			case <-r.ctx.Done():
				return
			case <-time.After(readErrorBackoff):
			}
			continue
		}
		r.handle(buf[:n])
	}
}

// handle answers frame b if it asks for an owned address.
func (r *responder) handle(b []byte) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	switch r.key.family {
	case neighbor.IPv4:
		r.handleARP(b)
	case neighbor.IPv6:
		r.handleNS(b)
	}
}

// owns reports whether addr is owned. Called with mu held.
func (r *responder) owns(addr netip.Addr) bool {
	_, ok := r.owned[addr]
	return ok
}

// handleARP answers an ARP request. Called with mu read-locked.
func (r *responder) handleARP(b []byte) {
	v, err := answerARP(b, r.ifi.HardwareAddr, r.owns)
	switch {
	case err != nil:
		r.logger.Error(err, "Building ARP reply")
	case v.conflict != nil:
		// Split brain or a misconfigured host. Not answered: a reply would
		// only prolong the flapping.
		r.logger.V(1).Info("Another host announced an address we own", "address", v.target, "otherMAC", v.conflict)
	case v.reply != nil:
		r.answer(v.reply, v.target, v.requester)
	}
}

// handleNS answers a neighbor solicitation. Called with mu read-locked.
func (r *responder) handleNS(b []byte) {
	s, ok := parseSolicitation(b)
	if !ok || !r.owns(s.target) {
		return
	}
	reply, err := answerNS(s, r.ifi.HardwareAddr)
	if err != nil {
		r.logger.Error(err, "Building neighbor advertisement", "address", s.target)
		return
	}
	if s.isDAD() {
		// Someone is configuring our address on their interface.
		r.logger.V(1).Info("Defending an owned address against a duplicate address detection probe", "address", s.target, "otherMAC", s.ethSrc)
	}
	r.answer(reply, s.target, s.src)
}

// answer sends reply for target to requester. Called with mu read-locked.
func (r *responder) answer(reply []byte, target netip.Addr, requester any) {
	if err := r.write(reply); err != nil {
		r.logWriteError(err, "Sending answer", target)
		return
	}
	if r.opts.OnAnswer != nil {
		r.opts.OnAnswer(r.key.iface, r.key.family)
	}
	if l := r.logger.V(4); l.Enabled() { // spares the hot path the arguments
		l.Info("Answered", "address", target, "requester", requester)
	}
}

// announce sends the gratuitous burst for addr, at the scheduled offsets
// from start, until the burst is stopped.
func (r *responder) announce(burst *neighbor.Burst, addr netip.Addr, start time.Time) {
	schedule := r.opts.GratuitousSchedule
	if len(schedule) == 0 {
		return
	}
	r.logger.V(1).Info("Taking over address: sending gratuitous announcements",
		"address", addr, "mac", r.ifi.HardwareAddr, "rounds", len(schedule), "over", schedule[len(schedule)-1])
	frames, err := neighbor.GratuitousFrames(r.ifi.HardwareAddr, addr)
	if err != nil {
		r.logger.Error(err, "Building gratuitous announcements", "address", addr)
		return
	}
	burst.Run(start, schedule, frames, func(frame []byte) {
		if err := r.write(frame); err != nil {
			r.logWriteError(err, "Sending gratuitous announcement", addr)
			return
		}
		if r.opts.OnGratuitous != nil {
			r.opts.OnGratuitous(r.key.iface, r.key.family)
		}
		r.logger.V(4).Info("Sent gratuitous announcement", "address", addr)
	})
}

// logWriteError logs a failed send, unless it failed because the responder
// is closing.
func (r *responder) logWriteError(err error, msg string, addr netip.Addr) {
	if r.ctx.Err() == nil {
		r.logger.Error(err, msg, "address", addr)
	}
}

// write sends one Ethernet frame.
func (r *responder) write(frame []byte) error {
	// Concurrent writers race to set the deadline, harmlessly: each sets
	// about the same instant.
	_ = r.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := r.conn.WriteTo(frame, &packet.Addr{HardwareAddr: net.HardwareAddr(frame[:6])})
	return err
}
