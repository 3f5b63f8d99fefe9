package layer2

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"k8s.io/klog/v2"

	"github.com/ironlb/ironlb/announcer/neighbor"
)

// ErrClosed is returned by SetAnnounced after Close.
var ErrClosed = errors.New("layer2 announcer closed")

// Options configure an Announcer. The zero value is ready to use.
type Options struct {
	// GratuitousSchedule holds the offsets, from the moment an address is
	// taken over, at which a gratuitous round is sent (for IPv4 an ARP
	// announcement and a gratuitous ARP reply, for IPv6 an unsolicited
	// neighbor advertisement). Nil means neighbor.DefaultSchedule, 0,
	// 0.5 s, 1.1 s, 2.2 s and 4.4 s; an empty non-nil slice disables
	// announcements.
	GratuitousSchedule []time.Duration
	// OnGratuitous, if set, is called for every gratuitous packet sent, for
	// example to count them. It must not block.
	OnGratuitous func(iface string, family neighbor.Family)
	// OnAnswer, if set, is called for every ARP reply or neighbor
	// advertisement sent in answer to a request. It must not block.
	OnAnswer func(iface string, family neighbor.Family)
}

// Announcer answers ARP and NDP for the addresses this node owns, on the
// interfaces they are announced on. It is safe for concurrent use.
type Announcer struct {
	opts Options

	mu         sync.Mutex
	closed     bool
	responders map[linkKey]*responder
	// active holds the addresses being answered, and by which responder.
	active map[netip.Addr]*responder
}

// New returns an Announcer owning no address. It opens nothing until
// SetAnnounced hands it addresses.
func New(opts Options) *Announcer {
	opts.GratuitousSchedule = neighbor.NormalizeSchedule(opts.GratuitousSchedule)
	return &Announcer{
		opts:       opts,
		responders: map[linkKey]*responder{},
		active:     map[netip.Addr]*responder{},
	}
}

// SetAnnounced makes the set of owned addresses exactly want, which maps each
// address to the name of the interface to answer on. Addresses that are new
// (or moved to another interface) are answered from the moment it returns
// and get a gratuitous burst; removed ones are neither answered nor announced
// any more once it returns.
//
// Sockets for an interface and family are opened with its first address and
// closed with its last one, in the calling thread's network namespace. An
// interface that disappeared or changed its MAC since its sockets were
// opened is reopened, and its addresses announced again.
//
// Entries that cannot be served (invalid address, missing interface, socket
// failure) are reported in the returned error while the rest is applied;
// their addresses stay unannounced, and calling again with the same set
// retries them.
func (a *Announcer) SetAnnounced(ctx context.Context, want map[netip.Addr]string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	logger := klog.FromContext(ctx)
	desired, errs := normalizeWant(want)

	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}

	// Sockets stay bound to the ifindex they were opened on and frames carry
	// the MAC read then: drop responders whose interface is gone or changed.
	for key, r := range a.responders {
		ifi, err := lookupInterface(key.iface)
		var notFound netlink.LinkNotFoundError
		switch {
		case errors.As(err, &notFound):
		case err != nil:
			logger.Error(err, "Checking interface; keeping its responder", "interface", key.iface)
			continue
		case ifi.Index == r.ifi.Index && slices.Equal(ifi.HardwareAddr, r.ifi.HardwareAddr):
			continue
		}
		logger.Info("Interface changed or vanished: reopening its responder", "interface", key.iface, "family", key.family)
		a.closeResponderLocked(logger, key)
	}

	// Removals first, so an address moving between interfaces is never
	// answered on both.
	for addr, r := range a.active {
		if iface, ok := desired[addr]; ok && iface == r.key.iface {
			continue
		}
		r.remove(addr)
		delete(a.active, addr)
		if r.empty() {
			a.closeResponderLocked(logger, r.key)
		}
	}

	for addr, iface := range desired {
		if _, ok := a.active[addr]; ok {
			continue
		}
		r, err := a.responderLocked(ctx, linkKey{iface: iface, family: neighbor.FamilyOf(addr)})
		if err != nil {
			errs = append(errs, fmt.Errorf("announcing %s on %s: %w", addr, iface, err))
			continue
		}
		r.add(addr)
		a.active[addr] = r
	}
	return errors.Join(errs...)
}

// normalizeWant validates want, unmapping IPv4-mapped IPv6 addresses.
func normalizeWant(want map[netip.Addr]string) (map[netip.Addr]string, []error) {
	var errs []error
	out := make(map[netip.Addr]string, len(want))
	for addr, iface := range want {
		a := addr.Unmap()
		switch {
		case !a.IsGlobalUnicast() || a.Zone() != "":
			errs = append(errs, fmt.Errorf("%s: not a global unicast address", addr))
		case iface == "":
			errs = append(errs, fmt.Errorf("%s: no interface", addr))
		case out[a] != "" && out[a] != iface:
			errs = append(errs, fmt.Errorf("%s: wanted on both %s and %s", a, out[a], iface))
			delete(out, a)
		default:
			out[a] = iface
		}
	}
	return out, errs
}

// responderLocked returns the responder for key, opening it if needed.
func (a *Announcer) responderLocked(ctx context.Context, key linkKey) (*responder, error) {
	if r, ok := a.responders[key]; ok {
		return r, nil
	}
	ifi, err := lookupInterface(key.iface)
	if err != nil {
		return nil, err
	}
	r, err := openResponder(ctx, key, ifi, &a.opts)
	if err != nil {
		return nil, err
	}
	a.responders[key] = r
	return r, nil
}

// closeResponderLocked closes the responder for key and forgets its
// addresses.
func (a *Announcer) closeResponderLocked(logger klog.Logger, key linkKey) {
	r := a.responders[key]
	delete(a.responders, key)
	for addr, owner := range a.active {
		if owner == r {
			delete(a.active, addr)
		}
	}
	if err := r.close(); err != nil {
		logger.Error(err, "Closing responder", "interface", key.iface, "family", key.family)
	}
}

// lookupInterface returns the current index and MAC of the named interface.
// It asks for that one link rather than listing all of them, as
// net.InterfaceByName does, which matters on nodes with many pod veths.
func lookupInterface(name string) (net.Interface, error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return net.Interface{}, fmt.Errorf("looking up interface %q: %w", name, err)
	}
	attrs := link.Attrs()
	if len(attrs.HardwareAddr) != 6 {
		return net.Interface{}, fmt.Errorf("interface %q has no Ethernet address", name)
	}
	return net.Interface{
		Index:        attrs.Index,
		MTU:          attrs.MTU,
		Name:         attrs.Name,
		HardwareAddr: attrs.HardwareAddr,
	}, nil
}

// Run blocks until ctx is done, then closes the Announcer. It lets the
// speaker start it like its other components (go a.Run(ctx)); calling Close
// directly is equivalent.
func (a *Announcer) Run(ctx context.Context) error {
	<-ctx.Done()
	return a.Close()
}

// Close stops answering for every address, stops every burst and closes all
// sockets, returning once all goroutines have ended. Later calls do nothing.
func (a *Announcer) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	var errs []error
	for key, r := range a.responders {
		errs = append(errs, r.close())
		delete(a.responders, key)
	}
	clear(a.active)
	return errors.Join(errs...)
}
