// Command ironlb-speaker runs on every node (a DaemonSet) and attracts the
// traffic for the load-balancer addresses this node is elected to announce.
package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/component-base/logs"
	logsapi "k8s.io/component-base/logs/api/v1"
	_ "k8s.io/component-base/logs/json/register" // --logging-format=json
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/klog/v2"

	"github.com/ironlb/ironlb/announcer"
	"github.com/ironlb/ironlb/announcer/bgp"
	"github.com/ironlb/ironlb/announcer/layer2"
	"github.com/ironlb/ironlb/announcer/membership"
	"github.com/ironlb/ironlb/announcer/neighbor"
	"github.com/ironlb/ironlb/announcer/report"
	"github.com/ironlb/ironlb/announcer/vip"
	"github.com/ironlb/ironlb/config"
)

type options struct {
	filter          config.ClassFilter
	kubeconfig      string
	nodeName        string
	configNamespace string
	configName      string
	metricsAddr     string
	profiling       bool

	memberlistBind      string
	memberlistPort      int
	memberlistAdvertise string
	memberlistKeyFile   string
	timing              membership.Timing
	// probeIntervalSet: --memberlist-probe-interval was given; otherwise
	// the interval follows the cluster's size (membership.Timing.ForMembers).
	probeIntervalSet bool

	vipFallbackInterface string
	shutdownGrace        time.Duration
}

func defaultOptions() *options {
	return &options{
		nodeName:        os.Getenv("NODE_NAME"),
		configNamespace: config.DefaultNamespace,
		configName:      config.DefaultConfigMapName,
		metricsAddr:     ":7472",
		memberlistBind:  "0.0.0.0",
		memberlistPort:  membership.DefaultPort,
		timing:          membership.DefaultTiming(),
		shutdownGrace:   2 * time.Second,

		vipFallbackInterface: vip.DefaultFallbackInterface,
		filter:               config.DefaultClassFilter(),
	}
}

func (o *options) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.kubeconfig, "kubeconfig", o.kubeconfig, "Path to a kubeconfig; empty means in-cluster.")
	fs.StringVar(&o.nodeName, "node-name", o.nodeName, "This node's name (default $NODE_NAME, from the downward API).")
	fs.StringVar(&o.configNamespace, "config-namespace", o.configNamespace, "Namespace of the ironlb-config ConfigMap.")
	fs.StringVar(&o.configName, "config-name", o.configName, "Name of the ironlb-config ConfigMap.")
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", o.metricsAddr, "Where /metrics and /healthz are served.")
	fs.BoolVar(&o.profiling, "profiling", o.profiling, "Also serve Go's runtime profiles (heap, CPU, goroutines) at /debug/pprof/ on the metrics address.")
	fs.StringVar(&o.memberlistBind, "memberlist-bind-address", o.memberlistBind, "Address memberlist listens on.")
	fs.IntVar(&o.memberlistPort, "memberlist-port", o.memberlistPort, "memberlist port (TCP and UDP); open it between nodes.")
	fs.StringVar(&o.memberlistAdvertise, "memberlist-advertise-address", o.memberlistAdvertise, "Address other speakers reach this one at (default: the node's InternalIP).")
	fs.StringVar(&o.memberlistKeyFile, "memberlist-key-file", o.memberlistKeyFile, "File holding the memberlist encryption key (16, 24 or 32 bytes, raw, hex or base64), mounted from a Secret. Required.")
	fs.DurationVar(&o.timing.ProbeInterval, "memberlist-probe-interval", o.timing.ProbeInterval, "How often each member probes another. When not set, shortened past 100 Nodes (counted at start) so that a dead member is declared as soon as at 100 Nodes, to no less than 1.25 probe timeouts.")
	fs.DurationVar(&o.timing.ProbeTimeout, "memberlist-probe-timeout", o.timing.ProbeTimeout, "How long a probe waits for an answer.")
	fs.DurationVar(&o.timing.GossipInterval, "memberlist-gossip-interval", o.timing.GossipInterval, "How often gossip is sent.")
	fs.IntVar(&o.timing.SuspicionMult, "memberlist-suspicion-mult", o.timing.SuspicionMult, "Suspicion timeout multiplier: higher is slower but more tolerant of packet loss.")
	fs.StringVar(&o.vipFallbackInterface, "vip-fallback-interface", o.vipFallbackInterface, "vip mode: where addresses on no node subnet go when the kernel cannot create the ironlb0 dummy interface.")
	o.filter.AddFlags(fs)
	fs.DurationVar(&o.shutdownGrace, "shutdown-grace", o.shutdownGrace, "How long a graceful stop waits for the leave to reach other speakers.")
}

func main() {
	opts := defaultOptions()
	logOptions := logs.NewOptions()
	fs := pflag.NewFlagSet("ironlb-speaker", pflag.ExitOnError)
	opts.addFlags(fs)
	logsapi.AddFlags(logOptions, fs)
	_ = fs.Parse(os.Args[1:])
	opts.probeIntervalSet = fs.Changed("memberlist-probe-interval")
	if err := logsapi.ValidateAndApply(logOptions, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	gc, err := gcSettingsFrom(os.LookupEnv)
	if err != nil {
		klog.ErrorS(err, "Reading the container's memory limit")
	}
	if gc.setGCPercent {
		debug.SetGCPercent(gc.gcPercent)
	}
	if gc.memoryLimit > 0 {
		debug.SetMemoryLimit(gc.memoryLimit)
		klog.InfoS("Go runtime soft memory limit set from the container's", "bytes", gc.memoryLimit, "percentOfContainerLimit", softLimitPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, opts); err != nil {
		klog.ErrorS(err, "ironlb-speaker failed")
		klog.FlushAndExit(klog.ExitFlushTimeout, 1)
	}
	klog.Flush()
}

func run(ctx context.Context, o *options) error {
	if o.nodeName == "" {
		return errors.New("--node-name (or $NODE_NAME) is required")
	}
	if err := o.filter.Validate(); err != nil {
		return err
	}
	key, err := readKey(o.memberlistKeyFile)
	if err != nil {
		return err
	}
	countGratuitous := func(iface string, family neighbor.Family) {
		announcer.GratuitousPackets.WithLabelValues(iface, string(family)).Inc()
	}
	l2 := layer2.New(layer2.Options{OnGratuitous: countGratuitous})
	vips, err := vip.New(ctx, vip.Options{FallbackInterface: o.vipFallbackInterface, OnGratuitous: countGratuitous})
	if err != nil {
		return fmt.Errorf("vip mode: %w", err)
	}
	// A killed predecessor cannot have removed its addresses. Removed
	// first, before the API is reached and this node joins: its kernel must
	// not go on answering for addresses others own now.
	if err := vips.Cleanup(ctx); err != nil {
		klog.ErrorS(err, "Removing addresses left by a previous run failed")
	}
	restConfig, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	restConfig.UserAgent = "ironlb-speaker/" + o.nodeName
	client, err := kubernetes.NewForConfig(announcer.BuiltinTypesConfig(restConfig))
	if err != nil {
		return err
	}
	advertise := o.memberlistAdvertise
	if advertise == "" {
		if advertise, err = nodeInternalIP(ctx, client, o.nodeName); err != nil {
			return err
		}
	}
	// Published from the first message on, so no speaker elects without
	// knowing this node's interfaces.
	meta, err := announcer.LocalMeta()
	if err != nil {
		return fmt.Errorf("reading local interfaces: %w", err)
	}
	if !o.probeIntervalSet {
		o.timing = o.timing.ForMembers(clusterSize(ctx, client))
	}
	klog.InfoS("Member failure detection", "probeInterval", o.timing.ProbeInterval, "probeTimeout", o.timing.ProbeTimeout,
		"suspicionMult", o.timing.SuspicionMult, "probeIntervalFromFlag", o.probeIntervalSet)
	members, err := membership.Start(membership.Config{
		NodeName: o.nodeName, BindAddr: o.memberlistBind, Port: o.memberlistPort, AdvertiseAddr: advertise,
		SecretKey: key, Timing: o.timing, Meta: meta,
	})
	if err != nil {
		return err
	}
	// The BGP speaker and the controller refer to each other: BGP asks which
	// pool an address is in and reports sessions; the controller configures
	// BGP and hands it addresses.
	var speaker *announcer.Speaker
	routes := bgp.New(bgp.Options{
		AdvertisementOf: func(ip netip.Addr, inForce *config.BGP) *config.BGPAdvertisement {
			return speaker.AdvertisementOf(ip, inForce)
		},
		OnPeerState: func(peer string, up bool, reason string) {
			if reason == bgp.ReasonDeconfigured {
				speaker.BGPPeerRemoved(peer)
				return
			}
			speaker.BGPSessionChanged(peer, up, reason)
		},
	})
	// Not ctx: on SIGTERM the sessions must live until routes.Stop has
	// withdrawn the routes and said goodbye.
	bgpCtx, stopBGP := context.WithCancel(context.Background())
	defer stopBGP()
	if err := routes.Start(bgpCtx); err != nil {
		return fmt.Errorf("bgp mode: %w", err)
	}
	dynamicClient, err := dynamic.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	metadataClient, err := metadata.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	status := report.New(dynamicClient, metadataClient, report.Options{
		NodeName: o.nodeName,
		NodeUID:  func() types.UID { return speaker.NodeUID() },
		OnMarked: func(by string) { speaker.MarkedUnreachable(by) },
		Leases:   client.CoordinationV1().Leases(o.configNamespace),
	})
	speaker = announcer.NewSpeaker(client, members, announcer.SpeakerOptions{
		NodeName: o.nodeName, ConfigNamespace: o.configNamespace, ConfigName: o.configName,
		Protocols: map[config.Mode]announcer.Protocol{config.ModeLayer2: l2, config.ModeVIP: vips, config.ModeBGP: routes},
		BGP:       routes,
		Status:    status,
		Filter:    o.filter,
	})
	stopStatus := status.Start(ctx)
	go serveMetrics(ctx, o.metricsAddr, o.profiling, speaker.Ready)
	klog.InfoS("ironlb-speaker starting", "node", o.nodeName, "memberlist", net.JoinHostPort(advertise, fmt.Sprint(o.memberlistPort)))

	runErr := speaker.Run(ctx)

	// Each step has its own time bound: a slow API or a slow leave must not
	// keep the next step from removing this node's addresses.
	step := func(timeout time.Duration, fn func(ctx context.Context)) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		fn(ctx)
	}
	// Stopped goes to the API before leaving, so the speaker that notices
	// the leave does not mark a clean stop Unreachable. Only a moment: this
	// speaker still serves meanwhile, and the report is worth less than a
	// prompt handover.
	stopStatus()
	step(statusStopTimeout, status.Stop)
	// Leave first: the others take over at once instead of waiting for
	// failure detection; answering a moment longer than needed is harmless
	// (the new owner's gratuitous packets win), a gap is not.
	step(o.shutdownGrace, func(ctx context.Context) {
		if err := members.Leave(ctx); err != nil {
			klog.ErrorS(err, "Leaving memberlist failed")
		}
	})
	step(cleanupTimeout, func(ctx context.Context) {
		// Withdraw the routes and close the sessions with a Cease, so
		// routers drop this node at once rather than at the hold timer.
		if err := routes.Stop(ctx); err != nil {
			klog.ErrorS(err, "Stopping BGP failed")
		}
		speaker.Withdraw(ctx)
		if err := vips.Cleanup(ctx); err != nil {
			klog.ErrorS(err, "Removing vip addresses on the way out failed")
		}
	})
	_ = vips.Close()
	_ = l2.Close()
	klog.InfoS("ironlb-speaker stopped", "node", o.nodeName)
	return runErr
}

// Shutdown bounds besides --shutdown-grace (the leave).
const (
	statusStopTimeout = 500 * time.Millisecond
	cleanupTimeout    = 2 * time.Second
)

// readKey accepts the key as raw bytes, hex or base64, whichever yields a
// valid AES key length.
func readKey(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("--memberlist-key-file is required: speakers only gossip encrypted")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--memberlist-key-file: %w", err)
	}
	text := strings.TrimSpace(string(data))
	valid := func(b []byte) bool { return len(b) == 16 || len(b) == 24 || len(b) == 32 }
	if b, err := hex.DecodeString(text); err == nil && valid(b) {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(text); err == nil && valid(b) {
		return b, nil
	}
	if valid([]byte(text)) {
		return []byte(text), nil
	}
	return nil, fmt.Errorf("--memberlist-key-file %s: the key must be 16, 24 or 32 bytes (raw, hex or base64)", path)
}

// clusterSize counts the cluster's Nodes from a list of one (the API server
// tells how many remain); 0 when it cannot tell.
func clusterSize(ctx context.Context, client kubernetes.Interface) int {
	list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{Limit: 1})
	switch {
	case err != nil:
	case list.Continue == "":
		return len(list.Items)
	case list.RemainingItemCount != nil:
		return len(list.Items) + int(*list.RemainingItemCount)
	}
	klog.InfoS("Could not count the Nodes; the probe interval stays as for a small cluster", "err", err)
	return 0
}

// nodeInternalIP waits (bounded) for this node's InternalIP.
func nodeInternalIP(ctx context.Context, client kubernetes.Interface, name string) (string, error) {
	var ip string
	err := wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		node, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			klog.InfoS("Waiting for this node's object", "node", name, "err", err)
			return false, nil
		}
		for _, a := range node.Status.Addresses {
			if a.Type == v1.NodeInternalIP {
				ip = a.Address
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return "", fmt.Errorf("node %s has no InternalIP to advertise to other speakers (set --memberlist-advertise-address): %w", name, err)
	}
	return ip, nil
}

func serveMetrics(ctx context.Context, addr string, profiling bool, ready func() bool) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", legacyregistry.Handler())
	if profiling {
		// As kube components serve them with --profiling.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not joined to the other speakers yet", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		klog.ErrorS(err, "Metrics server failed", "address", addr)
	}
}
