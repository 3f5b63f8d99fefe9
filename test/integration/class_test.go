package integration

import (
	"context"
	"slices"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	servicehelper "k8s.io/cloud-provider/service/helpers"

	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/test/framework"
)

func withClass(class string) svcOption {
	return func(s *v1.Service) { s.Spec.LoadBalancerClass = &class }
}

// notServedFor checks, for a while, that ironlb leaves a service alone: no
// address, no finalizer, no annotation.
func (e *env) notServedFor(namespace, name string, d time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		svc, err := e.client.CoreV1().Services(namespace).Get(e.ctx, name, metav1.GetOptions{})
		if err != nil {
			e.t.Fatal(err)
		}
		if ips := framework.IngressIPs(svc); len(ips) > 0 || servicehelper.HasLBFinalizer(svc) || svc.Annotations[config.AnnotationAllocatedFrom] != "" {
			e.t.Fatalf("%s/%s was served (status %v, finalizers %v, annotations %v), want it left to another implementation",
				namespace, name, ips, svc.Finalizers, svc.Annotations)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// loadBalancerClass: ironlb serves its own class and, by default, classless
// services; another class is never touched; --serve-classless=false leaves
// classless services to another implementation; a class set on a type change
// is honoured both ways.
func TestLoadBalancerClass(t *testing.T) {
	const pool = "pools:\n- name: lan\n  addresses: [203.0.113.10-203.0.113.19]\n"
	t.Run("default: ironlb's class and classless", func(t *testing.T) {
		e := newEnv(t, framework.Options{}, pool)
		e.startCCM(framework.CCMOptions{})
		e.createService(lbService("default", "theirs", withClass("metallb.io/metallb")))
		e.createService(lbService("default", "classless"))
		e.expectIPs("default", "classless", "203.0.113.10")
		e.createService(lbService("default", "ours", withClass(config.DefaultLoadBalancerClass)))
		e.expectIPs("default", "ours", "203.0.113.11")
		e.expectEvent("default", "ours", "IPAllocated", "203.0.113.11")
		e.notServedFor("default", "theirs", 2*time.Second)

		// What the upstream controller gives, through ironlb's: the
		// finalizer, and the pool annotation.
		svc, err := e.client.CoreV1().Services("default").Get(e.ctx, "ours", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !servicehelper.HasLBFinalizer(svc) || svc.Annotations[config.AnnotationAllocatedFrom] != "lan" {
			t.Errorf("ours: finalizers %v, annotations %v; want the cleanup finalizer and %s=lan", svc.Finalizers, svc.Annotations, config.AnnotationAllocatedFrom)
		}

		// Type change away clears the class; back to LoadBalancer with
		// another class: ironlb releases and cleans up, then leaves it alone.
		toClusterIP := []byte(`{"spec":{"type":"ClusterIP","loadBalancerClass":null,"ports":[{"name":"http","protocol":"TCP","port":80,"nodePort":null}]}}`)
		if _, err := e.client.CoreV1().Services("default").Patch(e.ctx, "ours", types.StrategicMergePatchType, toClusterIP, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		e.expectEvent("default", "ours", "IPReleased", "203.0.113.11")
		waitCleanedUp(t, e, "ours")
		toTheirs := []byte(`{"spec":{"type":"LoadBalancer","loadBalancerClass":"metallb.io/metallb"}}`)
		if _, err := e.client.CoreV1().Services("default").Patch(e.ctx, "ours", types.StrategicMergePatchType, toTheirs, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		e.notServedFor("default", "ours", 2*time.Second)

		// A ClusterIP service turned LoadBalancer with ironlb's class is
		// served: the released address goes to it.
		e.createService(lbService("default", "later", func(s *v1.Service) { s.Spec.Type = v1.ServiceTypeClusterIP }))
		toOurs := []byte(`{"spec":{"type":"LoadBalancer","loadBalancerClass":"` + config.DefaultLoadBalancerClass + `"}}`)
		if _, err := e.client.CoreV1().Services("default").Patch(e.ctx, "later", types.StrategicMergePatchType, toOurs, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		e.expectIPs("default", "later", "203.0.113.11")

		// Deleting a served service goes through the finalizer.
		if err := e.client.CoreV1().Services("default").Delete(e.ctx, "later", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := framework.WaitFor(e.ctx, allocateTimeout, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
			_, err := e.client.CoreV1().Services("default").Get(ctx, "later", metav1.GetOptions{})
			return err != nil, nil
		}); err != nil {
			t.Fatalf("service later never went away: %v", err)
		}
	})

	t.Run("--serve-classless=false and another class name", func(t *testing.T) {
		e := newEnv(t, framework.Options{}, pool)
		e.startCCM(framework.CCMOptions{Args: []string{"--serve-classless=false", "--load-balancer-class=example.com/lb"}})
		e.createService(lbService("default", "classless"))
		e.createService(lbService("default", "ours", withClass("example.com/lb")))
		e.createService(lbService("default", "default-class", withClass(config.DefaultLoadBalancerClass)))
		e.expectIPs("default", "ours", "203.0.113.10")
		e.notServedFor("default", "classless", 2*time.Second)
		e.notServedFor("default", "default-class", time.Second)
	})
}

// waitCleanedUp waits until ironlb's finalizer, status and annotation are
// gone from a service it stopped serving.
func waitCleanedUp(t *testing.T, e *env, name string) {
	t.Helper()
	var last *v1.Service
	err := framework.WaitFor(e.ctx, allocateTimeout, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
		svc, err := e.client.CoreV1().Services("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		last = svc
		return !slices.Contains(svc.Finalizers, servicehelper.LoadBalancerCleanupFinalizer) &&
			len(svc.Status.LoadBalancer.Ingress) == 0 && svc.Annotations[config.AnnotationAllocatedFrom] == "", nil
	})
	if err != nil {
		t.Fatalf("%s not cleaned up: %v (finalizers %v, status %v, annotations %v)", name, err, last.Finalizers, last.Status.LoadBalancer, last.Annotations)
	}
}
