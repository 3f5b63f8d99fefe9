package servicecontroller

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	"k8s.io/cloud-provider/api"
	servicehelper "k8s.io/cloud-provider/service/helpers"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/config"
)

const poolAnnotation = "example.com/pool"

// fakeBalancer hands every service 203.0.113.1 and records its calls.
type fakeBalancer struct {
	mu       sync.Mutex
	held     map[string]bool
	ensured  []string
	released []string
	err      error
}

func (f *fakeBalancer) GetLoadBalancer(context.Context, string, *v1.Service) (*v1.LoadBalancerStatus, bool, error) {
	return nil, false, nil
}
func (f *fakeBalancer) GetLoadBalancerName(context.Context, string, *v1.Service) string { return "" }
func (f *fakeBalancer) UpdateLoadBalancer(context.Context, string, *v1.Service, []*v1.Node) error {
	return errors.New("not called: nodes are not watched")
}

func (f *fakeBalancer) EnsureLoadBalancer(_ context.Context, _ string, svc *v1.Service, _ []*v1.Node) (*v1.LoadBalancerStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ensured = append(f.ensured, svc.Name)
	if f.err != nil {
		return nil, f.err
	}
	f.held[svc.Name] = true
	return &v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{{IP: "203.0.113.1", IPMode: ptr.To(v1.LoadBalancerIPModeVIP)}}}, nil
}

func (f *fakeBalancer) EnsureLoadBalancerDeleted(_ context.Context, _ string, svc *v1.Service) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held[svc.Name] {
		f.released = append(f.released, svc.Name)
	}
	delete(f.held, svc.Name)
	return nil
}

func (f *fakeBalancer) LoadBalancerAnnotations(svc *v1.Service) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held[svc.Name] {
		return map[string]string{poolAnnotation: "lan"}
	}
	return map[string]string{poolAnnotation: ""}
}

type svcOpt func(*v1.Service)

func lbService(name string, opts ...svcOpt) *v1.Service {
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("uid-" + name)},
		Spec:       v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer},
	}
	for _, o := range opts {
		o(svc)
	}
	return svc
}

func class(c string) svcOpt { return func(s *v1.Service) { s.Spec.LoadBalancerClass = &c } }
func clusterIP() svcOpt     { return func(s *v1.Service) { s.Spec.Type = v1.ServiceTypeClusterIP } }
func served() svcOpt {
	return func(s *v1.Service) {
		s.Finalizers = []string{"other.example.com/keep", servicehelper.LoadBalancerCleanupFinalizer}
		s.Annotations = map[string]string{poolAnnotation: "lan"}
		s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: "203.0.113.1", IPMode: ptr.To(v1.LoadBalancerIPModeVIP)}}
	}
}
func deleting() svcOpt {
	return func(s *v1.Service) { s.DeletionTimestamp = &metav1.Time{Time: time.Unix(1, 0)} }
}

type harness struct {
	c        *Controller
	client   *fake.Clientset
	balancer *fakeBalancer
}

func newHarness(t *testing.T, filter config.ClassFilter, objs ...*v1.Service) *harness {
	t.Helper()
	client := fake.NewClientset()
	factory := informers.NewSharedInformerFactory(client, 0)
	b := &fakeBalancer{held: map[string]bool{}}
	c, err := New(Options{ClusterName: "kubernetes", Filter: filter}, b, client, factory.Core().V1().Services(), record.NewFakeRecorder(100))
	if err != nil {
		t.Fatal(err)
	}
	indexer := factory.Core().V1().Services().Informer().GetIndexer()
	for _, svc := range objs {
		if _, err := client.CoreV1().Services(svc.Namespace).Create(context.Background(), svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := indexer.Add(svc); err != nil {
			t.Fatal(err)
		}
		if servicehelper.HasLBFinalizer(svc) {
			b.held[svc.Name] = true // it was served before
		}
	}
	client.ClearActions()
	return &harness{c: c, client: client, balancer: b}
}

// writes are the API writes the controller made.
func (h *harness) writes() []k8stesting.Action {
	var out []k8stesting.Action
	for _, a := range h.client.Actions() {
		if a.GetVerb() != "get" && a.GetVerb() != "list" && a.GetVerb() != "watch" {
			out = append(out, a)
		}
	}
	return out
}

func (h *harness) get(t *testing.T, name string) *v1.Service {
	t.Helper()
	svc, err := h.client.CoreV1().Services("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func TestSync(t *testing.T) {
	other := config.ClassFilter{Class: "example.com/other", Classless: false}
	tests := []struct {
		name   string
		filter config.ClassFilter
		svc    *v1.Service
		// want: the service serves (finalizer, annotation, status) after
		// one write, or is left as it was with no write.
		wantServed   bool
		wantWrites   int
		wantReleased bool
		wantCleared  bool // cleaned up: no finalizer, status and annotation gone
	}{
		{name: "classless, served by default", filter: config.DefaultClassFilter(), svc: lbService("a"), wantServed: true, wantWrites: 1},
		{name: "ironlb's class", filter: config.DefaultClassFilter(), svc: lbService("a", class(config.DefaultLoadBalancerClass)), wantServed: true, wantWrites: 1},
		{name: "another class is never touched", filter: config.DefaultClassFilter(), svc: lbService("a", class("metallb.io/metallb")), wantWrites: 0},
		{name: "classless left to another implementation", filter: config.ClassFilter{Class: config.DefaultLoadBalancerClass}, svc: lbService("a"), wantWrites: 0},
		{name: "a changed class filter", filter: other, svc: lbService("a", class("example.com/other")), wantServed: true, wantWrites: 1},
		{name: "already served: no write", filter: config.DefaultClassFilter(), svc: lbService("a", served()), wantServed: true, wantWrites: 0},
		{name: "type changed away: released, status cleared, finalizer gone", filter: config.DefaultClassFilter(), svc: lbService("a", served(), clusterIP()), wantWrites: 1, wantReleased: true, wantCleared: true},
		{name: "deleted: released, finalizer gone", filter: config.DefaultClassFilter(), svc: lbService("a", served(), deleting()), wantWrites: 1, wantReleased: true},
		{name: "ClusterIP never served", filter: config.DefaultClassFilter(), svc: lbService("a", clusterIP()), wantWrites: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.filter, tt.svc)
			if err := h.c.sync(context.Background(), "default/a"); err != nil {
				t.Fatalf("sync: %v", err)
			}
			if got := len(h.writes()); got != tt.wantWrites {
				t.Errorf("writes = %d (%v), want %d", got, h.writes(), tt.wantWrites)
			}
			for _, a := range h.writes() {
				if a.GetSubresource() != "status" || a.GetVerb() != "patch" {
					t.Errorf("write %s %s/%s, want only patches of the status subresource", a.GetVerb(), a.GetResource().Resource, a.GetSubresource())
				}
			}
			got := h.get(t, "a")
			if tt.wantServed {
				if !servicehelper.HasLBFinalizer(got) || got.Annotations[poolAnnotation] != "lan" || len(got.Status.LoadBalancer.Ingress) != 1 {
					t.Errorf("not served: finalizers %v, annotations %v, status %v", got.Finalizers, got.Annotations, got.Status.LoadBalancer)
				}
			}
			if released := slices.Contains(h.balancer.released, "a"); released != tt.wantReleased {
				t.Errorf("released = %v, want %v", released, tt.wantReleased)
			}
			if tt.wantCleared {
				if servicehelper.HasLBFinalizer(got) || len(got.Status.LoadBalancer.Ingress) > 0 || got.Annotations[poolAnnotation] != "" {
					t.Errorf("not cleaned up: finalizers %v, annotations %v, status %v", got.Finalizers, got.Annotations, got.Status.LoadBalancer)
				}
			}
			if tt.wantReleased && !slices.Contains(got.Finalizers, "other.example.com/keep") {
				t.Errorf("another controller's finalizer was removed: %v", got.Finalizers)
			}
		})
	}
}

func TestSyncOfDeletedServiceReleases(t *testing.T) {
	h := newHarness(t, config.DefaultClassFilter())
	h.balancer.held["gone"] = true // allocated, then deleted before any finalizer
	if err := h.c.sync(context.Background(), "default/gone"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(h.balancer.released, []string{"gone"}) {
		t.Errorf("released %v, want [gone]", h.balancer.released)
	}
	if w := h.writes(); len(w) != 0 {
		t.Errorf("writes %v, want none", w)
	}
}

func TestProviderRetryIsScheduledNotRateLimited(t *testing.T) {
	h := newHarness(t, config.DefaultClassFilter(), lbService("a"))
	h.balancer.err = api.NewRetryError("pool lan is full", time.Hour)
	h.c.queue.Add("default/a")
	if !h.c.processNext(context.Background()) {
		t.Fatal("queue shut down")
	}
	if n := h.c.queue.NumRequeues("default/a"); n != 0 {
		t.Errorf("requeues = %d: a RetryError must use its own delay, not the failure backoff", n)
	}
	if h.c.queue.Len() != 0 {
		t.Errorf("queue length %d, want the retry to wait an hour", h.c.queue.Len())
	}
	if w := h.writes(); len(w) != 0 {
		t.Errorf("writes %v, want none on a failed allocation", w)
	}
}

func TestNeedsSync(t *testing.T) {
	base := lbService("a", served())
	tests := []struct {
		name   string
		change func(*v1.Service)
		want   bool
	}{
		{"resourceVersion only", func(s *v1.Service) { s.ResourceVersion = "2" }, false},
		{"managed fields only", func(s *v1.Service) { s.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "x"}} }, false},
		{"spec", func(s *v1.Service) { s.Spec.LoadBalancerIP = "203.0.113.9" }, true},
		{"annotation", func(s *v1.Service) { s.Annotations["ironlb.io/pool"] = "b" }, true},
		{"label", func(s *v1.Service) { s.Labels = map[string]string{"tier": "web"} }, true},
		{"deleted", func(s *v1.Service) { s.DeletionTimestamp = &metav1.Time{} }, true},
		{"status changed by someone", func(s *v1.Service) { s.Status.LoadBalancer = v1.LoadBalancerStatus{} }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changed := base.DeepCopy()
			tt.change(changed)
			if got := needsSync(base, changed); got != tt.want {
				t.Errorf("needsSync = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewRejectsAnInvalidClass(t *testing.T) {
	client := fake.NewClientset()
	factory := informers.NewSharedInformerFactory(client, 0)
	for _, class := range []string{"", "ironlb", "Ironlb.io/!"} {
		_, err := New(Options{Filter: config.ClassFilter{Class: class}}, &fakeBalancer{}, client, factory.Core().V1().Services(), record.NewFakeRecorder(1))
		if err == nil {
			t.Errorf("class %q accepted", class)
		}
	}
}
