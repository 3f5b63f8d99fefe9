package netlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// NodeAnswer is the body a node's VIP server answers with: "node=<name>\n".
func NodeAnswer(node string) string { return "node=" + node + "\n" }

// ServeVIPs makes every node accept traffic for the VIP ranges and answer
// HTTP on port with NodeAnswer(node name), until ctx ends or the lab closes.
// v4 and v6 must lie within VIPv4 and VIPv6; an invalid (zero) prefix skips
// that family.
//
// This stands in for kube-proxy on the node. kube-proxy DNATs packets for a
// Service's load-balancer IP to a backend pod; what matters to ironlb is
// only that a node accepts such packets once they reach it, without owning
// (or announcing) the address. A local route does exactly that:
//
//	ip route add local 203.0.113.0/24 dev lo table local
//
// makes the kernel deliver packets for the whole range to local sockets,
// here a server listening on 0.0.0.0 and [::]. Unlike an address on an
// interface, a local route is not answered for by NDP, and with arp_ignore=1
// not by ARP either ("reply only for addresses configured on the receiving
// interface"). So which node gets the traffic is decided only by what ironlb
// announces (ARP/NDP answers, BGP routes), which is what the tests observe.
// The servers run in the test process, on listeners opened inside each
// node's namespace.
func (l *Lab) ServeVIPs(ctx context.Context, v4, v6 netip.Prefix, port int) error {
	if v4.IsValid() && (!v4.Addr().Is4() || !VIPv4.Contains(v4.Addr()) || v4.Bits() < VIPv4.Bits()) {
		return fmt.Errorf("netlab: ServeVIPs: %s is not within %s", v4, VIPv4)
	}
	if v6.IsValid() && (!v6.Addr().Is6() || !VIPv6.Contains(v6.Addr()) || v6.Bits() < VIPv6.Bits()) {
		return fmt.Errorf("netlab: ServeVIPs: %s is not within %s", v6, VIPv6)
	}
	if port <= 0 || port > 65535 {
		return fmt.Errorf("netlab: ServeVIPs: port %d", port)
	}
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return errors.New("netlab: ServeVIPs: lab is closed")
	}

	return parallel(l.nodes, func(n *Host) error {
		var cmds []string
		if v4.IsValid() {
			if err := setSysctls(n.Netns,
				"net.ipv4.conf.all.arp_ignore", "1",
				"net.ipv4.conf."+n.Iface+".arp_ignore", "1"); err != nil {
				return err
			}
			cmds = append(cmds, fmt.Sprintf("route replace local %s dev lo table local", v4.Masked()))
		}
		if v6.IsValid() {
			cmds = append(cmds, fmt.Sprintf("route replace local %s dev lo table local", v6.Masked()))
		}
		if err := ipBatch(ctx, n.Netns, cmds); err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
		for _, addr := range []struct {
			network, addr string
			on            bool
		}{
			{"tcp4", "0.0.0.0", v4.IsValid()},
			{"tcp6", "::", v6.IsValid()},
		} {
			if !addr.on {
				continue
			}
			// tcp6 on [::] is IPv6-only in Go, so it does not collide
			// with the tcp4 listener.
			ln, err := n.Listen(addr.network, net.JoinHostPort(addr.addr, strconv.Itoa(port)))
			if err != nil {
				return fmt.Errorf("node %s: %w", n.Name, err)
			}
			if err := l.serve(ctx, ln, n.Name); err != nil {
				return err
			}
		}
		return nil
	})
}

// serve answers HTTP on ln with NodeAnswer(node) until ctx ends or the lab
// closes.
func (l *Lab) serve(ctx context.Context, ln net.Listener, node string) error {
	answer := NodeAnswer(node)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write([]byte(answer))
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		ln.Close()
		return errors.New("netlab: ServeVIPs: lab is closed")
	}
	l.servers = append(l.servers, srv)
	l.serving.Add(1)
	go func() {
		defer l.serving.Done()
		stop := context.AfterFunc(ctx, func() { _ = srv.Close() })
		defer stop()
		_ = srv.Serve(ln) // http.ErrServerClosed once closed; closes ln
	}()
	return nil
}
