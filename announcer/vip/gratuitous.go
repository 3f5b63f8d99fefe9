package vip

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	"github.com/ironlb/ironlb/announcer/neighbor"
)

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

// burst is the gratuitous announcement of one address on one interface.
type burst struct {
	*neighbor.Burst
	index int
}

// startBurstLocked announces addr on link at each offset of the schedule,
// from now. Called with a.mu held.
func (a *Announcer) startBurstLocked(logger logr.Logger, addr netip.Addr, link linkInfo) {
	a.stopBurstLocked(addr)
	frames, err := neighbor.GratuitousFrames(link.mac, addr)
	if err != nil {
		logger.Error(err, "Not announcing address", "address", addr, "interface", link.name)
		return
	}
	// Detached from the caller's ctx: the burst outlives the SetAnnounced
	// call that started it, and ends with stopBurstLocked, which Close
	// calls for every burst.
	b := burst{Burst: neighbor.NewBurst(context.Background()), index: link.index}
	a.bursts[addr] = b
	logger = logger.WithValues("address", addr, "interface", link.name)
	logger.V(1).Info("Sending gratuitous announcements", "mac", link.mac, "rounds", len(a.opts.GratuitousSchedule))
	start, family := time.Now(), neighbor.FamilyOf(addr)
	a.wg.Go(func() {
		b.Run(start, a.opts.GratuitousSchedule, frames, func(frame []byte) {
			if err := a.sender.send(link.index, frame); err != nil {
				// Best effort: a neighbour that misses every round still
				// asks when its entry goes stale, and the kernel answers.
				logger.Error(err, "Sending gratuitous announcement")
				return
			}
			if a.opts.OnGratuitous != nil {
				a.opts.OnGratuitous(link.name, family)
			}
		})
	})
}

// stopBurstLocked stops the burst of addr, if any. Once it returns nothing
// more is sent for addr. Called with a.mu held.
func (a *Announcer) stopBurstLocked(addr netip.Addr) {
	if b, ok := a.bursts[addr]; ok {
		b.Stop()
		delete(a.bursts, addr)
	}
}
