package report

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

// applyStatusPatch applies statusPatch's output as the apiserver does (the
// same JSON patch library) to an object holding current, and returns the
// resulting status.
func applyStatusPatch(t *testing.T, current, want v1alpha1.SpeakerStatusStatus) (v1alpha1.SpeakerStatusStatus, []byte) {
	t.Helper()
	patch, err := statusPatch("42", current, want)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := json.Marshal(v1alpha1.SpeakerStatus{ObjectMeta: metav1.ObjectMeta{Name: "n1", ResourceVersion: "42"}, Status: current})
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		t.Fatalf("patch %s: %v", patch, err)
	}
	out, err := decoded.Apply(doc)
	if err != nil {
		t.Fatalf("patch %s does not apply to %s: %v", patch, doc, err)
	}
	var got v1alpha1.SpeakerStatus
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != "42" {
		t.Fatalf("resourceVersion %q after the patch, want it pinned to 42", got.ResourceVersion)
	}
	return got.Status, patch
}

func announcement(ip, mode string, since int, services ...string) v1alpha1.Announcement {
	return v1alpha1.Announcement{IP: ip, Mode: mode, Services: services, Since: metav1.NewTime(time.Unix(int64(1_800_000_000+since), 0))}
}

func TestStatusPatch(t *testing.T) {
	base := v1alpha1.SpeakerStatusStatus{
		State: v1alpha1.SpeakerRunning,
		Since: metav1.NewTime(time.Unix(1_800_000_000, 0)),
		Announcements: []v1alpha1.Announcement{
			announcement("198.51.100.1", "layer2", 0, "a/x"),
			announcement("198.51.100.3", "layer2", 0, "a/y"),
			announcement("198.51.100.5", "bgp", 0, "a/z"),
		},
		AnnouncedAddresses: 3,
	}
	with := func(change func(*v1alpha1.SpeakerStatusStatus)) v1alpha1.SpeakerStatusStatus {
		st := base
		st.Announcements = slices.Clone(base.Announcements)
		change(&st)
		return st
	}
	for _, tc := range []struct {
		name string
		want v1alpha1.SpeakerStatusStatus
		// mustNotCarry is text of the kept entries a patch must not resend.
		mustNotCarry []string
	}{
		{name: "nothing changed", want: base, mustNotCarry: []string{"198.51.100."}},
		{name: "one address came", want: with(func(st *v1alpha1.SpeakerStatusStatus) {
			st.Announcements = slices.Insert(st.Announcements, 1, announcement("198.51.100.2", "layer2", 9, "b/c"))
			st.AnnouncedAddresses = 4
		}), mustNotCarry: []string{"198.51.100.1", "198.51.100.3", "198.51.100.5"}},
		{name: "one address went", want: with(func(st *v1alpha1.SpeakerStatusStatus) {
			st.Announcements = slices.Delete(st.Announcements, 1, 2)
			st.AnnouncedAddresses = 2
		}), mustNotCarry: []string{"198.51.100.1", "198.51.100.5"}},
		{name: "one address changed its services", want: with(func(st *v1alpha1.SpeakerStatusStatus) {
			st.Announcements[2].Services = []string{"a/z", "b/shared"}
		}), mustNotCarry: []string{"198.51.100.1", "198.51.100.3"}},
		{name: "every address went", want: with(func(st *v1alpha1.SpeakerStatusStatus) {
			st.Announcements, st.AnnouncedAddresses = nil, 0
		})},
		{name: "first addresses, members and sessions", want: v1alpha1.SpeakerStatusStatus{
			State: v1alpha1.SpeakerPartitioned, Reason: "cut off", Since: metav1.NewTime(time.Unix(1_800_000_100, 0)),
			Members:            2,
			Announcements:      []v1alpha1.Announcement{announcement("2001:db8::1", "layer2", 100, "a/x")},
			AnnouncedAddresses: 1,
			BGPSessions:        []v1alpha1.BGPSession{{Peer: "r1", Address: "203.0.113.1", State: v1alpha1.BGPEstablished}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, patch := applyStatusPatch(t, base, tc.want)
			if !sameStatus(got, tc.want) || !got.Since.Equal(&tc.want.Since) {
				t.Errorf("patch %s gives\n%+v\nwant\n%+v", patch, got, tc.want)
			}
			for _, text := range tc.mustNotCarry {
				if strings.Contains(string(patch), text) {
					t.Errorf("patch %s carries %q, which did not change", patch, text)
				}
			}
		})
	}
}

// TestStatusPatchRandom checks, over random pairs of announcement lists, that
// the patch applied to the first gives the second exactly, also when the
// first is not in this reporter's order.
func TestStatusPatchRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	randomList := func() []v1alpha1.Announcement {
		var list []v1alpha1.Announcement
		for i := range 12 {
			if rng.IntN(2) == 0 {
				continue
			}
			modes := []string{"layer2", "vip", "bgp"}
			list = append(list, announcement(fmt.Sprintf("203.0.113.%d", 10+i), modes[rng.IntN(3)], rng.IntN(2), fmt.Sprintf("ns/s%d", rng.IntN(3))))
		}
		return list
	}
	// mutate keeps most of list, as a failover does: some entries go, some
	// change, some come.
	mutate := func(list []v1alpha1.Announcement) []v1alpha1.Announcement {
		next := map[string]v1alpha1.Announcement{}
		for _, a := range list {
			switch rng.IntN(6) {
			case 0: // went
			case 1:
				a.Services = append(slices.Clone(a.Services), "other/svc")
				next[a.IP] = a
			default:
				next[a.IP] = a
			}
		}
		for _, a := range randomList() {
			if _, ok := next[a.IP]; !ok && rng.IntN(3) == 0 {
				next[a.IP] = a
			}
		}
		out := slices.Collect(maps.Values(next))
		slices.SortFunc(out, func(a, b v1alpha1.Announcement) int { return strings.Compare(a.IP, b.IP) })
		return out
	}
	for i := range 300 {
		current := v1alpha1.SpeakerStatusStatus{State: v1alpha1.SpeakerRunning, Announcements: randomList()}
		current.AnnouncedAddresses = len(current.Announcements)
		want := v1alpha1.SpeakerStatusStatus{State: v1alpha1.SpeakerRunning, Announcements: mutate(current.Announcements)}
		if i%3 == 0 {
			want.Announcements = randomList()
		}
		want.AnnouncedAddresses = len(want.Announcements)
		if i%10 == 0 {
			// Not in this reporter's order, as a foreign write may leave it.
			slices.Reverse(current.Announcements)
		}
		got, patch := applyStatusPatch(t, current, want)
		if !sameStatus(got, want) {
			t.Fatalf("case %d: patch %s gives\n%+v\nwant\n%+v", i, patch, got.Announcements, want.Announcements)
		}
	}
}
