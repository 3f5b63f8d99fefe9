package bgp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/announcer/bgp"
	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/netlab"
)

// The lab tests run each node's Speaker in a helper process inside the
// node's network namespace. gobgp dials, listens and sends BFD from its own
// goroutines, on any OS thread, so only a process whose every thread is in
// the namespace gets all of its sockets there. The helper is this test
// binary, run again with helperSocketEnv set; the test drives it with JSON
// over HTTP on a Unix socket, which, being a path, is reachable across
// network namespaces.
const helperSocketEnv = "IRONLB_BGP_TEST_HELPER_SOCKET"

func TestMain(m *testing.M) {
	if sock := os.Getenv(helperSocketEnv); sock != "" {
		os.Exit(runHelper(sock))
	}
	os.Exit(m.Run())
}

// helperConfig is the body of POST /config: Speaker.SetConfig's arguments,
// with the bgp section raw (as in ironlb-config) and the pools as prefixes.
type helperConfig struct {
	BGP       json.RawMessage     `json:"bgp"`
	Node      string              `json:"node"`
	Labels    map[string]string   `json:"labels"`
	Passwords map[string]string   `json:"passwords"`
	RouterID  string              `json:"routerID"`
	Pools     map[string][]string `json:"pools"`
}

// helperEvent is one OnPeerState call, as GET /events lists them.
type helperEvent struct {
	Peer   string    `json:"peer"`
	Up     bool      `json:"up"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// helperMemory is GET /memory's answer, after a GC.
type helperMemory struct {
	HeapInuse  uint64 `json:"heapInuse"`
	Sys        uint64 `json:"sys"`
	RSS        uint64 `json:"rss"`
	Goroutines int    `json:"goroutines"`
}

// rssBytes reads the process's resident set size from /proc.
func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// helper is the state of the helper process.
type helper struct {
	mu     sync.Mutex
	pools  map[string][]netip.Prefix
	events []helperEvent
}

func (h *helper) poolOf(ip netip.Addr) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, prefixes := range h.pools {
		for _, p := range prefixes {
			if p.Contains(ip) {
				return name
			}
		}
	}
	return ""
}

func (h *helper) record(peer string, up bool, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, helperEvent{Peer: peer, Up: up, Reason: reason, At: time.Now()})
}

// runHelper serves one Speaker on the Unix socket sock until POST /stop or
// SIGTERM, and returns the exit code.
func runHelper(sock string) int {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("v", "3")
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()

	h := &helper{}
	sp := bgp.New(bgp.Options{AdvertisementOf: func(ip netip.Addr, inForce *config.BGP) *config.BGPAdvertisement {
		return inForce.AdvertisementFor(h.poolOf(ip))
	}, OnPeerState: h.record})
	if err := sp.Start(ctx); err != nil {
		klog.ErrorS(err, "Start")
		return 1
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		klog.ErrorS(err, "Listen", "socket", sock)
		return 1
	}
	stopped := make(chan struct{})
	var stopOnce sync.Once
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, err error) {
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
	mux.HandleFunc("POST /config", func(w http.ResponseWriter, r *http.Request) {
		var c helperConfig
		if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		cfg, errs := config.ParseBGP(c.BGP)
		if len(errs) > 0 {
			http.Error(w, errs.ToAggregate().Error(), http.StatusBadRequest)
			return
		}
		pools := map[string][]netip.Prefix{}
		for name, texts := range c.Pools {
			for _, t := range texts {
				p, err := netip.ParsePrefix(t)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				pools[name] = append(pools[name], p)
			}
		}
		h.mu.Lock()
		h.pools = pools
		h.mu.Unlock()
		routerID, _ := netip.ParseAddr(c.RouterID)
		reply(w, sp.SetConfig(r.Context(), cfg, c.Node, c.Labels, c.Passwords, routerID))
	})
	mux.HandleFunc("POST /announce", func(w http.ResponseWriter, r *http.Request) {
		var addrs []string
		if err := json.NewDecoder(r.Body).Decode(&addrs); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		want := map[netip.Addr]string{}
		for _, a := range addrs {
			ip, err := netip.ParseAddr(a)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			want[ip] = netlab.Iface
		}
		reply(w, sp.SetAnnounced(r.Context(), want))
	})
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		defer h.mu.Unlock()
		_ = json.NewEncoder(w).Encode(h.events)
	})
	mux.HandleFunc("GET /memory", func(w http.ResponseWriter, r *http.Request) {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		_ = json.NewEncoder(w).Encode(helperMemory{HeapInuse: ms.HeapInuse, Sys: ms.Sys, RSS: rssBytes(), Goroutines: runtime.NumGoroutine()})
	})
	mux.HandleFunc("POST /stop", func(w http.ResponseWriter, r *http.Request) {
		err := sp.Stop(r.Context())
		reply(w, err)
		stopOnce.Do(func() { close(stopped) })
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	select {
	case <-ctx.Done():
		stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = sp.Stop(stopCtx)
	case <-stopped:
	}
	shutdownCtx, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	_ = srv.Shutdown(shutdownCtx)
	klog.Flush()
	return 0
}

// speaker is a helper process running a Speaker on a lab node.
type speaker struct {
	host   *netlab.Host
	proc   *framework.Process
	client *http.Client
}

// startSpeaker runs a Speaker in host's namespace, stopped when the test
// ends.
func startSpeaker(t testing.TB, lab *netlab.Lab, host *netlab.Host) *speaker {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Unix socket paths are limited to 107 bytes; t.TempDir can be longer.
	dir, err := os.MkdirTemp("", "ilb-bgp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, host.Name+".sock")
	proc, err := framework.StartProcessWith(t.Context(), framework.ProcessOptions{
		Name:      host.Name + "/speaker",
		LogPath:   filepath.Join(lab.Dir, host.Name+"-speaker.log"),
		Netns:     host.Netns,
		Env:       []string{helperSocketEnv + "=" + sock},
		StopGrace: 5 * time.Second,
	}, exe)
	if err != nil {
		t.Fatal(err)
	}
	s := &speaker{host: host, proc: proc, client: &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}},
	}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s speaker log (test failed):\n%s", host.Name, proc.LogTail(80))
		}
		_ = proc.Stop(5 * time.Second)
	})
	if err := framework.WaitFor(t.Context(), 10*time.Second, 20*time.Millisecond, func(context.Context) (bool, error) {
		if proc.Exited() {
			return false, fmt.Errorf("helper exited: %v\n%s", proc.Wait(), proc.LogTail(30))
		}
		_, err := os.Stat(sock)
		return err == nil, nil
	}); err != nil {
		t.Fatalf("%s speaker did not start: %v", host.Name, err)
	}
	return s
}

func (s *speaker) call(ctx context.Context, method, path string, body any, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://speaker"+path, r)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s on %s: %w", method, path, s.host.Name, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s on %s: %s: %s", method, path, s.host.Name, resp.Status, strings.TrimSpace(string(data)))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// nodeConfig is what configure sends besides the bgp section.
type nodeConfig struct {
	labels    map[string]string
	passwords map[string]string
	pools     map[string][]string
}

// configure applies a bgp section (YAML, as in ironlb-config) to the node,
// with the node's IPv4 address as router ID.
func (s *speaker) configure(t testing.TB, bgpYAML string, nc nodeConfig) {
	t.Helper()
	if err := s.tryConfigure(t.Context(), bgpYAML, nc); err != nil {
		t.Fatal(err)
	}
}

func (s *speaker) tryConfigure(ctx context.Context, bgpYAML string, nc nodeConfig) error {
	raw, err := yaml.YAMLToJSONStrict([]byte(bgpYAML))
	if err != nil {
		return err
	}
	if nc.labels == nil {
		nc.labels = map[string]string{"kubernetes.io/hostname": s.host.Name}
	}
	return s.call(ctx, http.MethodPost, "/config", helperConfig{
		BGP: raw, Node: s.host.Name, Labels: nc.labels, Passwords: nc.passwords,
		RouterID: s.host.IPv4.String(), Pools: nc.pools,
	}, nil)
}

// announce makes addrs the node's announced set.
func (s *speaker) announce(t testing.TB, addrs ...string) {
	t.Helper()
	if addrs == nil {
		addrs = []string{}
	}
	if err := s.call(t.Context(), http.MethodPost, "/announce", addrs, nil); err != nil {
		t.Fatal(err)
	}
}

func (s *speaker) events(ctx context.Context) ([]helperEvent, error) {
	var evs []helperEvent
	err := s.call(ctx, http.MethodGet, "/events", nil, &evs)
	return evs, err
}

// lastState returns the last state reported for peer.
func (s *speaker) lastState(ctx context.Context, peer string) (helperEvent, bool, error) {
	evs, err := s.events(ctx)
	if err != nil {
		return helperEvent{}, false, err
	}
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Peer == peer {
			return evs[i], true, nil
		}
	}
	return helperEvent{}, false, nil
}

// waitSession waits until peer's last reported state is up (or down with a
// reason containing reason), and returns that report.
func (s *speaker) waitSession(t testing.TB, peer string, up bool, reason string, timeout time.Duration) helperEvent {
	t.Helper()
	var last helperEvent
	err := framework.WaitFor(t.Context(), timeout, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		ev, ok, err := s.lastState(ctx, peer)
		if err != nil {
			return false, err
		}
		last = ev
		return ok && ev.Up == up && strings.Contains(ev.Reason, reason), nil
	})
	if err != nil {
		t.Fatalf("%s: session %s: want up=%v reason ~%q, last reported up=%v %q: %v", s.host.Name, peer, up, reason, last.Up, last.Reason, err)
	}
	return last
}

// memory returns the helper's memory use.
func (s *speaker) memory(t testing.TB) helperMemory {
	t.Helper()
	var m helperMemory
	if err := s.call(t.Context(), http.MethodGet, "/memory", nil, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// stop stops the Speaker gracefully (Speaker.Stop returns before this
// does); the helper process then exits.
func (s *speaker) stop(t testing.TB) {
	t.Helper()
	if err := s.call(t.Context(), http.MethodPost, "/stop", nil, nil); err != nil && !errors.Is(err, io.EOF) {
		t.Errorf("stop: %v", err)
	}
	t.Cleanup(func() {
		select {
		case <-s.proc.Done():
		case <-time.After(10 * time.Second):
			t.Errorf("%s speaker did not exit after Stop", s.host.Name)
		}
	})
}
