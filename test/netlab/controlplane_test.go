package netlab_test

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ironlb/ironlb/test/netlab"
)

func TestControlPlaneInLab(t *testing.T) {
	t.Parallel()
	lab := netlab.NewForTest(t, netlab.Options{Nodes: 1})
	ctx := t.Context()
	cp, err := lab.StartControlPlane(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lab.StartControlPlane(ctx); err == nil {
		t.Error("a second StartControlPlane succeeded")
	}

	// The test process reaches the apiserver through the namespace dialer.
	ns, err := cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "lab-test"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := cp.Client.CoreV1().Services(ns.Name).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create LoadBalancer service: %v", err)
	}
	if svc.Spec.ClusterIP == "" {
		t.Errorf("service got no ClusterIP: %+v", svc.Spec)
	}

	// The kubeconfig is for processes inside the lab: it names the control
	// plane host's LAN address.
	kc, err := clientcmd.LoadFromFile(cp.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	server := kc.Clusters[kc.Contexts[kc.CurrentContext].Cluster].Server
	if want := "https://" + lab.ControlPlane().IPv4.String() + ":"; !strings.HasPrefix(server, want) || server != cp.URL {
		t.Errorf("kubeconfig server %q, want %s<port> (= URL %s)", server, want, cp.URL)
	}

	// A speaker-like process on a node, with that kubeconfig, across the
	// LAN: kubectl stands in for the speaker.
	p, err := lab.Node(1).StartProcess(ctx, "kubectl", "kubectl", "--kubeconfig", cp.Kubeconfig, "get", "ns", "-o", "name")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatalf("kubectl get ns in n1: %v\n%s", err, p.LogTail(20))
	}
	out := p.LogTail(20)
	for _, want := range []string{"namespace/default", "namespace/lab-test"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl get ns in n1 lacks %s:\n%s", want, out)
		}
	}
}
