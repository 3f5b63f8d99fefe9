package vip

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/ironlb/ironlb/announcer/neighbor"
)

// DummyInterface is the dummy interface this package creates for addresses
// outside every node subnet, for a routing daemon to pick up.
const DummyInterface = "ironlb0"

// DefaultFallbackInterface carries those addresses when the kernel cannot
// create dummy interfaces.
const DefaultFallbackInterface = "lo"

var (
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("vip announcer closed")
	// ErrForeignAddress wraps the error for a wanted address that is
	// already assigned on this node, but not by this package (say, the
	// node's own address). It is left alone: neither marked nor removed.
	ErrForeignAddress = errors.New("assigned by someone else, not ironlb; left alone")
	// ErrUnmarkable wraps the error for an address the kernel would not
	// store with this package's marker (IPv6 before Linux 6.3). It is
	// removed again at once, since a crash would leave it behind unnoticed.
	ErrUnmarkable = errors.New("the kernel did not keep the ironlb marker (IFA_PROTO needs Linux 6.3 or later for IPv6); not keeping an address that could not be cleaned up after a crash")
)

// Options configure an Announcer. The zero value is ready to use.
type Options struct {
	// NetNSPath is the network namespace to work in, as a path such as
	// /run/netns/<name> or /proc/<pid>/ns/net. Empty means the namespace of
	// the thread calling New. Every socket is opened in New, so later calls
	// may come from any goroutine.
	NetNSPath string
	// FallbackInterface carries the addresses outside every node subnet when
	// the kernel has no dummy interface support. Default "lo".
	FallbackInterface string
	// GratuitousSchedule holds the offsets, from the moment an address is
	// added, at which a gratuitous round is sent (for IPv4 an ARP
	// announcement and a gratuitous ARP reply, for IPv6 an unsolicited
	// neighbor advertisement). Nil means neighbor.DefaultSchedule, 0,
	// 0.5 s, 1.1 s, 2.2 s and 4.4 s, as in layer2 mode; an empty non-nil
	// slice disables announcements.
	GratuitousSchedule []time.Duration
	// OnGratuitous, if set, is called for every gratuitous packet sent, for
	// example to count them. It must not block.
	OnGratuitous func(iface string, family neighbor.Family)
}

// Announcer assigns the addresses this node owns to its interfaces, so the
// kernel itself answers ARP, NDP and connections for them. It is safe for
// concurrent use.
type Announcer struct {
	opts  Options
	links *netlink.Handle
	addrs *addrTable
	// sender is nil when gratuitous packets are disabled or cannot be sent.
	sender *sender

	mu     sync.Mutex
	closed bool
	// noDummy is set once the kernel refused to create a dummy interface.
	noDummy bool
	bursts  map[netip.Addr]burst

	// offSubnet is the interface in use for addresses outside every node
	// subnet; "" until first needed.
	offSubnet atomic.Pointer[string]

	// wg tracks the bursts' goroutines.
	wg sync.WaitGroup
}

// New opens the netlink and packet sockets in the network namespace of
// opts.NetNSPath. It changes nothing on the node: call Cleanup first to
// remove what an earlier run left behind.
//
// Adding and removing addresses needs CAP_NET_ADMIN. Gratuitous packets need
// CAP_NET_RAW as well; without it they are disabled with one log line, and
// neighbours learn a moved address when their cache entry goes stale
// (seconds to a minute).
func New(ctx context.Context, opts Options) (*Announcer, error) {
	logger := klog.FromContext(ctx)
	if opts.FallbackInterface == "" {
		opts.FallbackInterface = DefaultFallbackInterface
	}
	opts.GratuitousSchedule = neighbor.NormalizeSchedule(opts.GratuitousSchedule)

	a := &Announcer{opts: opts, bursts: map[netip.Addr]burst{}}
	var senderErr error
	open := func() error {
		var err error
		if a.links, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
			return fmt.Errorf("opening netlink handle: %w", err)
		}
		if err := a.links.SetSocketTimeout(netlinkTimeout); err != nil {
			a.links.Close()
			return err
		}
		if a.addrs, err = newAddrTable(); err != nil {
			a.links.Close()
			return err
		}
		if len(opts.GratuitousSchedule) > 0 {
			a.sender, senderErr = openSender()
		}
		return nil
	}
	var err error
	if opts.NetNSPath == "" {
		err = open()
	} else {
		err = inNetNS(opts.NetNSPath, open)
	}
	if err != nil {
		return nil, err
	}
	if senderErr != nil {
		logger.Error(senderErr, "Gratuitous ARP and neighbor advertisements are disabled (they need CAP_NET_RAW); neighbours will learn moved addresses only when their cache entries go stale")
	}
	return a, nil
}

// inNetNS runs fn on a fresh OS thread switched into the namespace at path.
// The thread is never switched back: its goroutine ends locked, so the
// runtime throws the thread away rather than reuse it in the wrong namespace.
func inNetNS(path string, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		ns, err := netns.GetFromPath(path)
		if err != nil {
			done <- fmt.Errorf("opening network namespace %s: %w", path, err)
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			done <- fmt.Errorf("entering network namespace %s: %w", path, err)
			return
		}
		done <- fn()
	}()
	return <-done
}

// OffSubnetInterface returns the interface that carries addresses outside
// every node subnet: DummyInterface, or the fallback interface on kernels
// without dummy support. It is "" until such an address was first wanted.
func (a *Announcer) OffSubnetInterface() string {
	if p := a.offSubnet.Load(); p != nil {
		return *p
	}
	return ""
}

// SetAnnounced makes the set of addresses this package has assigned exactly
// want, which maps each address to the interface to assign it to; ""
// means the address is outside every node subnet and goes on the dummy (or
// fallback) interface. An address newly assigned to an interface with a MAC
// gets a gratuitous burst.
//
// The kernel is the record, not memory: each call lists the namespace's
// addresses and repairs whatever differs, including what an earlier process
// left or what someone else removed. Only addresses carrying this package's
// marker are ever removed. Entries that cannot be applied (invalid address,
// missing interface, an address already assigned by someone else, a netlink
// failure) are reported in the returned error while the rest is applied;
// calling again retries them.
func (a *Announcer) SetAnnounced(ctx context.Context, want map[netip.Addr]string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	desired, errs := normalizeWant(want)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	return errors.Join(append(errs, a.reconcileLocked(ctx, desired)...)...)
}

// Cleanup removes every address this package ever added, on any interface,
// found by its marker, and the dummy interface if nothing else is on it. Call
// it before the first SetAnnounced, so nothing a killed process left behind
// stays, and at shutdown.
func (a *Announcer) Cleanup(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	errs := a.reconcileLocked(ctx, nil)
	if err := a.removeDummyLocked(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Close stops every gratuitous burst and closes the sockets. It leaves the
// addresses in place (Cleanup removes them). Later calls do nothing.
func (a *Announcer) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	for addr := range a.bursts {
		a.stopBurstLocked(addr)
	}
	a.mu.Unlock()

	a.wg.Wait()
	var err error
	if a.sender != nil {
		err = a.sender.close()
	}
	a.addrs.close()
	a.links.Close()
	return err
}

// normalizeWant validates want, unmapping IPv4-mapped IPv6 addresses.
func normalizeWant(want map[netip.Addr]string) (map[netip.Addr]string, []error) {
	var errs []error
	out := make(map[netip.Addr]string, len(want))
	for addr, iface := range want {
		a := addr.Unmap()
		prev, dup := out[a]
		switch {
		case !a.IsGlobalUnicast() || a.Zone() != "":
			errs = append(errs, fmt.Errorf("%s: not a global unicast address", addr))
		case dup && prev != iface:
			errs = append(errs, fmt.Errorf("%s: wanted on both %q and %q", a, prev, iface))
			delete(out, a)
		default:
			out[a] = iface
		}
	}
	return out, errs
}

// linkInfo is what reconciling needs of an interface.
type linkInfo struct {
	index int
	name  string
	mac   net.HardwareAddr
	// announce is set when gratuitous packets make sense on the link: it
	// has an Ethernet address and does ARP (so not lo, not a dummy).
	announce bool
}

func linkInfoOf(l netlink.Link) linkInfo {
	attrs := l.Attrs()
	return linkInfo{
		index: attrs.Index,
		name:  attrs.Name,
		mac:   attrs.HardwareAddr,
		announce: len(attrs.HardwareAddr) == 6 && attrs.Flags&net.FlagLoopback == 0 &&
			attrs.RawFlags&unix.IFF_NOARP == 0,
	}
}

// reconcileLocked makes the namespace's marked addresses exactly desired
// (nil: none) and returns what failed. Called with a.mu held.
func (a *Announcer) reconcileLocked(ctx context.Context, desired map[netip.Addr]string) []error {
	logger := klog.FromContext(ctx)
	var errs []error

	targets, unresolved, linkErrs := a.resolveLocked(logger, desired)
	errs = append(errs, linkErrs...)

	// Bursts for addresses no longer wanted there stop first: nothing is
	// announced for an address that is going away.
	for addr, b := range a.bursts {
		if t, ok := targets[addr]; !unresolved[addr] && (!ok || t.index != b.index) {
			a.stopBurstLocked(addr)
		}
	}

	current, err := a.addrs.list()
	if err != nil {
		// Without the list nothing can be told apart safely.
		return append(errs, err)
	}
	byAddr := map[netip.Addr][]kernelAddr{}
	for _, ka := range current {
		byAddr[ka.addr] = append(byAddr[ka.addr], ka)
	}
	names := linkNames{h: a.links}

	// Removals before additions, so a moving address is never on two
	// interfaces at once.
	kept := map[netip.Addr]bool{}
	for _, addr := range slices.SortedFunc(maps.Keys(byAddr), netip.Addr.Compare) {
		if unresolved[addr] {
			// Wanted, but its interface could not be looked up (maybe a
			// transient error): left as it is rather than withdrawn.
			continue
		}
		for _, ka := range byAddr[addr] {
			if !ka.ours() {
				continue
			}
			if t, ok := targets[addr]; ok && t.index == ka.index && ka.prefixLen == hostBits(addr) {
				kept[addr] = true
				continue
			}
			if err := ctx.Err(); err != nil {
				return append(errs, err)
			}
			name := names.of(ka.index)
			if err := a.addrs.del(ka); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
				errs = append(errs, fmt.Errorf("removing %s from %s: %w", addr, name, err))
				continue
			}
			logger.V(1).Info("Removed address", "address", addr, "interface", name)
		}
	}

	var added []netip.Addr
	for _, addr := range slices.SortedFunc(maps.Keys(targets), netip.Addr.Compare) {
		if kept[addr] {
			continue
		}
		t := targets[addr]
		if i := slices.IndexFunc(byAddr[addr], func(ka kernelAddr) bool { return !ka.ours() }); i >= 0 {
			ka := byAddr[addr][i]
			errs = append(errs, fmt.Errorf("%s wanted on %s: %s/%d on %s is %w",
				addr, t.name, addr, ka.prefixLen, names.of(ka.index), ErrForeignAddress))
			continue
		}
		if err := ctx.Err(); err != nil {
			return append(errs, err)
		}
		if err := a.addrs.add(t.index, t.name, addr); err != nil {
			errs = append(errs, fmt.Errorf("adding %s to %s: %w", addr, t.name, err))
			continue
		}
		added = append(added, addr)
	}
	if len(added) == 0 {
		return errs
	}

	// Read back what was added: an address the kernel stored without the
	// marker would be invisible to Cleanup after a crash, so it goes again.
	current, err = a.addrs.list()
	if err != nil {
		return append(errs, fmt.Errorf("checking the addresses just added: %w", err))
	}
	marked := map[netip.Addr]bool{}
	for _, ka := range current {
		if t, ok := targets[ka.addr]; ok && t.index == ka.index && ka.ours() {
			marked[ka.addr] = true
		}
	}
	for _, addr := range added {
		t := targets[addr]
		if !marked[addr] {
			if err := a.addrs.del(kernelAddr{addr: addr, prefixLen: hostBits(addr), index: t.index, label: labelFor(t.name)}); err != nil {
				logger.Error(err, "Removing an address the kernel did not mark", "address", addr, "interface", t.name)
			}
			errs = append(errs, fmt.Errorf("adding %s to %s: %w", addr, t.name, ErrUnmarkable))
			continue
		}
		logger.V(1).Info("Added address", "address", addr, "interface", t.name)
		if t.announce && a.sender != nil && len(a.opts.GratuitousSchedule) > 0 {
			a.startBurstLocked(logger, addr, t)
		}
	}
	return errs
}

// resolveLocked looks up the interface of every desired address, once per
// name. Addresses whose interface cannot be used are reported and returned
// as unresolved.
func (a *Announcer) resolveLocked(logger logr.Logger, desired map[netip.Addr]string) (targets map[netip.Addr]linkInfo, unresolved map[netip.Addr]bool, errs []error) {
	type lookup struct {
		link linkInfo
		err  error
	}
	seen := map[string]lookup{}
	targets = make(map[netip.Addr]linkInfo, len(desired))
	unresolved = map[netip.Addr]bool{}
	for _, addr := range slices.SortedFunc(maps.Keys(desired), netip.Addr.Compare) {
		name := desired[addr]
		r, ok := seen[name]
		if !ok {
			if name == "" {
				r.link, r.err = a.offSubnetLinkLocked(logger)
			} else {
				r.link, r.err = a.linkByName(name)
			}
			seen[name] = r
		}
		if r.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, r.err))
			unresolved[addr] = true
			continue
		}
		targets[addr] = r.link
	}
	return targets, unresolved, errs
}

func (a *Announcer) linkByName(name string) (linkInfo, error) {
	l, err := a.links.LinkByName(name)
	if err != nil {
		return linkInfo{}, fmt.Errorf("looking up interface %q: %w", name, err)
	}
	return linkInfoOf(l), nil
}

// offSubnetLinkLocked returns the interface for addresses outside every node
// subnet: the dummy interface, created and set up if needed, or the fallback
// on a kernel without dummy support (decided once, and logged once).
// Gratuitous packets are never sent there: no neighbour has those addresses
// on its link, a routing daemon announces them. Called with a.mu held.
func (a *Announcer) offSubnetLinkLocked(logger logr.Logger) (linkInfo, error) {
	if !a.noDummy {
		l, err := a.ensureDummy(logger)
		switch {
		case err == nil:
			a.setOffSubnet(DummyInterface)
			return l, nil
		case errors.Is(err, unix.EOPNOTSUPP):
			a.noDummy = true
			logger.Info("This kernel cannot create dummy interfaces (no dummy module); addresses outside every node subnet go on the fallback interface instead",
				"dummy", DummyInterface, "fallback", a.opts.FallbackInterface, "err", err)
		default:
			return linkInfo{}, err
		}
	}
	l, err := a.linkByName(a.opts.FallbackInterface)
	if err != nil {
		return linkInfo{}, fmt.Errorf("fallback for addresses outside every node subnet: %w", err)
	}
	a.setOffSubnet(l.name)
	l.announce = false
	return l, nil
}

func (a *Announcer) setOffSubnet(name string) {
	if a.OffSubnetInterface() != name {
		a.offSubnet.Store(&name)
	}
}

// ensureDummy returns DummyInterface, creating it and setting it up as
// needed. An existing link of that name that is not a dummy is refused
// rather than taken over.
func (a *Announcer) ensureDummy(logger logr.Logger) (linkInfo, error) {
	l, err := a.links.LinkByName(DummyInterface)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		d := &netlink.Dummy{LinkAttrs: netlink.NewLinkAttrs()}
		d.Name = DummyInterface
		if err := a.links.LinkAdd(d); err != nil {
			return linkInfo{}, fmt.Errorf("creating dummy interface %s: %w", DummyInterface, err)
		}
		logger.Info("Created dummy interface for addresses outside every node subnet", "interface", DummyInterface)
		if l, err = a.links.LinkByName(DummyInterface); err != nil {
			return linkInfo{}, fmt.Errorf("looking up %s: %w", DummyInterface, err)
		}
	case err != nil:
		return linkInfo{}, fmt.Errorf("looking up %s: %w", DummyInterface, err)
	case l.Type() != "dummy":
		return linkInfo{}, fmt.Errorf("interface %s exists but is a %s, not a dummy; not using it", DummyInterface, l.Type())
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		// A routing daemon ignores addresses on a down interface.
		if err := a.links.LinkSetUp(l); err != nil {
			return linkInfo{}, fmt.Errorf("setting %s up: %w", DummyInterface, err)
		}
	}
	info := linkInfoOf(l)
	info.announce = false
	return info, nil
}

// removeDummyLocked deletes DummyInterface when it holds no address but
// link-local ones, so an uninstalled ironlb leaves no interface behind.
// Called with a.mu held, after the marked addresses are gone.
func (a *Announcer) removeDummyLocked(ctx context.Context) error {
	l, err := a.links.LinkByName(DummyInterface)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		return nil
	case err != nil:
		return fmt.Errorf("looking up %s: %w", DummyInterface, err)
	case l.Type() != "dummy":
		return nil
	}
	addrs, err := a.addrs.list()
	if err != nil {
		return err
	}
	for _, ka := range addrs {
		if ka.index == l.Attrs().Index && !ka.addr.IsLinkLocalUnicast() {
			return nil // someone else's: keep the interface
		}
	}
	if err := a.links.LinkDel(l); err != nil {
		return fmt.Errorf("deleting %s: %w", DummyInterface, err)
	}
	klog.FromContext(ctx).Info("Deleted dummy interface", "interface", DummyInterface)
	return nil
}

// linkNames names interfaces by index for messages, asking the kernel once
// per index.
type linkNames struct {
	h     *netlink.Handle
	cache map[int]string
}

func (n *linkNames) of(index int) string {
	if name, ok := n.cache[index]; ok {
		return name
	}
	name := fmt.Sprintf("ifindex %d", index)
	if l, err := n.h.LinkByIndex(index); err == nil {
		name = l.Attrs().Name
	}
	if n.cache == nil {
		n.cache = map[int]string{}
	}
	n.cache[index] = name
	return name
}
