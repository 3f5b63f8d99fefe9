// Package provider is ironlb's k8s.io/cloud-provider implementation: the
// service controller of a cloud-controller-manager calls it to give every
// type: LoadBalancer Service addresses from the pools in ironlb-config, and
// the cloud-node controller calls it to initialize nodes.
package provider

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"time"

	"github.com/spf13/pflag"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/record"
	cloudprovider "k8s.io/cloud-provider"
	"k8s.io/klog/v2"

	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/ipam"
)

// ProviderName is the name to pass as --cloud-provider.
const ProviderName = "ironlb"

// Options tune the provider; cmd/ironlb-ccm exposes them as flags.
type Options struct {
	// ConfigNamespace and ConfigName locate the ironlb-config ConfigMap.
	ConfigNamespace string
	ConfigName      string
	// RetryInterval is how soon a service that could not get an address is
	// tried again. The service controller has no periodic resync, so this is
	// what lets a pending service pick up a pool added later.
	RetryInterval time.Duration
	// StartupTimeout bounds how long a call waits for the provider to load its
	// config and existing allocations before asking to be retried.
	StartupTimeout time.Duration
	// MemberlistKeySecret names the Secret (in ConfigNamespace) holding the
	// speakers' gossip key; it is created when missing. "" disables that.
	MemberlistKeySecret string
	// Filter selects the Services ironlb serves by their loadBalancerClass.
	Filter config.ClassFilter
}

// DefaultOptions returns the options used when no flag is given.
func DefaultOptions() Options {
	return Options{
		ConfigNamespace: config.DefaultNamespace,
		ConfigName:      config.DefaultConfigMapName,
		RetryInterval:   10 * time.Second,
		StartupTimeout:  30 * time.Second,

		MemberlistKeySecret: "ironlb-memberlist",
		Filter:              config.DefaultClassFilter(),
	}
}

// AddFlags binds the options to fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.ConfigNamespace, "config-namespace", o.ConfigNamespace, "Namespace of the ConfigMap holding ironlb's pools.")
	fs.StringVar(&o.ConfigName, "config-name", o.ConfigName, "Name of the ConfigMap holding ironlb's pools (key "+config.ConfigMapKey+").")
	fs.DurationVar(&o.RetryInterval, "allocation-retry-interval", o.RetryInterval, "How soon a service that could not get an address is tried again.")
	fs.DurationVar(&o.StartupTimeout, "startup-timeout", o.StartupTimeout, "How long a call waits for the config and existing allocations to load before it is retried.")
	o.Filter.AddFlags(fs)
	fs.StringVar(&o.MemberlistKeySecret, "memberlist-key-secret", o.MemberlistKeySecret, "Secret in --config-namespace holding the speakers' gossip key (key \""+MemberlistKeySecretKey+"\"); created with a random key when missing. Empty: never create it.")
}

// Register makes the provider known to cloudprovider.InitCloudProvider.
func Register(opts Options) {
	cloudprovider.RegisterCloudProvider(ProviderName, func(io.Reader) (cloudprovider.Interface, error) {
		return New(opts), nil
	})
}

// Cloud implements cloudprovider.Interface. All methods are safe for
// concurrent use: the service controller may ensure and update one service at
// the same time.
type Cloud struct {
	opts  Options
	alloc *ipam.Allocator

	client     kubernetes.Interface
	recorder   record.EventRecorder
	namespaces corelisters.NamespaceLister
	configMaps corelisters.ConfigMapLister

	// mu guards the config in force, so a request is built and allocated
	// against the same pools the allocator has.
	mu  sync.RWMutex
	cfg *config.Config
	// lastConfigData is the config.yaml text in force, to tell a real change
	// from a no-op update; nil while the ConfigMap does not exist.
	lastConfigData *string
	// orphans are the held addresses no pool contains, already warned about.
	orphans map[netip.Addr][]string
	// kept is what the last-good ConfigMap holds (keptconfig.go), keptData
	// its data as last read or written. Only the config watcher's goroutine
	// uses them, once start has loaded them.
	kept     *config.Kept
	keptData map[string]string
	// configMissing is set while ironlb-config does not exist and the last
	// good config serves, so the warning is given once.
	configMissing bool

	// ready is closed once the config is loaded and the allocator is seeded
	// from existing services; no address is handed out before that.
	ready chan struct{}
}

var _ cloudprovider.Interface = &Cloud{}

// New returns a provider that does nothing until Initialize is called.
func New(opts Options) *Cloud {
	return &Cloud{
		opts:  opts,
		alloc: ipam.New(),
		cfg:   config.Empty(),
		kept:  &config.Kept{},
		ready: make(chan struct{}),
	}
}

// Initialize is called once this process leads; it loads the config and the
// existing allocations in the background.
func (c *Cloud) Initialize(clientBuilder cloudprovider.ControllerClientBuilder, stop <-chan struct{}) {
	ctx := wait.ContextForChannel(stop)
	client := clientBuilder.ClientOrDie("ironlb-provider")
	recorder := NewEventRecorder(ctx, client, "ironlb-ccm")
	go func() {
		if err := c.start(ctx, client, recorder); err != nil {
			klog.ErrorS(err, "ironlb provider stopped")
		}
	}()
}

// NewEventRecorder records Events through client as component, logged at
// -v=3 too, until ctx ends.
func NewEventRecorder(ctx context.Context, client kubernetes.Interface, component string) record.EventRecorder {
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartStructuredLogging(3)
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	context.AfterFunc(ctx, broadcaster.Shutdown)
	return broadcaster.NewRecorder(scheme.Scheme, v1.EventSource{Component: component})
}

// start runs the provider's own informers until ctx ends. It returns after
// ctx ends, or early with an error if the caches never sync.
func (c *Cloud) start(ctx context.Context, client kubernetes.Interface, recorder record.EventRecorder) error {
	c.client, c.recorder = client, recorder
	if err := ensureMemberlistKey(ctx, client, c.opts.ConfigNamespace, c.opts.MemberlistKeySecret); err != nil {
		// Speakers wait for the Secret; allocation does not need it.
		klog.ErrorS(err, "The speakers' memberlist key could not be ensured")
	}
	w := newConfigWatcher(c, client)
	if err := w.waitForSync(ctx); err != nil {
		return err
	}
	if err := c.loadKept(ctx); err != nil {
		return err
	}
	if err := c.syncConfig(ctx); err != nil {
		klog.ErrorS(err, "Loading the config failed; retrying")
	}
	if err := c.seed(ctx); err != nil {
		return err
	}
	close(c.ready)
	klog.InfoS("ironlb provider ready", "configMap", klog.KRef(c.opts.ConfigNamespace, c.opts.ConfigName))
	// Once every held address is known, the kept configs can be pruned and
	// written: a sync of the config does that.
	w.queue.Add(configKey)
	w.run(ctx)
	return nil
}

// waitReady blocks a call until start has loaded config and allocations.
func (c *Cloud) waitReady(ctx context.Context) error {
	timer := time.NewTimer(c.opts.StartupTimeout)
	defer timer.Stop()
	select {
	case <-c.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return fmt.Errorf("ironlb is still loading its config and existing allocations")
	}
}

func (c *Cloud) namespaceLabels(namespace string) labels.Set {
	if c.namespaces == nil {
		return nil
	}
	ns, err := c.namespaces.Get(namespace)
	if err != nil {
		return nil
	}
	return ns.Labels
}

// LoadBalancer returns the load balancer implementation.
func (c *Cloud) LoadBalancer() (cloudprovider.LoadBalancer, bool) { return c, true }

// InstancesV2 returns the node-initialization implementation.
func (c *Cloud) InstancesV2() (cloudprovider.InstancesV2, bool) { return c, true }

// Instances is not supported: InstancesV2 replaces it.
func (c *Cloud) Instances() (cloudprovider.Instances, bool) { return nil, false }

// Zones is not supported: bare metal has no zones to discover.
func (c *Cloud) Zones() (cloudprovider.Zones, bool) { return nil, false }

// Clusters is not supported.
func (c *Cloud) Clusters() (cloudprovider.Clusters, bool) { return nil, false }

// Routes is not supported: the cluster's CNI routes pod traffic.
func (c *Cloud) Routes() (cloudprovider.Routes, bool) { return nil, false }

// ProviderName returns ProviderName.
func (c *Cloud) ProviderName() string { return ProviderName }

// HasClusterID is true: ironlb keys nothing by cluster ID.
func (c *Cloud) HasClusterID() bool { return true }
