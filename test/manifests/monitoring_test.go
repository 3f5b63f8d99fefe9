package manifests

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
)

// valuesServiceMonitor switches on the ServiceMonitors (which exclude the
// PodMonitors of values-all.yaml) and the dashboard, off the default ports.
const valuesServiceMonitor = "testdata/values-servicemonitor.yaml"

const (
	dashboardFile  = "manifests/grafana/ironlb-dashboard.json"
	dashboardKey   = "ironlb-dashboard.json"
	dashboardLabel = "grafana_dashboard"
)

// isMonitoring: the objects the chart renders only on request.
func isMonitoring(o *unstructured.Unstructured) bool {
	switch o.GetKind() {
	case "PodMonitor", "ServiceMonitor", "Service":
		return true
	case "ConfigMap":
		_, ok := o.GetLabels()[dashboardLabel]
		return ok || o.GetName() == "ironlb-dashboard"
	}
	return false
}

// TestChartMonitoringOff: by default the chart renders no monitor, no
// metrics Service and no dashboard (the Prometheus Operator's CRDs and
// Grafana may not exist).
func TestChartMonitoringOff(t *testing.T) {
	for _, o := range decode(t, renderChart(t, namespace)) {
		if isMonitoring(o) {
			t.Errorf("the default chart renders %s", key(o))
		}
	}
}

// workloadPods are the pod template labels and containers of the rendered
// Deployment and DaemonSet, by component.
type workloadPods struct {
	labels     labels.Set
	containers []v1.Container
}

func workloads(t *testing.T, objs []*unstructured.Unstructured) map[string]workloadPods {
	t.Helper()
	out := map[string]workloadPods{}
	for _, o := range objs {
		var tmpl v1.PodTemplateSpec
		switch o.GetKind() {
		case "Deployment":
			tmpl = typed[appsv1.Deployment](t, o).Spec.Template
		case "DaemonSet":
			tmpl = typed[appsv1.DaemonSet](t, o).Spec.Template
		default:
			continue
		}
		out[tmpl.Labels["app.kubernetes.io/component"]] = workloadPods{labels: tmpl.Labels, containers: tmpl.Spec.Containers}
	}
	if len(out) != 2 {
		t.Fatalf("want the ccm and speaker workloads, got %v", out)
	}
	return out
}

// selected returns the components whose pods sel selects.
func selected(pods map[string]workloadPods, sel map[string]string) []string {
	var out []string
	for c, p := range pods {
		if len(sel) > 0 && labels.SelectorFromSet(sel).Matches(p.labels) {
			out = append(out, c)
		}
	}
	return out
}

// containerPort returns the port of that name the component's pods declare.
func containerPort(p workloadPods, name string) *v1.ContainerPort {
	for _, c := range p.containers {
		for i := range c.Ports {
			if c.Ports[i].Name == name {
				return &c.Ports[i]
			}
		}
	}
	return nil
}

// wantScrape checks one monitor endpoint: /metrics, HTTPS without
// verification for the CCM (self-signed), HTTP for the speaker, the
// interval asked for, and instance relabelled to the pod's or node's name.
func wantScrape(t *testing.T, what, component string, ep map[string]any, interval string) {
	t.Helper()
	scheme, _, _ := unstructured.NestedString(ep, "scheme")
	path, _, _ := unstructured.NestedString(ep, "path")
	skip, _, _ := unstructured.NestedBool(ep, "tlsConfig", "insecureSkipVerify")
	got, _, _ := unstructured.NestedString(ep, "interval")
	if path != "/metrics" || got != interval {
		t.Errorf("%s scrapes path %q every %q, want /metrics every %s", what, path, got, interval)
	}
	switch component {
	case "ccm":
		if scheme != "https" || !skip {
			t.Errorf("%s: scheme %q, insecureSkipVerify %v: the CCM serves HTTPS with a self-signed certificate", what, scheme, skip)
		}
	case "speaker":
		if scheme != "http" {
			t.Errorf("%s: scheme %q: the speaker serves plain HTTP", what, scheme)
		}
	}
	source := map[string]string{"ccm": "__meta_kubernetes_pod_name", "speaker": "__meta_kubernetes_pod_node_name"}[component]
	relabelings, _, _ := unstructured.NestedSlice(ep, "relabelings")
	var instance bool
	for _, r := range relabelings {
		r := r.(map[string]any)
		sources, _, _ := unstructured.NestedStringSlice(r, "sourceLabels")
		target, _, _ := unstructured.NestedString(r, "targetLabel")
		instance = instance || (target == "instance" && reflect.DeepEqual(sources, []string{source}))
	}
	if !instance {
		t.Errorf("%s does not set instance from %s (docs/metrics.md and the dashboard rely on it): %v", what, source, relabelings)
	}
}

// checkServiceMonitor: a ServiceMonitor selects exactly one rendered
// Service, whose endpoint port is a port of that Service, which targets a
// port the pods of exactly one component declare, with the same number.
func checkServiceMonitor(t *testing.T, sm *unstructured.Unstructured, objs []*unstructured.Unstructured, interval string) {
	t.Helper()
	pods := workloads(t, objs)
	sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	var svcs []*v1.Service
	for _, o := range objs {
		if o.GetKind() == "Service" && o.GetNamespace() == sm.GetNamespace() && len(sel) > 0 && labels.SelectorFromSet(sel).Matches(labels.Set(o.GetLabels())) {
			svcs = append(svcs, typed[v1.Service](t, o))
		}
	}
	if len(svcs) != 1 {
		t.Fatalf("%s selects %d Services, want 1", key(sm), len(svcs))
	}
	svc := svcs[0]
	if svc.Spec.ClusterIP != v1.ClusterIPNone {
		t.Errorf("Service %s is not headless: a metrics Service needs no cluster IP", svc.Name)
	}
	components := selected(pods, svc.Spec.Selector)
	if len(components) != 1 {
		t.Fatalf("Service %s selects the pods of %v, want one component", svc.Name, components)
	}
	component := components[0]
	if c := sm.GetLabels()["app.kubernetes.io/component"]; c != component {
		t.Errorf("%s (component %q) scrapes the %s pods", key(sm), c, component)
	}
	endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(endpoints) != 1 {
		t.Fatalf("%s has %d endpoints, want 1", key(sm), len(endpoints))
	}
	ep := endpoints[0].(map[string]any)
	portName, _, _ := unstructured.NestedString(ep, "port")
	var sp *v1.ServicePort
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Name == portName {
			sp = &svc.Spec.Ports[i]
		}
	}
	if sp == nil {
		t.Fatalf("%s scrapes port %q, which Service %s does not have", key(sm), portName, svc.Name)
	}
	cp := containerPort(pods[component], sp.TargetPort.String())
	if cp == nil {
		t.Fatalf("Service %s port %s targets %q, which the %s pods do not declare", svc.Name, sp.Name, sp.TargetPort.String(), component)
	}
	if sp.Port != cp.ContainerPort || sp.Protocol != cp.Protocol {
		t.Errorf("Service %s port %s is %d/%s, the pods serve %d/%s", svc.Name, sp.Name, sp.Port, sp.Protocol, cp.ContainerPort, cp.Protocol)
	}
	wantScrape(t, key(sm), component, ep, interval)
}

// checkPodMonitorFull: a PodMonitor selects the pods of exactly one
// component and scrapes a port they declare.
func checkPodMonitorFull(t *testing.T, pm *unstructured.Unstructured, objs []*unstructured.Unstructured, interval string) {
	t.Helper()
	checkPodMonitor(t, pm)
	pods := workloads(t, objs)
	sel, _, _ := unstructured.NestedStringMap(pm.Object, "spec", "selector", "matchLabels")
	components := selected(pods, sel)
	if len(components) != 1 {
		t.Fatalf("%s selects the pods of %v, want one component", key(pm), components)
	}
	endpoints, _, _ := unstructured.NestedSlice(pm.Object, "spec", "podMetricsEndpoints")
	ep := endpoints[0].(map[string]any)
	port, _, _ := unstructured.NestedString(ep, "port")
	if containerPort(pods[components[0]], port) == nil {
		t.Errorf("%s scrapes port %q, which the %s pods do not declare", key(pm), port, components[0])
	}
	wantScrape(t, key(pm), components[0], ep, interval)
}

// monitors returns the rendered objects of a kind, by component.
func monitors(t *testing.T, objs []*unstructured.Unstructured, kind string) map[string]*unstructured.Unstructured {
	t.Helper()
	out := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		if o.GetKind() == kind {
			out[o.GetLabels()["app.kubernetes.io/component"]] = o
		}
	}
	return out
}

// TestChartPodMonitors: metrics.podMonitor renders a PodMonitor per
// component, each scraping its own pods' metrics port, and nothing else of
// the monitoring kind.
func TestChartPodMonitors(t *testing.T) {
	for name, tc := range map[string]struct {
		ns       string
		args     []string
		interval string
		labels   map[string]string
	}{
		"defaults":   {namespace, []string{"--set", "metrics.podMonitor.enabled=true"}, "30s", nil},
		"values-all": {"lb-system", []string{"-f", valuesAll}, "15s", map[string]string{"release": "prometheus"}},
	} {
		t.Run(name, func(t *testing.T) {
			objs := decode(t, renderChart(t, tc.ns, tc.args...))
			pms := monitors(t, objs, "PodMonitor")
			if len(pms) != 2 || pms["ccm"] == nil || pms["speaker"] == nil {
				t.Fatalf("want a PodMonitor for ccm and one for speaker, got %v", pms)
			}
			for _, pm := range pms {
				if pm.GetNamespace() != tc.ns {
					t.Errorf("%s is not in the release namespace %s", key(pm), tc.ns)
				}
				for k, v := range tc.labels {
					if pm.GetLabels()[k] != v {
						t.Errorf("%s lacks label %s=%s from metrics.podMonitor.labels", key(pm), k, v)
					}
				}
				checkPodMonitorFull(t, pm, objs, tc.interval)
			}
			for _, o := range objs {
				if o.GetKind() == "ServiceMonitor" || o.GetKind() == "Service" {
					t.Errorf("PodMonitors need no %s", key(o))
				}
			}
		})
	}
}

// TestChartServiceMonitors: metrics.serviceMonitor renders a headless
// metrics Service and a ServiceMonitor per component, wired to the pods'
// ports (the speaker's off its default here); and not with PodMonitors.
func TestChartServiceMonitors(t *testing.T) {
	for name, tc := range map[string]struct {
		args     []string
		interval string
		labels   map[string]string
	}{
		"defaults":              {[]string{"--set", "metrics.serviceMonitor.enabled=true"}, "30s", nil},
		"values-servicemonitor": {[]string{"-f", valuesServiceMonitor}, "20s", map[string]string{"release": "prometheus"}},
	} {
		t.Run(name, func(t *testing.T) {
			objs := decode(t, renderChart(t, namespace, tc.args...))
			sms := monitors(t, objs, "ServiceMonitor")
			svcs := monitors(t, objs, "Service")
			if len(sms) != 2 || sms["ccm"] == nil || sms["speaker"] == nil || len(svcs) != 2 {
				t.Fatalf("want a ServiceMonitor and a Service for ccm and speaker, got %v and %v", sms, svcs)
			}
			for _, sm := range sms {
				for k, v := range tc.labels {
					if sm.GetLabels()[k] != v {
						t.Errorf("%s lacks label %s=%s from metrics.serviceMonitor.labels", key(sm), k, v)
					}
				}
				checkServiceMonitor(t, sm, objs, tc.interval)
			}
			if pms := monitors(t, objs, "PodMonitor"); len(pms) > 0 {
				t.Errorf("ServiceMonitors and PodMonitors both rendered: %v", pms)
			}
		})
	}
	t.Run("not with PodMonitors", func(t *testing.T) {
		out, err := run(nil, "", helmBinary(t), "template", releaseName, filepath.Join(repoRoot(t), "charts", "ironlb"),
			"--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.podMonitor.enabled=true")
		if err == nil || !strings.Contains(err.Error(), "enable one of them") {
			t.Errorf("both monitors at once: got %v\n%s; want the chart to refuse", err, out)
		}
	})
}

// TestChartGrafanaDashboard: grafana.dashboard ships
// manifests/grafana/ironlb-dashboard.json byte for byte in a ConfigMap the
// Grafana sidecar picks up, where it is asked to.
func TestChartGrafanaDashboard(t *testing.T) {
	want, err := os.ReadFile(filepath.Join(repoRoot(t), dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		args        []string
		ns          string
		label       bool
		annotations map[string]string
	}{
		"enabled": {[]string{"--set", "grafana.dashboard.enabled=true"}, namespace, true, nil},
		"elsewhere": {[]string{"--set", "grafana.dashboard.enabled=true", "--set", "grafana.dashboard.namespace=monitoring",
			"--set", "grafana.dashboard.labels.grafana_dashboard=null", "--set", "grafana.dashboard.labels.dashboards=ironlb",
			"--set", "grafana.dashboard.annotations.grafana_folder=Networking"}, "monitoring", false, map[string]string{"grafana_folder": "Networking"}},
		"values-servicemonitor": {[]string{"-f", valuesServiceMonitor}, namespace, true, nil},
	} {
		t.Run(name, func(t *testing.T) {
			var cms []*unstructured.Unstructured
			for _, o := range decode(t, renderChart(t, namespace, tc.args...)) {
				if o.GetKind() == "ConfigMap" {
					cms = append(cms, o)
				}
			}
			if len(cms) != 1 {
				t.Fatalf("want one ConfigMap, got %d", len(cms))
			}
			cm := typed[v1.ConfigMap](t, cms[0])
			if cm.Name != "ironlb-dashboard" || cm.Namespace != tc.ns {
				t.Errorf("ConfigMap %s/%s, want %s/ironlb-dashboard", cm.Namespace, cm.Name, tc.ns)
			}
			if got, ok := cm.Labels[dashboardLabel]; ok != tc.label || (ok && got != "1") {
				t.Errorf("label %s=%q (set: %v), want it set to \"1\": %v", dashboardLabel, got, ok, tc.label)
			}
			for k, v := range tc.annotations {
				if cm.Annotations[k] != v {
					t.Errorf("annotation %s=%q, want %q", k, cm.Annotations[k], v)
				}
			}
			if got := cm.Data[dashboardKey]; got != string(want) {
				t.Errorf("data %s differs from %s (%d bytes, want %d): refresh charts/ironlb/files/", dashboardKey, dashboardFile, len(got), len(want))
			}
			if !json.Valid([]byte(cm.Data[dashboardKey])) {
				t.Error("the dashboard is not valid JSON")
			}
		})
	}
}

// TestGrafanaKustomization: `kubectl apply -k manifests/grafana` installs
// the same dashboard, labelled for the sidecar, under the chart's name.
func TestGrafanaKustomization(t *testing.T) {
	want, err := os.ReadFile(filepath.Join(repoRoot(t), dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	objs := decode(t, renderOverlay(t, "grafana"))
	if len(objs) != 1 {
		t.Fatalf("manifests/grafana renders %d objects, want the dashboard ConfigMap alone", len(objs))
	}
	cm := typed[v1.ConfigMap](t, find(t, objs, "ConfigMap", namespace, "ironlb-dashboard"))
	if cm.Labels[dashboardLabel] != "1" {
		t.Errorf("label %s=%q, want \"1\"", dashboardLabel, cm.Labels[dashboardLabel])
	}
	if !bytes.Equal([]byte(cm.Data[dashboardKey]), want) {
		t.Errorf("data %s differs from %s", dashboardKey, dashboardFile)
	}
	// The overlays an install applies leave it out.
	for _, overlay := range []string{"kubeadm", "k3s"} {
		for _, o := range decode(t, renderOverlay(t, overlay)) {
			if isMonitoring(o) {
				t.Errorf("the %s overlay renders %s; the dashboard is applied on its own", overlay, key(o))
			}
		}
	}
}
