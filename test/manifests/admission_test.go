package manifests

import (
	"context"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/announcer/report"
	"github.com/ironlb/ironlb/api/v1alpha1"
	"github.com/ironlb/ironlb/test/framework"
)

// nodeNameExtra is where a projected ServiceAccount token names the Pod's
// node.
const nodeNameExtra = "authentication.kubernetes.io/node-name"

// checkSpeakerStatusPolicy: with the install's ValidatingAdmissionPolicy, a
// speaker's token (impersonated, with the node-name claim a kubelet-issued
// token carries) writes its own node's SpeakerStatus, marks a Running one
// Unreachable, and nothing else.
func checkSpeakerStatusPolicy(t *testing.T, cp *framework.ControlPlane) {
	ctx := t.Context()
	admin := dynamic.NewForConfigOrDie(cp.RESTConfig).Resource(v1alpha1.SpeakerStatusResource)
	as := func(node string) dynamic.ResourceInterface {
		cfg := rest.CopyConfig(cp.RESTConfig)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: speakerSA, Groups: saGroups}
		if node != "" {
			cfg.Impersonate.Extra = map[string][]string{nodeNameExtra: {node}}
		}
		return dynamic.NewForConfigOrDie(cfg).Resource(v1alpha1.SpeakerStatusResource)
	}
	status := func(name string, state v1alpha1.SpeakerState, markedBy string, announced bool) *v1alpha1.SpeakerStatus {
		s := &v1alpha1.SpeakerStatus{ObjectMeta: metav1.ObjectMeta{Name: name},
			Status: v1alpha1.SpeakerStatusStatus{State: state, MarkedBy: markedBy, Since: metav1.Now()}}
		if announced {
			s.Status.Announcements = []v1alpha1.Announcement{{IP: "203.0.113.10", Mode: "layer2", Interface: "eth0", Services: []string{"app/web"}, Since: metav1.Now()}}
			s.Status.Members = 1
		}
		return s
	}
	withBGPPool := func(s *v1alpha1.SpeakerStatus) *v1alpha1.SpeakerStatus {
		s.Status.BGPPools = []v1alpha1.BGPPool{{Pool: "routed", Since: metav1.Now()}}
		return s
	}
	// write creates s, or updates it to s over what is there.
	write := func(client dynamic.ResourceInterface, s *v1alpha1.SpeakerStatus) error {
		u, err := v1alpha1.ToUnstructured(s)
		if err != nil {
			return err
		}
		current, err := admin.Get(ctx, s.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = client.Create(ctx, u, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		u.SetResourceVersion(current.GetResourceVersion())
		_, err = client.Update(ctx, u, metav1.UpdateOptions{})
		return err
	}
	refusedByPolicy := func(err error) bool {
		return err != nil && strings.Contains(err.Error(), "ValidatingAdmissionPolicy") && strings.Contains(err.Error(), "status-own-node")
	}

	// A new policy takes a moment to be enforced: wait until it refuses n1
	// creating n2's object, removing what got through before.
	waitFor(t, "the SpeakerStatus policy to be enforced", 30*time.Second, func(ctx context.Context) (bool, error) {
		err := write(as("n1"), status("n2", v1alpha1.SpeakerRunning, "", true))
		if err == nil {
			_ = admin.Delete(ctx, "n2", metav1.DeleteOptions{})
		}
		return refusedByPolicy(err), nil
	})

	steps := []struct {
		what    string
		client  dynamic.ResourceInterface
		status  *v1alpha1.SpeakerStatus
		allowed bool
	}{
		{"n1 creates its own object", as("n1"), status("n1", v1alpha1.SpeakerRunning, "", true), true},
		{"n1 updates its own object", as("n1"), status("n1", v1alpha1.SpeakerRunning, "", false), true},
		{"a token without a node name writes anything", as(""), status("n1", v1alpha1.SpeakerRunning, "", true), false},
		{"n2's own object, created by an admin", admin, status("n2", v1alpha1.SpeakerRunning, "", true), true},
		{"n1 rewrites n2's announcements", as("n1"), status("n2", v1alpha1.SpeakerRunning, "", false), false},
		{"n1 marks n2 Unreachable with announcements left", as("n1"), status("n2", v1alpha1.SpeakerUnreachable, "n1", true), false},
		{"n1 marks n2 Unreachable with a bgp pool left", as("n1"), withBGPPool(status("n2", v1alpha1.SpeakerUnreachable, "n1", false)), false},
		{"n1 marks n2 Unreachable in n3's name", as("n1"), status("n2", v1alpha1.SpeakerUnreachable, "n3", false), false},
		{"n1 marks n2 Unreachable, emptied, by itself", as("n1"), status("n2", v1alpha1.SpeakerUnreachable, "n1", false), true},
		{"n1 marks n2 again once it is no longer Running", as("n1"), status("n2", v1alpha1.SpeakerUnreachable, "n1", false), false},
		{"n2 writes its own object back", as("n2"), status("n2", v1alpha1.SpeakerRunning, "", true), true},
		{"n1 creates n3's object", as("n1"), status("n3", v1alpha1.SpeakerRunning, "", false), false},
	}
	for _, s := range steps {
		err := write(s.client, s.status)
		switch {
		case s.allowed && err != nil:
			t.Errorf("%s: refused: %v", s.what, err)
		case !s.allowed && !refusedByPolicy(err):
			t.Errorf("%s: want refused by the policy, got %v", s.what, err)
		}
	}
	if err := write(as("n1"), status("n1", v1alpha1.SpeakerRunning, "", true)); err != nil {
		t.Fatalf("n1 writes one announcement: %v", err)
	}
	checkStatusPatches(t, admin, as, refusedByPolicy)
	for _, name := range []string{"n1", "n2", "n3"} {
		_ = admin.Delete(context.Background(), name, metav1.DeleteOptions{})
	}
}

// checkStatusPatches: the speaker's JSON patches (announcer/report) pass the
// same policy as its updates, and one pinned to a resourceVersion that is no
// longer current is refused with a Conflict, as the reporter relies on.
func checkStatusPatches(t *testing.T, admin dynamic.ResourceInterface, as func(node string) dynamic.ResourceInterface, refusedByPolicy func(error) bool) {
	ctx := t.Context()
	addOne := func(resourceVersion string) []byte {
		return []byte(`[{"op":"replace","path":"/metadata/resourceVersion","value":"` + resourceVersion + `"},` +
			`{"op":"add","path":"/status/announcements/0","value":{"ip":"203.0.113.9","mode":"bgp","services":["app/api"],"since":"2026-12-04T00:00:00Z"}}]`)
	}
	current := func(name string) string {
		u, err := admin.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get %s: %v", name, err)
		}
		return u.GetResourceVersion()
	}
	n1 := current("n1")
	if _, err := as("n1").Patch(ctx, "n1", types.JSONPatchType, addOne(n1), metav1.PatchOptions{}); err != nil {
		t.Errorf("n1 patches its own object: refused: %v", err)
	}
	if _, err := as("n1").Patch(ctx, "n1", types.JSONPatchType, addOne(n1), metav1.PatchOptions{}); !apierrors.IsConflict(err) {
		t.Errorf("n1 patches its own object at the resourceVersion before its last write: want a Conflict, got %v", err)
	}
	if _, err := as("n1").Patch(ctx, "n2", types.JSONPatchType, addOne(current("n2")), metav1.PatchOptions{}); !refusedByPolicy(err) {
		t.Errorf("n1 patches n2's announcements: want refused by the policy, got %v", err)
	}
	u, err := admin.Get(ctx, "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := v1alpha1.FromUnstructured(u)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(st.Status.Announcements); n != 2 || st.Status.Announcements[0].IP != "203.0.113.9" {
		t.Errorf("n1's announcements after one patch applied: %+v, want 203.0.113.9 added before the one there", st.Status.Announcements)
	}
}

// checkSideLeasePolicy: with the install's policy, a speaker's token creates
// and renews the side Lease only naming its own node as holder, writes no
// other Lease (the CCM's leader lease above all), and a take-over computed
// from a Lease that changed since is refused with a Conflict: the
// compare-and-swap the sides of a partition decide by.
func checkSideLeasePolicy(t *testing.T, cp *framework.ControlPlane) {
	ctx := t.Context()
	as := func(node string) coordinationv1client.LeaseInterface {
		cfg := rest.CopyConfig(cp.RESTConfig)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: speakerSA, Groups: saGroups, Extra: map[string][]string{nodeNameExtra: {node}}}
		return kubernetes.NewForConfigOrDie(cfg).CoordinationV1().Leases("ironlb-system")
	}
	lease := func(name, holder string) *coordinationv1.Lease {
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(holder), LeaseDurationSeconds: ptr.To(int32(15)), RenewTime: &metav1.MicroTime{Time: time.Now()}}}
	}
	refused := func(err error) bool {
		return err != nil && strings.Contains(err.Error(), "ValidatingAdmissionPolicy") && strings.Contains(err.Error(), "side-lease")
	}
	// A new policy takes a moment to be enforced.
	waitFor(t, "the side Lease policy to be enforced", 30*time.Second, func(ctx context.Context) (bool, error) {
		_, err := as("n1").Create(ctx, lease(report.SideLeaseName, "n2"), metav1.CreateOptions{})
		if err == nil {
			_ = cp.Client.CoordinationV1().Leases("ironlb-system").Delete(ctx, report.SideLeaseName, metav1.DeleteOptions{})
		}
		return refused(err), nil
	})
	if _, err := as("n1").Create(ctx, lease("ironlb-cloud-controller-manager", "n1"), metav1.CreateOptions{}); !refused(err) {
		t.Errorf("n1 creates the CCM's leader lease: want refused by the policy, got %v", err)
	}
	first, err := as("n1").Create(ctx, lease(report.SideLeaseName, "n1"), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("n1 claims the side Lease: %v", err)
	}
	renewed := first.DeepCopy()
	renewed.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
	if _, err := as("n1").Update(ctx, renewed, metav1.UpdateOptions{}); err != nil {
		t.Errorf("n1 renews its claim: %v", err)
	}
	stale := first.DeepCopy()
	stale.Spec.HolderIdentity = ptr.To("n2")
	if _, err := as("n2").Update(ctx, stale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Errorf("n2 takes over from the Lease as it was before n1's renewal: want a Conflict, got %v", err)
	}
	current, err := as("n2").Get(ctx, report.SideLeaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	forged := current.DeepCopy()
	forged.Spec.HolderIdentity = ptr.To("n3")
	if _, err := as("n2").Update(ctx, forged, metav1.UpdateOptions{}); !refused(err) {
		t.Errorf("n2 names n3 the holder: want refused by the policy, got %v", err)
	}
	current.Spec.HolderIdentity = ptr.To("n2")
	if _, err := as("n2").Update(ctx, current, metav1.UpdateOptions{}); err != nil {
		t.Errorf("n2 takes the side Lease over at its current resourceVersion: %v", err)
	}
	_ = cp.Client.CoordinationV1().Leases("ironlb-system").Delete(context.Background(), report.SideLeaseName, metav1.DeleteOptions{})
}
