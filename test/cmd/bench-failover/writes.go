package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/labenv"
)

// takeover is what the API was written when a node that announced many
// addresses died: the writes of every client, from the API server's own
// metrics, net of what the cluster writes when nothing changes.
type takeover struct {
	node  string
	moved int // addresses the dead node alone announced
	// took is until each of them was announced by another node; settled
	// until the writes stopped.
	took, settled time.Duration
	// By "resource verb": bytes and requests.
	bytes    map[string]float64
	requests map[string]float64
}

func (t takeover) totalBytes() float64 { return sum(t.bytes) }

func sum(m map[string]float64) float64 {
	var total float64
	for _, v := range m {
		total += v
	}
	return total
}

const (
	// baselineWindow is how long the writes of a cluster where nothing
	// changes (lease renewals) are measured, to be taken off.
	baselineWindow = 15 * time.Second
	// writesQuiet is how long the writes the takeover caused must have
	// stopped for it to be over; Events, paced by each client's rate
	// limiter, come last.
	writesQuiet   = 10 * time.Second
	takeoverBound = 5 * time.Minute
)

var metallbL2Status = schema.GroupVersionResource{Group: "metallb.io", Version: "v1beta1", Resource: "servicel2statuses"}

// measureTakeover kills -9 the speaker of the node that announces the most
// of the memory figure's Services, waits until another node announces each
// of them and the API writes have stopped, and restarts it.
func measureTakeover(ctx context.Context, env *labenv.Env, im impl) (takeover, error) {
	var t takeover
	dyn, err := dynamic.NewForConfig(env.CP.RESTConfig)
	if err != nil {
		return t, err
	}
	before, err := announcers(ctx, dyn, im)
	if err != nil {
		return t, err
	}
	perNode := map[string]int{}
	for svc, nodes := range before {
		if strings.HasPrefix(svc, "default/"+memoryPrefix) && len(nodes) == 1 {
			perNode[nodes[0]]++
		}
	}
	for _, node := range slices.Sorted(maps.Keys(perNode)) {
		if perNode[node] > t.moved {
			t.node, t.moved = node, perNode[node]
		}
	}
	if t.moved == 0 {
		return t, fmt.Errorf("no node announces any of the memory figure's Services alone (%d announced)", len(before))
	}
	var moved []string
	for svc, nodes := range before {
		if strings.HasPrefix(svc, "default/"+memoryPrefix) && len(nodes) == 1 && nodes[0] == t.node {
			moved = append(moved, svc)
		}
	}

	b0, err := env.CP.RequestBodyBytes(ctx)
	if err != nil {
		return t, err
	}
	if err := framework.Sleep(ctx, baselineWindow); err != nil {
		return t, err
	}
	b1, err := env.CP.RequestBodyBytes(ctx)
	if err != nil {
		return t, err
	}
	b1At := time.Now()
	baseline := difference(b1, b0)
	fmt.Printf("killing the speaker of %s, which alone announces %d Services; writes of a quiet cluster: %s\n", t.node, t.moved, describeWrites(baseline.bytes))

	start := time.Now()
	_ = env.Speaker(t.node).Kill()
	defer func() {
		if err := restart(ctx, env, t.node); err != nil {
			fmt.Printf("  restarting the speaker of %s: %v\n", t.node, err)
		}
	}()
	var left int
	err = framework.WaitFor(ctx, takeoverBound, time.Second, func(ctx context.Context) (bool, error) {
		now, err := announcers(ctx, dyn, im)
		if err != nil {
			return false, nil
		}
		left = 0
		for _, svc := range moved {
			if !slices.ContainsFunc(now[svc], func(n string) bool { return n != t.node }) {
				left++
			}
		}
		return left == 0, nil
	})
	if err != nil {
		return t, fmt.Errorf("%d of %d Services not announced by another node: %w", left, t.moved, err)
	}
	t.took = time.Since(start)

	// Quiet: the requests the quiet cluster did not make have stopped.
	var last map[string]framework.RequestBodies
	var changed time.Time
	err = framework.WaitFor(ctx, takeoverBound, time.Second, func(ctx context.Context) (bool, error) {
		now, err := env.CP.RequestBodyBytes(ctx)
		if err != nil {
			return false, nil
		}
		if last == nil || !sameBeyond(baseline, last, now) {
			last, changed = now, time.Now()
		}
		return time.Since(changed) >= writesQuiet, nil
	})
	if err != nil {
		return t, fmt.Errorf("the API writes did not stop: %w", err)
	}
	t.settled = changed.Sub(start)
	// Up to the last reading that changed; the quiet cluster's own writes
	// over the same time are taken off.
	during := difference(last, b1)
	scale := changed.Sub(b1At).Seconds() / baselineWindow.Seconds()
	t.bytes, t.requests = map[string]float64{}, map[string]float64{}
	for key := range during.bytes {
		if b := during.bytes[key] - scale*baseline.bytes[key]; b > 0 {
			t.bytes[key] = b
			t.requests[key] = max(during.requests[key]-scale*baseline.requests[key], 0)
		}
	}
	return t, nil
}

// writes is a difference of two readings of RequestBodyBytes.
type writes struct{ bytes, requests map[string]float64 }

func difference(after, before map[string]framework.RequestBodies) writes {
	w := writes{bytes: map[string]float64{}, requests: map[string]float64{}}
	for key, a := range after {
		if d := a.Bytes - before[key].Bytes; d > 0 {
			w.bytes[key] = d
			w.requests[key] = float64(a.Requests - before[key].Requests)
		}
	}
	return w
}

// sameBeyond reports whether nothing but the kinds of write the quiet
// cluster makes changed between two readings.
func sameBeyond(quiet writes, a, b map[string]framework.RequestBodies) bool {
	for key, v := range b {
		if _, usual := quiet.bytes[key]; !usual && v != a[key] {
			return false
		}
	}
	return true
}

func describeWrites(bytes map[string]float64) string {
	if len(bytes) == 0 {
		return "none"
	}
	var parts []string
	for _, key := range slices.Sorted(maps.Keys(bytes)) {
		parts = append(parts, fmt.Sprintf("%s %.0f B", key, bytes[key]))
	}
	return strings.Join(parts, ", ")
}

// announcers maps each Service ("namespace/name") to the nodes that say,
// in the implementation's own status objects, that they announce it:
// ironlb's SpeakerStatus (one per node) or MetalLB's ServiceL2Status (one
// per Service and node).
func announcers(ctx context.Context, dyn dynamic.Interface, im impl) (map[string][]string, error) {
	out := map[string][]string{}
	switch im.impl {
	case labenv.ImplMetalLB:
		list, err := dyn.Resource(metallbL2Status).Namespace(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, item := range list.Items {
			node, _, _ := unstructured.NestedString(item.Object, "status", "node")
			ns, _, _ := unstructured.NestedString(item.Object, "status", "serviceNamespace")
			name, _, _ := unstructured.NestedString(item.Object, "status", "serviceName")
			if node != "" && name != "" {
				out[ns+"/"+name] = append(out[ns+"/"+name], node)
			}
		}
	default:
		list, err := dyn.Resource(v1alpha1.SpeakerStatusResource).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, item := range list.Items {
			entries, _, _ := unstructured.NestedSlice(item.Object, "status", "announcements")
			for _, e := range entries {
				entry, _ := e.(map[string]any)
				services, _, _ := unstructured.NestedStringSlice(entry, "services")
				for _, svc := range services {
					out[svc] = append(out[svc], item.GetName())
				}
			}
		}
	}
	return out, nil
}

// String is the figure as the report gives it.
func (t takeover) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "API writes when a node dies (kill -9 of the speaker of %s, which alone announced %d of the memory figure's Services; every client's write requests, from the API server's `apiserver_request_body_size_bytes`, less what the cluster writes when nothing changes): **%.0f bytes per moved address** (%.0f in all). The status objects named another node for each of them after %v; the writes stopped after %v.\n\n",
		t.node, t.moved, t.totalBytes()/float64(t.moved), t.totalBytes(), t.took.Round(time.Second), t.settled.Round(time.Second))
	fmt.Fprintln(&b, "| resource, verb | bytes per moved address | requests per moved address |")
	fmt.Fprintln(&b, "|---|---:|---:|")
	for _, key := range slices.Sorted(maps.Keys(t.bytes)) {
		fmt.Fprintf(&b, "| %s | %.0f | %.2f |\n", key, t.bytes[key]/float64(t.moved), t.requests[key]/float64(t.moved))
	}
	return b.String()
}
