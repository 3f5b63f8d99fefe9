package framework

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"

	"github.com/vishvananda/netns"
)

// InNetns runs fn on an OS thread switched into the named network namespace
// (one under /run/netns, as `ip netns add` creates), and returns fn's error.
//
// Sockets fn opens stay in that namespace for their whole life, whichever
// thread later uses them; that is how the test process reaches servers in a
// namespace without any address or route in its own. The caller's goroutine
// and thread are never switched: fn runs on a fresh goroutine locked to its
// thread, which is switched back before it is released. If switching back
// fails the thread stays locked, so the runtime retires it when the goroutine
// ends instead of reusing a thread in the wrong namespace.
//
// fn must not start goroutines that open sockets: they run on other threads,
// in the caller's namespace.
func InNetns(name string, fn func() error) error {
	if name == "" {
		// Running fn here instead would silently act on the test process's
		// own namespace.
		return errors.New("InNetns: empty namespace name")
	}
	target, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("network namespace %q: %w", name, err)
	}
	defer target.Close()

	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := enter(target); err != nil {
			// The thread may be half-switched: keep it locked so it dies
			// with this goroutine.
			errc <- fmt.Errorf("enter network namespace %q: %w", name, err)
			return
		}
		fnErr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(fnErr, fmt.Errorf("return from network namespace %q: %w", name, err))
			return // still locked: see above
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}

// enter switches the calling thread into target and checks that it landed
// there: code run by InNetns may change namespace-wide settings, which must
// never hit the wrong namespace.
func enter(target netns.NsHandle) error {
	if err := netns.Set(target); err != nil {
		return err
	}
	cur, err := netns.Get()
	if err != nil {
		return err
	}
	defer cur.Close()
	if !cur.Equal(target) {
		return fmt.Errorf("thread is in %s after setns, not %s", cur, target)
	}
	return nil
}

// Dialer is the signature of net.Dialer.DialContext, as used by
// http.Transport.DialContext and rest.Config.Dial.
type Dialer = func(ctx context.Context, network, addr string) (net.Conn, error)

// NetnsDialer returns a Dialer that opens connections from inside the named
// network namespace. addr's host must be an IP address: name resolution and
// Happy Eyeballs would run on other goroutines, in the wrong namespace (and
// the lab has no DNS anyway).
func NetnsDialer(name string) Dialer {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if err := checkIPLiteral(addr); err != nil {
			return nil, err
		}
		var conn net.Conn
		err := InNetns(name, func() error {
			var err error
			conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		if err != nil {
			if conn != nil { // dialled, but the thread could not switch back
				conn.Close()
			}
			return nil, fmt.Errorf("dial %s %s in network namespace %s: %w", network, addr, name, err)
		}
		return conn, nil
	}
}

// ListenInNetns is net.Listen inside the named network namespace. The
// listener (and every connection it accepts) belongs to that namespace.
func ListenInNetns(name, network, addr string) (net.Listener, error) {
	var l net.Listener
	err := InNetns(name, func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		if l != nil {
			l.Close()
		}
		return nil, fmt.Errorf("listen %s %s in network namespace %s: %w", network, addr, name, err)
	}
	return l, nil
}

func checkIPLiteral(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return fmt.Errorf("dial %s: in a network namespace only IP addresses can be dialled, not host names", addr)
	}
	return nil
}
