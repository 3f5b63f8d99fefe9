package main

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// memoryNetwork carries the simulated speakers' memberlist packets and
// streams inside the process (-transport memory). Over loopback UDP each
// packet costs two system calls, and memberlist's UDP transport reads each
// into a fresh 64 KB buffer: at a few dozen packets a second per speaker,
// hundreds of speakers make gigabytes of garbage a second in the one heap
// they share, where a real node's speaker makes megabytes in its own. Here a packet is
// handed over as it was sent. Like UDP, a packet to a full queue or a
// stopped member is lost without a word, and a stream to a stopped member
// is refused.
type memoryNetwork struct {
	mu      sync.RWMutex
	hosts   map[string]*memoryTransport // by "ip:port"
	dropped atomic.Int64
}

func newMemoryNetwork() *memoryNetwork {
	return &memoryNetwork{hosts: map[string]*memoryTransport{}}
}

// packetQueue is how many packets a member's transport holds before it
// drops: a real socket's receive buffer (memberlist asks for 2 MB) holds
// thousands of small packets.
const packetQueue = 4096

// transport returns the transport of the member at addr (ip:port).
func (n *memoryNetwork) transport(addr *net.UDPAddr) *memoryTransport {
	t := &memoryTransport{network: n, addr: addr, packets: make(chan *memberlist.Packet, packetQueue),
		streams: make(chan net.Conn), stopped: make(chan struct{})}
	n.mu.Lock()
	n.hosts[addr.String()] = t
	n.mu.Unlock()
	return t
}

func (n *memoryNetwork) peer(addr string) *memoryTransport {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.hosts[addr]
}

// memoryTransport is one member's end of a memoryNetwork.
type memoryTransport struct {
	network *memoryNetwork
	addr    *net.UDPAddr
	packets chan *memberlist.Packet
	streams chan net.Conn
	stop    sync.Once
	stopped chan struct{}
}

var _ memberlist.NodeAwareTransport = (*memoryTransport)(nil)

func (t *memoryTransport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return t.addr.IP, t.addr.Port, nil
}

func (t *memoryTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress hands the packet over; memberlist builds every packet
// afresh, but a copy keeps the receiver clear of the sender's buffer.
func (t *memoryTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	now := time.Now()
	dest := t.network.peer(a.Addr)
	if dest == nil {
		return now, nil
	}
	select {
	case <-dest.stopped:
	case dest.packets <- &memberlist.Packet{Buf: slices.Clone(b), From: t.addr, Timestamp: now}:
	default:
		t.network.dropped.Add(1)
	}
	return now, nil
}

func (t *memoryTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

func (t *memoryTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

var errRefused = errors.New("connection refused")

// DialAddressTimeout connects a pipe to the member at a, as TCP would.
func (t *memoryTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	dest := t.network.peer(a.Addr)
	if dest == nil {
		return nil, fmt.Errorf("dial %s: %w", a.Addr, errRefused)
	}
	local, remote := net.Pipe()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case dest.streams <- remote:
		return local, nil
	case <-dest.stopped:
		err := fmt.Errorf("dial %s: %w", a.Addr, errRefused)
		_, _ = local.Close(), remote.Close()
		return nil, err
	case <-timer.C:
		_, _ = local.Close(), remote.Close()
		return nil, fmt.Errorf("dial %s: i/o timeout", a.Addr)
	}
}

func (t *memoryTransport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown takes the member off the network: what is sent to it from now
// on is lost, as to a crashed node.
func (t *memoryTransport) Shutdown() error {
	t.stop.Do(func() {
		close(t.stopped)
		t.network.mu.Lock()
		if t.network.hosts[t.addr.String()] == t {
			delete(t.network.hosts, t.addr.String())
		}
		t.network.mu.Unlock()
	})
	return nil
}
