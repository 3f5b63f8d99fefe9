package nodelab

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/netlab"
)

// EchoDeployment is a Deployment of the demo app (EchoImage) labelled
// app=<name>, each pod told its name and node.
func EchoDeployment(namespace, name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: v1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: v1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To[int64](2),
					Containers: []v1.Container{{
						Name:            "echo",
						Image:           EchoImage,
						ImagePullPolicy: v1.PullNever,
						Ports:           []v1.ContainerPort{{ContainerPort: EchoPort}},
						Env: []v1.EnvVar{
							{Name: "POD_NAME", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
							{Name: "NODE_NAME", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
						},
						ReadinessProbe: &v1.Probe{
							ProbeHandler:  v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(EchoPort)}},
							PeriodSeconds: 1,
						},
					}},
				},
			},
		},
	}
}

// Echo is one answer of the demo app.
type Echo struct {
	// Pod and Node are the pod that answered and its node; Client is the
	// client address it saw (host:port).
	Pod, Node, Client string
}

// ParseEcho reads the demo app's answer ("pod=… node=… client=…"); ok is
// false for anything else.
func ParseEcho(body string) (e Echo, ok bool) {
	for _, f := range strings.Fields(body) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "pod":
			e.Pod = v
		case "node":
			e.Node = v
		case "client":
			e.Client = v
		}
	}
	return e, e.Pod != ""
}

// Answer is what a client got asking a LoadBalancer address once.
type Answer struct {
	Echo
	// Via is the node whose MAC the client's kernel holds for the address,
	// the node the request went through ("" when the MAC is no node's: a
	// router's, for an address the client reaches through one).
	Via string
}

// Ask requests http://<vip>:80/ once from host over a fresh connection,
// bounded by timeout, and says which pod answered and through which node.
func (c *Cluster) Ask(ctx context.Context, from *netlab.Host, vip netip.Addr, timeout time.Duration) (Answer, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	body, err := from.HTTPGet(ctx, "http://"+netip.AddrPortFrom(vip, 80).String()+"/")
	if err != nil {
		return Answer{}, err
	}
	e, ok := ParseEcho(body)
	if !ok {
		return Answer{}, fmt.Errorf("unexpected answer %q", body)
	}
	a := Answer{Echo: e}
	mac, err := from.Neighbor(ctx, vip)
	if err != nil {
		return a, err
	}
	if n := c.Lab.NodeByMAC(mac); n != nil {
		a.Via = n.Name
	}
	return a, nil
}

// WaitDeploymentReady waits until every replica of the Deployment is
// updated and ready.
func (c *Cluster) WaitDeploymentReady(ctx context.Context, namespace, name string, timeout time.Duration) error {
	var last string
	err := framework.WaitFor(ctx, timeout, 250*time.Millisecond, func(ctx context.Context) (bool, error) {
		d, err := c.ControlPlane.Client.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		want := ptr.Deref(d.Spec.Replicas, 1)
		last = fmt.Sprintf("%d/%d ready, %d updated", d.Status.ReadyReplicas, want, d.Status.UpdatedReplicas)
		return d.Status.ObservedGeneration >= d.Generation && d.Status.ReadyReplicas == want && d.Status.UpdatedReplicas == want, nil
	})
	if err != nil {
		return fmt.Errorf("deployment %s/%s: %s: %w", namespace, name, last, err)
	}
	return nil
}
