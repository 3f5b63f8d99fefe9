package routers

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/netlab"
)

// BIRD 2's daemon and its control client.
const (
	bird  = "bird"
	birdc = "birdc"
)

// BIRD is BIRD 2 running in a router's namespace. BIRD keeps what it learns
// in its own tables (no kernel protocol is configured unless the
// configuration has one). Its methods are safe for concurrent use.
type BIRD struct {
	// Host is the router BIRD runs on.
	Host *netlab.Host

	dir  string
	sock string
	proc *framework.Process

	closeOnce sync.Once
	closeErr  error
}

// StartBIRD starts BIRD on host with conf (bird.conf) and returns once it
// answers birdc. ctx bounds the start only: BIRD runs until Close (or until
// the lab closes). On error nothing is left running.
func StartBIRD(ctx context.Context, host *netlab.Host, conf string) (_ *BIRD, err error) {
	if _, err := exec.LookPath(bird); err != nil {
		return nil, fmt.Errorf("routers: BIRD is not installed (%w): run hack/ensure-deps.sh", err)
	}
	// Short, for the control socket's path.
	dir, err := os.MkdirTemp("", "ilb-bird-")
	if err != nil {
		return nil, err
	}
	b := &BIRD{Host: host, dir: dir, sock: filepath.Join(dir, "bird.ctl")}
	defer func() {
		if err != nil {
			_ = b.Close()
		}
	}()
	confPath := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	// Not ctx: BIRD outlives the start; Close stops it.
	b.proc, err = host.StartProcess(context.Background(), "bird", bird, "-f", "-c", confPath, "-s", b.sock, "-P", filepath.Join(dir, "bird.pid"))
	if err != nil {
		return nil, err
	}
	if err := framework.WaitFor(ctx, startTimeout, 50*time.Millisecond, func(ctx context.Context) (bool, error) {
		if b.proc.Exited() {
			return false, fmt.Errorf("bird exited: %v\n%s", b.proc.Wait(), b.proc.LogTail(20))
		}
		_, err := b.Birdc(ctx, "show status")
		return err == nil, nil
	}); err != nil {
		return nil, fmt.Errorf("routers: BIRD on %s did not start: %w", host.Name, err)
	}
	return b, nil
}

// Close stops BIRD and removes its directory. It is safe to call more than
// once.
func (b *BIRD) Close() error {
	b.closeOnce.Do(func() {
		if b.proc != nil {
			_ = b.proc.Stop(stopGrace) // its exit status after SIGTERM says nothing
		}
		b.closeErr = os.RemoveAll(b.dir)
	})
	return b.closeErr
}

// LogTail returns the last n lines of BIRD's output.
func (b *BIRD) LogTail(n int) string { return b.proc.LogTail(n) }

// Birdc runs a birdc command (its words as arguments) and returns the
// output. Each call is bounded to 10 s.
func (b *BIRD) Birdc(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, birdc, append([]string{"-s", b.sock}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("birdc %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

var (
	birdVia       = regexp.MustCompile(`^\s+via (\S+)`)
	birdLocalPref = regexp.MustCompile(`^\s+BGP\.local_pref: (\d+)`)
	birdCommunity = regexp.MustCompile(`^\s+BGP\.community: (.*)$`)
	birdLarge     = regexp.MustCompile(`^\s+BGP\.large_community: (.*)$`)
)

// Route parses `show route <prefix> all`: one path per "via" line, with
// the attributes listed below it.
func (b *BIRD) Route(ctx context.Context, prefix netip.Prefix) (Route, error) {
	out, err := b.Birdc(ctx, "show", "route", prefix.String(), "all")
	if err != nil {
		if strings.Contains(out, "Network not found") {
			return Route{}, nil
		}
		return Route{}, err
	}
	var r Route
	for _, line := range strings.Split(out, "\n") {
		if m := birdVia.FindStringSubmatch(line); m != nil {
			a, err := netip.ParseAddr(m[1])
			if err != nil {
				return Route{}, fmt.Errorf("show route %s: next hop %q: %w", prefix, m[1], err)
			}
			r.Paths = append(r.Paths, Path{NextHop: a, LocalPref: -1})
			continue
		}
		if len(r.Paths) == 0 {
			continue
		}
		p := &r.Paths[len(r.Paths)-1]
		if m := birdLocalPref.FindStringSubmatch(line); m != nil {
			p.LocalPref, _ = strconv.Atoi(m[1]) // \d+ always parses
		} else if m := birdCommunity.FindStringSubmatch(line); m != nil {
			p.Communities = strings.TrimSpace(m[1])
		} else if m := birdLarge.FindStringSubmatch(line); m != nil {
			p.LargeCommunities = strings.TrimSpace(m[1])
		}
	}
	return r, nil
}
