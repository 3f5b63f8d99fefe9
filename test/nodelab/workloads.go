package nodelab

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/test/framework"
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
