package provider

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	servicehelper "k8s.io/cloud-provider/service/helpers"
	"k8s.io/klog/v2"

	"github.com/ironlb/ironlb/config"
)

// maxEventMessage keeps event messages under the apiserver's 1 KiB limit.
const maxEventMessage = 1000

// configWatcher reloads the config whenever the ConfigMap changes. There is
// one object to watch, so the queue holds a single key.
type configWatcher struct {
	cloud     *Cloud
	factories []informers.SharedInformerFactory
	synced    []cache.InformerSynced
	queue     workqueue.TypedRateLimitingInterface[string]
}

const configKey = "config"

func newConfigWatcher(c *Cloud, client kubernetes.Interface) *configWatcher {
	cmFactory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace(c.opts.ConfigNamespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", c.opts.ConfigName).String()
		}))
	nsFactory := informers.NewSharedInformerFactory(client, 0)
	cmInformer := cmFactory.Core().V1().ConfigMaps()
	nsInformer := nsFactory.Core().V1().Namespaces()
	c.configMaps, c.namespaces = cmInformer.Lister(), nsInformer.Lister()

	w := &configWatcher{
		cloud:     c,
		factories: []informers.SharedInformerFactory{cmFactory, nsFactory},
		synced:    []cache.InformerSynced{cmInformer.Informer().HasSynced, nsInformer.Informer().HasSynced},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "ironlb-config"}),
	}
	enqueue := func(any) { w.queue.Add(configKey) }
	_, _ = cmInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	})
	return w
}

func (w *configWatcher) waitForSync(ctx context.Context) error {
	for _, f := range w.factories {
		f.Start(ctx.Done())
	}
	if !cache.WaitForNamedCacheSync("ironlb-config", ctx.Done(), w.synced...) {
		return fmt.Errorf("caches for the ironlb config did not sync")
	}
	return nil
}

// run processes config changes until ctx ends.
func (w *configWatcher) run(ctx context.Context) {
	defer w.queue.ShutDown()
	go func() {
		<-ctx.Done()
		w.queue.ShutDown()
	}()
	for w.processNext(ctx) {
	}
}

func (w *configWatcher) processNext(ctx context.Context) bool {
	key, quit := w.queue.Get()
	if quit {
		return false
	}
	defer w.queue.Done(key)
	if err := w.cloud.syncConfig(ctx); err != nil {
		klog.ErrorS(err, "Reloading the config failed; retrying")
		w.queue.AddRateLimited(key)
		return true
	}
	w.queue.Forget(key)
	return true
}

// syncConfig brings the config in force in line with the ConfigMap. An
// invalid or deleted ConfigMap is reported and otherwise ignored: the last
// good config keeps serving and nothing allocated is touched.
func (c *Cloud) syncConfig(ctx context.Context) error {
	ref := klog.KRef(c.opts.ConfigNamespace, c.opts.ConfigName)
	cm, err := c.configMaps.ConfigMaps(c.opts.ConfigNamespace).Get(c.opts.ConfigName)
	if apierrors.IsNotFound(err) {
		c.configGone(ctx)
		return nil
	}
	if err != nil {
		return err
	}
	c.configMissing = false

	data, ok := cm.Data[config.ConfigMapKey]
	var errs field.ErrorList
	var cfg *config.Config
	if !ok {
		errs = field.ErrorList{field.Required(field.NewPath("data").Key(config.ConfigMapKey), "the pools are read from this key")}
	} else {
		cfg, errs = config.Parse([]byte(data))
	}
	if len(errs) > 0 {
		configStale.Set(1)
		configReloads.WithLabelValues("invalid").Inc()
		msgs := make([]string, 0, len(errs))
		for _, e := range errs {
			msgs = append(msgs, e.Error())
		}
		klog.ErrorS(errs.ToAggregate(), "Rejected invalid config; the last good config keeps serving", "configMap", ref)
		c.recorder.Event(cm, v1.EventTypeWarning, "InvalidConfig",
			truncate("rejected, the last good config keeps serving: "+strings.Join(msgs, "; "), maxEventMessage))
		// After a restart the last good config is the kept one.
		if last := c.lastGood(); last != nil && c.lastConfigData == nil {
			c.applyConfig(ctx, last.Config, &last.Text)
		}
		return nil
	}
	if c.applyConfig(ctx, cfg, &data) {
		configReloads.WithLabelValues("applied").Inc()
		configLastApplied.SetToCurrentTime()
		klog.InfoS("Config applied", "configMap", ref, "pools", cfg.PoolNames())
		c.recorder.Eventf(cm, v1.EventTypeNormal, "ConfigApplied", "%d pools in force: %s", len(cfg.Pools), strings.Join(cfg.PoolNames(), ", "))
	}
	c.mu.RLock()
	inForce := equalText(c.lastConfigData, &data)
	c.mu.RUnlock()
	if inForce {
		c.kept.Accept(config.KeptConfig{Text: data, Config: cfg})
	}
	configStale.Set(0)
	return c.writeKeptOnceReady(ctx)
}

// configGone handles a missing ConfigMap. Deleting it (by hand, a GitOps
// prune, a chart that renders none) must not take addresses away: the last
// good config keeps serving, for allocation here and for announcing in the
// speakers, which read it from the kept configs.
func (c *Cloud) configGone(ctx context.Context) {
	ref := klog.KRef(c.opts.ConfigNamespace, c.opts.ConfigName)
	last := c.lastGood()
	if last == nil {
		klog.InfoS("ConfigMap not found; no pools until it is created", "configMap", ref)
		c.applyConfig(ctx, config.Empty(), nil)
		configStale.Set(0)
		return
	}
	configStale.Set(1)
	c.applyConfig(ctx, last.Config, &last.Text)
	if c.configMissing {
		return
	}
	c.configMissing = true
	msg := fmt.Sprintf("%s is missing; the last good config (pools %s), kept in %s, keeps serving: held addresses stay announced. Create %s again to change pools",
		c.opts.ConfigName, strings.Join(last.Config.PoolNames(), ", "), config.LastGoodName(c.opts.ConfigName), c.opts.ConfigName)
	klog.InfoS("ConfigMap not found; the last good config keeps serving", "configMap", ref, "pools", last.Config.PoolNames())
	c.recorder.Event(&v1.ObjectReference{Kind: "ConfigMap", APIVersion: "v1", Namespace: c.opts.ConfigNamespace, Name: c.opts.ConfigName},
		v1.EventTypeWarning, "ConfigMissing", truncate(msg, maxEventMessage))
}

// writeKeptOnceReady writes the kept configs once the allocator is seeded;
// start syncs the config again then.
func (c *Cloud) writeKeptOnceReady(ctx context.Context) error {
	select {
	case <-c.ready:
		return c.writeKept(ctx)
	default:
		return nil
	}
}

// applyConfig puts cfg in force (data is its source text, nil when there is
// no ConfigMap) and reports whether anything changed.
func (c *Cloud) applyConfig(ctx context.Context, cfg *config.Config, data *string) bool {
	c.mu.Lock()
	if equalText(c.lastConfigData, data) {
		c.mu.Unlock()
		return false
	}
	// The allocator accepts any config that passed validation: pools are
	// checked for overlaps and duplicate names there too.
	if err := c.alloc.SetPools(cfg.PoolSpecs()); err != nil {
		c.mu.Unlock()
		klog.ErrorS(err, "Allocator refused a validated config; keeping the last good one")
		return false
	}
	c.cfg, c.lastConfigData = cfg, data
	orphans := c.alloc.Orphans()
	newOrphans := map[netip.Addr][]string{}
	for addr, holders := range orphans {
		if _, known := c.orphans[addr]; !known {
			newOrphans[addr] = holders
		}
	}
	c.orphans = orphans
	c.mu.Unlock()

	c.warnOrphans(ctx, newOrphans)
	c.updatePoolMetrics()
	return true
}

// warnOrphans tells the holders of addresses that left every pool that they
// keep them. Never yanking an address is the safe choice: taking it away
// would cut live traffic, and handing it to another service would clash.
func (c *Cloud) warnOrphans(ctx context.Context, orphans map[netip.Addr][]string) {
	for _, addr := range slices.SortedFunc(maps.Keys(orphans), netip.Addr.Compare) {
		for _, key := range orphans[addr] {
			namespace, name, _ := strings.Cut(key, "/")
			klog.InfoS("Address is no longer in any pool; the service keeps it", "service", klog.KRef(namespace, name), "ip", addr)
			svc, err := c.client.CoreV1().Services(namespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				continue
			}
			c.recorder.Eventf(svc, v1.EventTypeWarning, "AddressNotInPool",
				"%s is no longer in any pool; the service keeps it and it is not handed to anyone else. Delete the service or restore the pool to free it", addr)
		}
	}
}

// seed records the addresses existing services hold, read with a fresh list
// from the apiserver (not a cache), so that after a restart or a leader change
// no address is handed out twice. Older services win a conflict.
func (c *Cloud) seed(ctx context.Context) error {
	var services []v1.Service
	err := wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := c.client.CoreV1().Services(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
		if err != nil {
			klog.ErrorS(err, "Listing services to seed the allocator failed; retrying")
			return false, nil
		}
		services = list.Items
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("seeding the allocator: %w", err)
	}
	slices.SortFunc(services, func(a, b v1.Service) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(serviceKey(&a), serviceKey(&b))
	})
	seeded := 0
	for i := range services {
		svc := &services[i]
		// A Service ironlb no longer serves but still holds its finalizer
		// keeps its address until the service controller has cleaned it
		// up, so the address is not handed out twice meanwhile.
		if !c.opts.Filter.Serves(svc) && !servicehelper.HasLBFinalizer(svc) {
			continue // another implementation's service
		}
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			addr, err := netip.ParseAddr(ing.IP)
			if err != nil {
				continue
			}
			if err := c.alloc.Seed(serviceKey(svc), addr, sharingOf(svc)); err != nil {
				klog.ErrorS(err, "Existing address conflicts with an older service; this service will get a new one", "service", klog.KObj(svc), "ip", addr)
				continue
			}
			seeded++
		}
	}
	c.mu.Lock()
	c.orphans = c.alloc.Orphans()
	c.mu.Unlock()
	c.updatePoolMetrics()
	klog.InfoS("Seeded the allocator from existing services", "services", len(services), "addresses", seeded)
	return nil
}

func equalText(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
