// Package servicecontroller is ironlb-ccm's service controller: it drives a
// cloudprovider.LoadBalancer for the LoadBalancer Services ironlb serves, by
// spec.loadBalancerClass, which the upstream k8s.io/cloud-provider service
// controller cannot do (it skips every Service with a class and takes no flag
// for one).
//
// It gives a Service what the upstream controller gives it (the
// service.kubernetes.io/load-balancer-cleanup finalizer, status, events, retries
// at the interval the provider asks for) in fewer API writes: the finalizer, the
// provider's annotations and the status go in one patch, so a new Service costs
// one write and one Event, and writing an annotation never makes the Service be
// synced again as a spec change.
package servicecontroller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/wait"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	cloudprovider "k8s.io/cloud-provider"
	"k8s.io/cloud-provider/api"
	servicehelper "k8s.io/cloud-provider/service/helpers"
	"k8s.io/klog/v2"

	"github.com/ironlb/ironlb/config"
)

// Annotator is implemented by a load balancer that records on the Service
// where its addresses came from. The controller writes these annotations in
// the same patch as the finalizer and the status.
type Annotator interface {
	// LoadBalancerAnnotations returns the annotations svc should carry now,
	// by name; an empty value means the annotation must be absent, and a
	// name left out is left as it is. It is called after EnsureLoadBalancer
	// and after EnsureLoadBalancerDeleted.
	LoadBalancerAnnotations(svc *v1.Service) map[string]string
}

// Options configure a Controller.
type Options struct {
	// ClusterName is passed to the provider's calls.
	ClusterName string
	// Filter selects the Services this controller serves.
	Filter config.ClassFilter
}

// Retry delays for errors the provider did not give a delay for (API errors,
// mostly): from quick, for a conflict, to the upstream controller's cap.
const (
	minRetryDelay = 500 * time.Millisecond
	maxRetryDelay = 5 * time.Minute
)

// Controller serves the LoadBalancer Services the filter selects.
type Controller struct {
	opts      Options
	balancer  cloudprovider.LoadBalancer
	annotator Annotator // nil when the balancer records nothing on Services
	client    kubernetes.Interface
	services  corelisters.ServiceLister
	synced    cache.InformerSynced
	queue     workqueue.TypedRateLimitingInterface[string]
	recorder  record.EventRecorder
}

// New returns a controller driving balancer; it does nothing until Run.
// Nodes are not watched: ironlb's provider does not use them (the speakers
// choose which nodes attract the traffic), so a node joining or leaving costs
// this controller nothing, where the upstream one calls UpdateLoadBalancer for
// every Service.
func New(opts Options, balancer cloudprovider.LoadBalancer, client kubernetes.Interface, services coreinformers.ServiceInformer, recorder record.EventRecorder) (*Controller, error) {
	if err := opts.Filter.Validate(); err != nil {
		return nil, err
	}
	c := &Controller{
		opts:     opts,
		balancer: balancer,
		client:   client,
		services: services.Lister(),
		synced:   services.Informer().HasSynced,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](minRetryDelay, maxRetryDelay),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "ironlb_service"}),
		recorder: recorder,
	}
	c.annotator, _ = balancer.(Annotator)
	_, err := services.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if svc, ok := obj.(*v1.Service); ok && c.concerns(svc) {
				c.enqueue(svc)
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			old, okOld := oldObj.(*v1.Service)
			svc, okNew := newObj.(*v1.Service)
			if okOld && okNew && (c.concerns(old) || c.concerns(svc)) && needsSync(old, svc) {
				c.enqueue(svc)
			}
		},
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if svc, ok := obj.(*v1.Service); ok && c.concerns(svc) {
				c.enqueue(svc)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// concerns reports whether svc is, or was, this controller's: it serves
// it, or the finalizer says it once did.
func (c *Controller) concerns(svc *v1.Service) bool {
	return c.opts.Filter.Serves(svc) || servicehelper.HasLBFinalizer(svc)
}

// needsSync ignores updates that change nothing the provider reads: the
// status and annotation this controller wrote itself come back as an update,
// and kube-proxy's or anyone's writes to unrelated fields are not ours.
func needsSync(old, svc *v1.Service) bool {
	return !apiequality.Semantic.DeepEqual(old.Spec, svc.Spec) ||
		!maps.Equal(old.Labels, svc.Labels) ||
		!maps.Equal(old.Annotations, svc.Annotations) ||
		(old.DeletionTimestamp == nil) != (svc.DeletionTimestamp == nil) ||
		!slices.Equal(old.Finalizers, svc.Finalizers) ||
		!servicehelper.LoadBalancerStatusEqual(&old.Status.LoadBalancer, &svc.Status.LoadBalancer)
}

func (c *Controller) enqueue(svc *v1.Service) {
	key, err := cache.MetaNamespaceKeyFunc(svc)
	if err != nil {
		utilruntime.HandleError(err)
		return
	}
	c.queue.Add(key)
}

// Run serves Services with workers goroutines until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	logger := klog.FromContext(ctx)
	logger.Info("Starting ironlb service controller", "loadBalancerClass", c.opts.Filter.Class, "serveClassless", c.opts.Filter.Classless, "workers", workers)
	defer logger.Info("Shutting down ironlb service controller")
	if !cache.WaitForNamedCacheSyncWithContext(ctx, c.synced) {
		return
	}
	for range max(workers, 1) {
		go wait.UntilWithContext(ctx, c.worker, time.Second)
	}
	<-ctx.Done()
}

func (c *Controller) worker(ctx context.Context) {
	for c.processNext(ctx) {
	}
}

func (c *Controller) processNext(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	err := c.sync(ctx, key)
	var retry *api.RetryError
	switch {
	case err == nil:
		c.queue.Forget(key)
	case errors.As(err, &retry):
		// The provider has said why (an Event) and when to try again.
		c.queue.Forget(key)
		c.queue.AddAfter(key, retry.RetryAfter())
	default:
		klog.FromContext(ctx).Error(err, "Syncing a LoadBalancer Service failed; retrying", "service", key, "retries", c.queue.NumRequeues(key))
		c.queue.AddRateLimited(key)
	}
	return true
}

// sync makes one Service what it should be: served, cleaned up, or released
// if it is gone.
func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil // never valid; retrying cannot help
	}
	svc, err := c.services.Services(namespace).Get(name)
	switch {
	case apierrors.IsNotFound(err):
		// Deleted before a finalizer held it (or after cleanup, when this
		// is a no-op): free whatever it was given.
		gone := &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
		return c.balancer.EnsureLoadBalancerDeleted(ctx, c.opts.ClusterName, gone)
	case err != nil:
		return err
	case svc.DeletionTimestamp != nil || !c.opts.Filter.Serves(svc):
		return c.cleanup(ctx, svc)
	default:
		return c.ensure(ctx, svc)
	}
}

// ensure gives svc its load balancer and records it in one write: the
// finalizer, the annotations and the status.
func (c *Controller) ensure(ctx context.Context, svc *v1.Service) error {
	status, err := c.balancer.EnsureLoadBalancer(ctx, c.opts.ClusterName, svc, nil)
	if err != nil {
		if !isRetry(err) {
			c.recorder.Eventf(svc, v1.EventTypeWarning, "SyncLoadBalancerFailed", "Error syncing load balancer: %v", err)
		}
		return err
	}
	want := svc.DeepCopy()
	if !servicehelper.HasLBFinalizer(want) {
		want.Finalizers = append(want.Finalizers, servicehelper.LoadBalancerCleanupFinalizer)
	}
	c.applyAnnotations(want)
	want.Status.LoadBalancer = *status
	err = c.patch(ctx, svc, want)
	if apierrors.IsNotFound(err) {
		// Deleted while it was being served: nothing holds it now.
		return c.balancer.EnsureLoadBalancerDeleted(ctx, c.opts.ClusterName, svc)
	}
	if err != nil {
		c.recorder.Eventf(svc, v1.EventTypeWarning, "SyncLoadBalancerFailed", "Error recording the load balancer on the Service: %v", err)
		return fmt.Errorf("recording the load balancer of %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	return nil
}

// cleanup releases what svc held. If the finalizer says ironlb served it,
// the status ironlb wrote is cleared (unless it is being deleted anyway) and
// the finalizer removed, in one write; a Service ironlb never recorded
// anything on keeps its status, which another implementation may own.
func (c *Controller) cleanup(ctx context.Context, svc *v1.Service) error {
	if err := c.balancer.EnsureLoadBalancerDeleted(ctx, c.opts.ClusterName, svc); err != nil {
		if !isRetry(err) {
			c.recorder.Eventf(svc, v1.EventTypeWarning, "CleanupLoadBalancerFailed", "Error cleaning up load balancer: %v", err)
		}
		return err
	}
	if !servicehelper.HasLBFinalizer(svc) {
		return nil
	}
	want := svc.DeepCopy()
	want.Finalizers = slices.DeleteFunc(want.Finalizers, func(f string) bool { return f == servicehelper.LoadBalancerCleanupFinalizer })
	if svc.DeletionTimestamp == nil {
		c.applyAnnotations(want)
		want.Status.LoadBalancer = v1.LoadBalancerStatus{}
	}
	if err := c.patch(ctx, svc, want); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing the finalizer of %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	return nil
}

// applyAnnotations sets the provider's annotations on svc.
func (c *Controller) applyAnnotations(svc *v1.Service) {
	if c.annotator == nil {
		return
	}
	for name, value := range c.annotator.LoadBalancerAnnotations(svc) {
		if value == "" {
			delete(svc.Annotations, name)
			continue
		}
		if svc.Annotations == nil {
			svc.Annotations = map[string]string{}
		}
		svc.Annotations[name] = value
	}
}

// patch writes the difference between old and want, metadata and status, in
// one strategic-merge patch through the status subresource (as the upstream
// controller writes its finalizer), and nothing if there is none. The
// strategic merge adds or removes the finalizer without replacing other
// controllers' finalizers.
func (c *Controller) patch(ctx context.Context, old, want *v1.Service) error {
	want.Spec = old.Spec // the status subresource ignores the spec; never send it
	oldJSON, err := json.Marshal(old)
	if err != nil {
		return err
	}
	wantJSON, err := json.Marshal(want)
	if err != nil {
		return err
	}
	patch, err := strategicpatch.CreateTwoWayMergePatch(oldJSON, wantJSON, v1.Service{})
	if err != nil {
		return err
	}
	if string(patch) == "{}" {
		return nil
	}
	_, err = c.client.CoreV1().Services(old.Namespace).Patch(ctx, old.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	return err
}

func isRetry(err error) bool {
	var retry *api.RetryError
	return errors.As(err, &retry)
}
