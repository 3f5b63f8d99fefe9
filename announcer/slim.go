package announcer

import (
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The speaker caches every Service, EndpointSlice and Node of the cluster.
// These transforms keep only the fields it reads, so its memory grows with
// the number of objects, not with their size: managed fields, annotations,
// ports, endpoint addresses and a Node's images and conditions are most of
// an object and are never read here.

// objectMeta keeps what identifies an object, for the cache and for Events.
func objectMeta(m *metav1.ObjectMeta, labels map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion, Labels: labels}
}

// slimService keeps what says whether ironlb announces for a Service and
// how: its type and class, its traffic policy and its addresses.
func slimService(obj any) (any, error) {
	svc, ok := obj.(*v1.Service)
	if !ok {
		return obj, nil
	}
	return &v1.Service{
		ObjectMeta: objectMeta(&svc.ObjectMeta, nil),
		Spec: v1.ServiceSpec{Type: svc.Spec.Type, LoadBalancerClass: svc.Spec.LoadBalancerClass,
			ExternalTrafficPolicy: svc.Spec.ExternalTrafficPolicy},
		Status: v1.ServiceStatus{LoadBalancer: svc.Status.LoadBalancer},
	}, nil
}

// slimEndpointSlice keeps its Service and, per endpoint, the node and
// whether it is ready.
func slimEndpointSlice(obj any) (any, error) {
	sl, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return obj, nil
	}
	var labels map[string]string
	if name, ok := sl.Labels[discoveryv1.LabelServiceName]; ok {
		labels = map[string]string{discoveryv1.LabelServiceName: name}
	}
	out := &discoveryv1.EndpointSlice{ObjectMeta: objectMeta(&sl.ObjectMeta, labels), AddressType: sl.AddressType}
	if len(sl.Endpoints) > 0 {
		out.Endpoints = make([]discoveryv1.Endpoint, len(sl.Endpoints))
		for i, ep := range sl.Endpoints {
			out.Endpoints[i] = discoveryv1.Endpoint{NodeName: ep.NodeName, Conditions: discoveryv1.EndpointConditions{Ready: ep.Conditions.Ready}}
		}
	}
	return out, nil
}

// slimNode keeps a Node's labels (nodeSelectors, BGP peers) and addresses
// (joins, the BGP router ID).
func slimNode(obj any) (any, error) {
	n, ok := obj.(*v1.Node)
	if !ok {
		return obj, nil
	}
	return &v1.Node{ObjectMeta: objectMeta(&n.ObjectMeta, n.Labels), Status: v1.NodeStatus{Addresses: n.Status.Addresses}}, nil
}
