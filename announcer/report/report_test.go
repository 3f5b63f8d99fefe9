package report

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	metadatafake "k8s.io/client-go/metadata/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/ironlb/ironlb/api/v1alpha1"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// fakeAPI holds the fake clients of one fake apiserver: the objects for
// reads and writes, their metadata for the departed sweep's list (seeded
// with the same objects; the fakes share no store).
type fakeAPI struct {
	*dynamicfake.FakeDynamicClient
	meta *metadatafake.FakeMetadataClient
}

func newFakeClient(objs ...*v1alpha1.SpeakerStatus) *fakeAPI {
	var runtimeObjs, metaObjs []runtime.Object
	for _, o := range objs {
		u, err := v1alpha1.ToUnstructured(o)
		if err != nil {
			panic(err)
		}
		runtimeObjs = append(runtimeObjs, u)
		metaObjs = append(metaObjs, &metav1.PartialObjectMetadata{TypeMeta: o.TypeMeta, ObjectMeta: o.ObjectMeta})
	}
	return &fakeAPI{
		FakeDynamicClient: dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
			map[schema.GroupVersionResource]string{v1alpha1.SpeakerStatusResource: "SpeakerStatusList"}, runtimeObjs...),
		meta: metadatafake.NewSimpleMetadataClient(metadataScheme(), metaObjs...),
	}
}

// metadataScheme knows SpeakerStatus metadata, as the metadata fake needs.
func metadataScheme() *runtime.Scheme {
	scheme := metadatafake.NewTestScheme()
	scheme.AddKnownTypeWithName(v1alpha1.SpeakerStatusKind, &metav1.PartialObjectMetadata{})
	scheme.AddKnownTypeWithName(v1alpha1.SpeakerStatusKind.GroupVersion().WithKind("SpeakerStatusList"), &metav1.PartialObjectMetadataList{})
	return scheme
}

// startReporter runs a Reporter for node until the test ends.
func startReporter(t *testing.T, client *fakeAPI, node string, c *clock) *Reporter {
	t.Helper()
	r, stop := runReporter(client, node, c)
	t.Cleanup(stop)
	return r
}

// runReporter runs a Reporter for node until stop is called.
func runReporter(client *fakeAPI, node string, c *clock) (*Reporter, func()) {
	r := New(client, client.meta, Options{NodeName: node, NodeUID: func() types.UID { return types.UID("uid-" + node) }, Now: c.Now})
	return r, r.Start(context.Background())
}

// waitStatus polls the fake API until name's object satisfies ok.
func waitStatus(t *testing.T, client *fakeAPI, name string, ok func(*v1alpha1.SpeakerStatus) bool) *v1alpha1.SpeakerStatus {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last *v1alpha1.SpeakerStatus
	for time.Now().Before(deadline) {
		u, err := client.Resource(v1alpha1.SpeakerStatusResource).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil {
			if last, err = v1alpha1.FromUnstructured(u); err == nil && ok(last) {
				return last
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("SpeakerStatus %s never matched; last: %+v", name, last)
	return nil
}

func TestReporterWritesAnnouncements(t *testing.T) {
	client := newFakeClient()
	c := &clock{now: t0}
	r := startReporter(t, client, "n1", c)

	r.SetAnnouncements([]v1alpha1.Announcement{
		{IP: "203.0.113.2", Mode: "layer2", Interface: "eth0", Services: []string{"dev/web", "dev/api"}},
		{IP: "203.0.113.1", Mode: "bgp", Services: []string{"prod/db"}},
	}, []string{"tor-b", "tor-a"})
	got := waitStatus(t, client, "n1", func(s *v1alpha1.SpeakerStatus) bool { return len(s.Status.Announcements) == 2 })
	if p := got.Status.BGPPools; len(p) != 2 || p[0].Pool != "tor-a" || p[1].Pool != "tor-b" || !p[0].Since.Time.Equal(t0) {
		t.Errorf("bgp pools %+v, want tor-a and tor-b since %v", p, t0)
	}
	if got.Status.State != v1alpha1.SpeakerRunning || !got.Status.Since.Time.Equal(t0) {
		t.Errorf("state %q since %v, want Running since %v", got.Status.State, got.Status.Since, t0)
	}
	if a := got.Status.Announcements; a[0].IP != "203.0.113.1" || a[1].IP != "203.0.113.2" {
		t.Errorf("announcements not sorted by address: %+v", a)
	}
	if s := got.Status.Announcements[1].Services; len(s) != 2 || s[0] != "dev/api" {
		t.Errorf("services not sorted: %v", s)
	}
	if !got.Status.Announcements[0].Since.Time.Equal(t0) {
		t.Errorf("since %v, want %v", got.Status.Announcements[0].Since, t0)
	}
	if got.Labels[v1alpha1.LabelState] != "Running" {
		t.Errorf("labels %v lack %s=Running", got.Labels, v1alpha1.LabelState)
	}
	if refs := got.OwnerReferences; len(refs) != 1 || refs[0].Kind != "Node" || refs[0].UID != "uid-n1" {
		t.Errorf("owner references %+v, want the Node", refs)
	}

	// An unchanged address keeps its Since; a moved one gets a new one.
	c.Set(t0.Add(time.Minute))
	r.SetAnnouncements([]v1alpha1.Announcement{
		{IP: "203.0.113.2", Mode: "layer2", Interface: "eth1", Services: []string{"dev/web", "dev/api"}},
		{IP: "203.0.113.1", Mode: "bgp", Services: []string{"prod/db"}},
	}, []string{"tor-a", "tor-c"})
	got = waitStatus(t, client, "n1", func(s *v1alpha1.SpeakerStatus) bool {
		return len(s.Status.Announcements) == 2 && s.Status.Announcements[1].Interface == "eth1"
	})
	if !got.Status.Announcements[0].Since.Time.Equal(t0) || !got.Status.Announcements[1].Since.Time.Equal(c.Now()) {
		t.Errorf("since: %v and %v, want %v and %v", got.Status.Announcements[0].Since, got.Status.Announcements[1].Since, t0, c.Now())
	}
	if p := got.Status.BGPPools; len(p) != 2 || p[0].Pool != "tor-a" || !p[0].Since.Time.Equal(t0) || p[1].Pool != "tor-c" || !p[1].Since.Time.Equal(c.Now()) {
		t.Errorf("bgp pools %+v: want tor-a still since %v, tor-c since %v", p, t0, c.Now())
	}
	if !got.Status.Since.Time.Equal(t0) {
		t.Errorf("the speaker Running since %v after its announcements changed; want since %v, when it entered Running", got.Status.Since, t0)
	}

	r.SetAnnouncements(nil, nil)
	got = waitStatus(t, client, "n1", func(s *v1alpha1.SpeakerStatus) bool {
		return len(s.Status.Announcements) == 0 && len(s.Status.BGPPools) == 0
	})
	if got.Labels[v1alpha1.LabelState] != "Running" {
		t.Errorf("labels %v: want %s=Running with nothing announced", got.Labels, v1alpha1.LabelState)
	}
}

func TestReporterBGPSessions(t *testing.T) {
	client := newFakeClient()
	c := &clock{now: t0}
	r := startReporter(t, client, "n1", c)

	r.SetBGPPeers(map[string]string{"tor1": "198.51.100.1", "tor2": "198.51.100.3"})
	waitStatus(t, client, "n1", func(s *v1alpha1.SpeakerStatus) bool {
		return len(s.Status.BGPSessions) == 2 && s.Status.BGPSessions[0].State == v1alpha1.BGPConnecting
	})
	c.Set(t0.Add(5 * time.Second))
	r.SetBGPSession(v1alpha1.BGPSession{Peer: "tor1", State: v1alpha1.BGPEstablished, Reason: "established"})
	got := waitStatus(t, client, "n1", func(s *v1alpha1.SpeakerStatus) bool {
		return len(s.Status.BGPSessions) == 2 && s.Status.BGPSessions[0].State == v1alpha1.BGPEstablished
	})
	if !got.Status.BGPSessions[0].Since.Time.Equal(c.Now()) || !got.Status.BGPSessions[1].Since.Time.Equal(t0) {
		t.Errorf("since: %+v", got.Status.BGPSessions)
	}
	// A peer no longer configured for this node goes, and a late event
	// about it does not bring it back.
	r.SetBGPPeers(map[string]string{"tor1": "198.51.100.1"})
	r.SetBGPSession(v1alpha1.BGPSession{Peer: "tor2", State: v1alpha1.BGPDown, Reason: "late"})
	got = waitStatus(t, client, "n1", func(s *v1alpha1.SpeakerStatus) bool { return len(s.Status.BGPSessions) == 1 })
	if got.Status.BGPSessions[0].State != v1alpha1.BGPEstablished || got.Status.BGPSessions[0].Address != "198.51.100.1" {
		t.Errorf("the remaining session lost its state: %+v", got.Status.BGPSessions[0])
	}
	time.Sleep(3 * coalesce)
	if got = waitStatus(t, client, "n1", func(*v1alpha1.SpeakerStatus) bool { return true }); len(got.Status.BGPSessions) != 1 {
		t.Errorf("a removed peer came back: %+v", got.Status.BGPSessions)
	}
}

// Someone else's change to this node's object is undone.
func TestReporterRewritesForeignChange(t *testing.T) {
	client := newFakeClient()
	r := startReporter(t, client, "n1", &clock{now: t0})
	r.SetAnnouncements([]v1alpha1.Announcement{{IP: "203.0.113.7", Mode: "vip", Interface: "eth0", Services: []string{"dev/web"}}}, nil)
	got := waitStatus(t, client, "n1", func(s *v1alpha1.SpeakerStatus) bool { return len(s.Status.Announcements) == 1 })

	got.Status = v1alpha1.SpeakerStatusStatus{State: v1alpha1.SpeakerUnreachable, Since: metav1.NewTime(t0)}
	u, err := v1alpha1.ToUnstructured(got)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Resource(v1alpha1.SpeakerStatusResource).Update(context.Background(), u, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, client, "n1", func(s *v1alpha1.SpeakerStatus) bool {
		return s.Status.State == v1alpha1.SpeakerRunning && len(s.Status.Announcements) == 1
	})
}

func TestDepartedSpeakersMarkedUnreachable(t *testing.T) {
	announcing := func(name string) *v1alpha1.SpeakerStatus {
		return &v1alpha1.SpeakerStatus{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1alpha1.LabelState: "Running"}},
			Status: v1alpha1.SpeakerStatusStatus{State: v1alpha1.SpeakerRunning, Since: metav1.NewTime(t0),
				Announcements: []v1alpha1.Announcement{{IP: "203.0.113.9", Mode: "layer2", Services: []string{"dev/web"}, Since: metav1.NewTime(t0)}}},
		}
	}
	idle := announcing("n5")
	idle.Status.Announcements = nil
	client := newFakeClient(announcing("n3"), announcing("n4"), idle)
	a := startReporter(t, client, "n1", &clock{now: t0})
	b := startReporter(t, client, "n2", &clock{now: t0})

	// Every speaker alive: nothing to clear.
	b.MembersChanged([]string{"n2", "n1", "n3", "n4"})
	a.MembersChanged([]string{"n4", "n3", "n2", "n1"})
	// n2 is not the lowest alive member: it leaves the sweep to n1.
	b.MembersChanged([]string{"n1", "n2"})
	time.Sleep(300 * time.Millisecond) // a wrong sweep would have happened by now
	for _, n := range []string{"n3", "n4"} {
		waitStatus(t, client, n, func(s *v1alpha1.SpeakerStatus) bool { return s.Status.State == v1alpha1.SpeakerRunning })
	}

	a.MembersChanged([]string{"n1", "n2", "n4"}) // n3 left
	gone := waitStatus(t, client, "n3", func(s *v1alpha1.SpeakerStatus) bool { return s.Status.State == v1alpha1.SpeakerUnreachable })
	if len(gone.Status.Announcements) != 0 || gone.Labels[v1alpha1.LabelState] != "Unreachable" || gone.Status.Reason == "" {
		t.Errorf("departed n3 not emptied: %+v labels %v", gone.Status, gone.Labels)
	}
	waitStatus(t, client, "n4", func(s *v1alpha1.SpeakerStatus) bool { return s.Status.State == v1alpha1.SpeakerRunning })
	// A departed speaker that announced nothing is marked too: the mark is
	// how a speaker cut off from memberlist learns the others live.
	gone = waitStatus(t, client, "n5", func(s *v1alpha1.SpeakerStatus) bool { return s.Status.State == v1alpha1.SpeakerUnreachable })
	if gone.Status.MarkedBy != "n1" {
		t.Errorf("n5 marked by %q, want n1", gone.Status.MarkedBy)
	}
}

// A speaker learns that another marked it Unreachable, once per mark, and
// not from a mark its previous run found.
func TestReporterNoticesMark(t *testing.T) {
	client := newFakeClient(&v1alpha1.SpeakerStatus{
		ObjectMeta: metav1.ObjectMeta{Name: "n1"},
		Status:     v1alpha1.SpeakerStatusStatus{State: v1alpha1.SpeakerUnreachable, MarkedBy: "n2", Since: metav1.NewTime(t0)},
	})
	marks := make(chan string, 10)
	r := New(client, client.meta, Options{NodeName: "n1", Now: (&clock{now: t0}).Now, OnMarked: func(by string) { marks <- by }})
	defer r.Start(context.Background())()
	// The old mark is overwritten, and does not count.
	running := waitStatus(t, client, "n1", func(s *v1alpha1.SpeakerStatus) bool { return s.Status.State == v1alpha1.SpeakerRunning })
	select {
	case by := <-marks:
		t.Fatalf("a mark left from a previous run was reported (by %s)", by)
	default:
	}
	running.Status = v1alpha1.SpeakerStatusStatus{State: v1alpha1.SpeakerUnreachable, MarkedBy: "n3", Since: metav1.NewTime(t0)}
	u, err := v1alpha1.ToUnstructured(running)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Resource(v1alpha1.SpeakerStatusResource).Update(context.Background(), u, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case by := <-marks:
		if by != "n3" {
			t.Errorf("marked by %q, want n3", by)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the mark was not reported")
	}
}

func TestStopWritesStopped(t *testing.T) {
	client := newFakeClient()
	c := &clock{now: t0}
	r, stopRun := runReporter(client, "n1", c)
	r.SetAnnouncements([]v1alpha1.Announcement{{IP: "203.0.113.7", Mode: "vip", Interface: "eth0", Services: []string{"dev/web"}}}, nil)
	waitStatus(t, client, "n1", func(s *v1alpha1.SpeakerStatus) bool { return len(s.Status.Announcements) == 1 })
	stopRun()
	c.Set(t0.Add(time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.Stop(ctx)
	got := waitStatus(t, client, "n1", func(s *v1alpha1.SpeakerStatus) bool { return s.Status.State == v1alpha1.SpeakerStopped })
	if len(got.Status.Announcements) != 0 || len(got.Status.BGPSessions) != 0 {
		t.Errorf("a stopped speaker lists %+v", got.Status)
	}
	if !got.Status.Since.Time.Equal(c.Now()) {
		t.Errorf("stopped since %v, want %v", got.Status.Since, c.Now())
	}
}

// BenchmarkObjectSize reports what one announcement costs in the stored
// object (JSON, as etcd keeps custom resources), for the object-size limit
// discussed in docs/architecture.md.
func BenchmarkObjectSize(b *testing.B) {
	const n = 5000
	st := &v1alpha1.SpeakerStatus{ObjectMeta: metav1.ObjectMeta{Name: "node-with-a-typical-name-01"}}
	st.Status = v1alpha1.SpeakerStatusStatus{State: v1alpha1.SpeakerRunning, Since: metav1.NewTime(t0)}
	for i := range n {
		st.Status.Announcements = append(st.Status.Announcements, v1alpha1.Announcement{
			IP: fmt.Sprintf("198.51.%d.%d", 100+i/256%3, i%256), Mode: "layer2", Interface: "enp1s0f0",
			Services: []string{fmt.Sprintf("team-%03d/service-%05d", i%100, i)}, Since: metav1.NewTime(t0),
		})
	}
	var size int
	for b.Loop() {
		u, err := v1alpha1.ToUnstructured(st)
		if err != nil {
			b.Fatal(err)
		}
		data, err := u.MarshalJSON()
		if err != nil {
			b.Fatal(err)
		}
		size = len(data)
	}
	b.ReportMetric(float64(size)/n, "bytes/announcement")
	b.ReportMetric(float64(1536*1024)/(float64(size)/n), "announcements/1.5MiB")
}

// TestOnlyTheSweeperCountsMembers: a membership change costs the other
// speakers no write, however many nodes there are.
func TestOnlyTheSweeperCountsMembers(t *testing.T) {
	client := newFakeClient()
	r := startReporter(t, client, "n2", &clock{now: t0})
	r.SetAnnouncements([]v1alpha1.Announcement{{IP: "203.0.113.9", Mode: "layer2", Interface: "eth0", Services: []string{"default/web"}}}, nil)
	r.MembersChanged([]string{"n1", "n2", "n3"})
	waitStatus(t, client, "n2", func(s *v1alpha1.SpeakerStatus) bool { return s.Status.AnnouncedAddresses == 1 })
	writes := func() int {
		n := 0
		for _, a := range client.Actions() {
			if a.GetVerb() == "create" || a.GetVerb() == "update" || a.GetVerb() == "patch" {
				n++
			}
		}
		return n
	}
	before := writes()
	r.MembersChanged([]string{"n1", "n2"}) // n3 left
	r.MembersChanged([]string{"n1", "n2", "n4"})
	time.Sleep(3 * coalesce)
	if got := writes() - before; got != 0 {
		t.Errorf("two membership changes cost a non-sweeper %d writes, want 0", got)
	}
	obj, err := client.Resource(v1alpha1.SpeakerStatusResource).Get(context.Background(), "n2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := v1alpha1.FromUnstructured(obj); st.Status.Members != 0 {
		t.Errorf("a non-sweeper counts members: %d", st.Status.Members)
	}
	// n1 gone: n2 sweeps now, and counts them.
	r.MembersChanged([]string{"n2", "n4"})
	waitStatus(t, client, "n2", func(s *v1alpha1.SpeakerStatus) bool { return s.Status.Members == 2 })
}

// TestPartitionedSpeakerNeitherSweepsNorIsSwept: a speaker standing down on
// the smaller side reads Partitioned and marks no one; the other side's
// sweep leaves its object alone; once the partition is over it reads
// Running again.
func TestPartitionedSpeakerNeitherSweepsNorIsSwept(t *testing.T) {
	client := newFakeClient()
	cut := startReporter(t, client, "n1", &clock{now: t0})
	other := startReporter(t, client, "n2", &clock{now: t0})
	other.MembersChanged([]string{"n2"})
	waitStatus(t, client, "n2", func(s *v1alpha1.SpeakerStatus) bool { return s.Status.State == v1alpha1.SpeakerRunning })

	// n1, alone and the lowest name on its side, stands down.
	cut.SetPartitioned(true)
	cut.MembersChanged([]string{"n1"})
	p := waitStatus(t, client, "n1", func(s *v1alpha1.SpeakerStatus) bool { return s.Status.State == v1alpha1.SpeakerPartitioned })
	if p.Labels[v1alpha1.LabelState] != "Partitioned" || p.Status.Reason == "" || p.Status.Members != 1 {
		t.Errorf("partitioned object: labels %v, status %+v", p.Labels, p.Status)
	}
	// n2 sweeps (it is alone on its side too, and the lowest there).
	other.MembersChanged([]string{"n2", "n3"})
	other.MembersChanged([]string{"n2"})
	time.Sleep(300 * time.Millisecond) // a wrong sweep would have happened by now
	waitStatus(t, client, "n2", func(s *v1alpha1.SpeakerStatus) bool { return s.Status.State == v1alpha1.SpeakerRunning })
	waitStatus(t, client, "n1", func(s *v1alpha1.SpeakerStatus) bool { return s.Status.State == v1alpha1.SpeakerPartitioned })

	cut.SetPartitioned(false)
	waitStatus(t, client, "n1", func(s *v1alpha1.SpeakerStatus) bool { return s.Status.State == v1alpha1.SpeakerRunning })
}

// TestReporterOnACRDWithoutBGPPools: a CRD older than the speaker (helm
// upgrade leaves CRDs alone) prunes status.bgpPools. Every write would then
// differ from what is stored and be written again; the reporter stops
// writing the field instead, and tries it again later.
func TestReporterOnACRDWithoutBGPPools(t *testing.T) {
	client := newFakeClient()
	tracker := client.Tracker()
	pruned := 0
	client.PrependReactor("*", "speakerstatuses", func(action k8stesting.Action) (bool, runtime.Object, error) {
		switch action.GetVerb() {
		case "create", "update", "patch":
		default:
			return false, nil, nil
		}
		_, obj, err := k8stesting.ObjectReaction(tracker)(action)
		if err != nil || obj == nil {
			return true, obj, err
		}
		u := obj.(*unstructured.Unstructured)
		if _, found, _ := unstructured.NestedSlice(u.Object, "status", "bgpPools"); found {
			pruned++
			unstructured.RemoveNestedField(u.Object, "status", "bgpPools")
			if err := tracker.Update(v1alpha1.SpeakerStatusResource, u, ""); err != nil {
				return true, nil, err
			}
		}
		return true, u, nil
	})
	c := &clock{now: t0}
	r := startReporter(t, client, "n1", c)
	r.SetAnnouncements([]v1alpha1.Announcement{{IP: "203.0.113.9", Mode: "layer2", Interface: "eth0", Services: []string{"default/web"}}}, []string{"routed"})
	waitStatus(t, client, "n1", func(s *v1alpha1.SpeakerStatus) bool { return len(s.Status.Announcements) == 1 })
	writes := func() int {
		n := 0
		for _, a := range client.Actions() {
			if v := a.GetVerb(); v == "create" || v == "update" || v == "patch" {
				n++
			}
		}
		return n
	}
	// Each second a write would carry a new time (Since, were it written on every change).
	settled := writes()
	for range 6 {
		c.Set(c.Now().Add(time.Second))
		time.Sleep(2 * coalesce)
		r.queue.Add("n1")
	}
	if n := writes() - settled; n > 1 || pruned != 1 {
		t.Errorf("%d more writes once the field was dropped, %d writes pruned; want at most 1 and 1", n, pruned)
	}
	// Later, the field is tried again.
	c.Set(c.Now().Add(bgpPoolsRetry))
	r.SetAnnouncements(nil, []string{"routed"})
	waitStatus(t, client, "n1", func(s *v1alpha1.SpeakerStatus) bool { return len(s.Status.Announcements) == 0 })
	if pruned != 2 {
		t.Errorf("after %v the field was written %d times in all, want 2", bgpPoolsRetry, pruned)
	}
}

func TestRequiresUpdateTime(t *testing.T) {
	kind := v1alpha1.SpeakerStatusKind.GroupKind()
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"an older CRD's required field", apierrors.NewInvalid(kind, "n1", field.ErrorList{field.Required(field.NewPath("status", "updateTime"), "")}), true},
		{"another required field", apierrors.NewInvalid(kind, "n1", field.ErrorList{field.Required(field.NewPath("status", "state"), "")}), false},
		{"a bad value of it", apierrors.NewInvalid(kind, "n1", field.ErrorList{field.Invalid(field.NewPath("status", "updateTime"), "x", "not a time")}), false},
		{"a conflict", apierrors.NewConflict(v1alpha1.SpeakerStatusResource.GroupResource(), "n1", errors.New("changed")), false},
		{"none", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := requiresUpdateTime(tc.err); got != tc.want {
				t.Errorf("requiresUpdateTime(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
