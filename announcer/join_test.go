package announcer

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ironlb/ironlb/announcer/membership"
	"github.com/ironlb/ironlb/config"
)

// joiningMembers answers a join to live at once and holds a join to dead
// until release is closed, as a join to a node that is down waits out a TCP
// timeout.
type joiningMembers struct {
	fakeMembers
	live, dead string
	release    chan struct{}
}

func (j *joiningMembers) Join(addrs []string) (int, error) {
	joined := 0
	for _, a := range addrs {
		switch a {
		case j.dead:
			<-j.release
		case j.live:
			j.mu.Lock()
			j.members = append(j.members, membership.Member{Name: "live", Meta: lanMeta(), MetaKnown: true})
			j.mu.Unlock()
			joined++
		}
	}
	return joined, nil
}

func nodeWithIP(name, ip string) *v1.Node {
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: v1.NodeStatus{Addresses: []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: ip}}}}
}

// TestJoinDoesNotWaitForADeadNode: a starting speaker announces as soon as
// one speaker answers, while its join to a node that is down still hangs.
func TestJoinDoesNotWaitForADeadNode(t *testing.T) {
	members := &joiningMembers{
		fakeMembers: fakeMembers{members: []membership.Member{{Name: "self", Meta: lanMeta(), MetaKnown: true}}, changes: make(chan struct{})},
		live:        "198.51.100.12", dead: "198.51.100.99",
		release: make(chan struct{}),
	}
	client := fake.NewClientset(nodeWithIP("self", "198.51.100.11"), nodeWithIP("dead", members.dead), nodeWithIP("live", members.live))
	s := NewSpeaker(client, members, SpeakerOptions{
		NodeName: "self", ConfigNamespace: config.DefaultNamespace, ConfigName: config.DefaultConfigMapName,
		JoinGrace: time.Hour, // only a join may make it ready here
	})
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.startCaches(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); s.joinLoop(ctx) }()
	t.Cleanup(func() {
		close(members.release)
		cancel()
		<-done
	})
	deadline := time.Now().Add(5 * time.Second)
	for !s.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("the speaker waited for the join to the dead node before announcing")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// countingMembers counts the joins it is asked for; only live answers.
type countingMembers struct {
	fakeMembers
	live  string
	joins atomic.Int32
}

func (c *countingMembers) Join(addrs []string) (int, error) {
	c.joins.Add(int32(len(addrs)))
	if len(addrs) == 1 && addrs[0] == c.live {
		return 1, nil
	}
	return 0, errors.New("connection refused")
}

// TestJoinContactsAFewAtOnce: a joined speaker among a thousand nodes
// contacts joinFanout of the unknown ones per round, not all: one answer
// brings the whole view, and a thousand joins would pull it a thousand
// times.
func TestJoinContactsAFewAtOnce(t *testing.T) {
	members := &countingMembers{}
	s := speakerAmongNodes(t, 1000, members)
	s.joined = true
	if missing := s.joinNodes(); missing != 999 {
		t.Errorf("%d unknown, want 999", missing)
	}
	if got := members.joins.Load(); got != joinFanout {
		t.Errorf("one round contacted %d speakers, want %d", got, joinFanout)
	}
}

// TestJoinedSpeakersContactANewNodeAFewAtATime: a node that is not a member
// yet, in a cluster of a thousand, is contacted by about joinHelpers of the
// joined speakers each round, not by all of them.
func TestJoinedSpeakersContactANewNodeAFewAtATime(t *testing.T) {
	members := &countingMembers{}
	s := speakerAmongNodes(t, 1001, members)
	s.joined = true
	for i := range 1000 {
		members.members = append(members.members, membership.Member{Name: fmt.Sprintf("node-%d", i), MetaKnown: true})
	}
	members.members = members.members[1:] // node-0 was there
	// Five rounds of each of the thousand members, as node-0 plays them.
	for range 5000 {
		if missing := s.joinNodes(); missing != 1 {
			t.Fatalf("%d unknown, want 1 (node-1000)", missing)
		}
	}
	// 5 × joinHelpers on average; the chance of none, or of 50 or more,
	// is below 1e-6. Every member contacting it would be 5,000.
	if got := members.joins.Load(); got == 0 || got >= 50 {
		t.Errorf("five rounds of a thousand members contacted the new node %d times, want about %d", got, 5*joinHelpers)
	}
}

// TestJoinSeeksUntilASpeakerAnswers: a starting speaker on a cluster where
// most nodes run no speaker keeps contacting nodes, joinFanout at a time,
// until one answers, within one round: announcing alone would claim every
// address.
func TestJoinSeeksUntilASpeakerAnswers(t *testing.T) {
	members := &countingMembers{live: "198.18.1.45"} // node-294
	s := speakerAmongNodes(t, 300, members)
	s.joinNodes()
	if !s.Ready() {
		t.Fatalf("after one round (%d contacts) the speaker has not met the one other speaker", members.joins.Load())
	}
	if got := members.joins.Load(); got > 299 {
		t.Errorf("%d contacts for 299 unknown nodes", got)
	}
}

// speakerAmongNodes is node-0's speaker, the only member it knows, among n
// Nodes (node-i at 198.18.x.y), its caches synced.
func speakerAmongNodes(t *testing.T, n int, members *countingMembers) *Speaker {
	t.Helper()
	var objs []runtime.Object
	for i := range n {
		objs = append(objs, nodeWithIP(fmt.Sprintf("node-%d", i), fmt.Sprintf("198.18.%d.%d", i/250, i%250+1)))
	}
	members.fakeMembers = fakeMembers{members: []membership.Member{{Name: "node-0", Meta: lanMeta(), MetaKnown: true}}, changes: make(chan struct{})}
	s := NewSpeaker(fake.NewClientset(objs...), members, SpeakerOptions{
		NodeName: "node-0", ConfigNamespace: config.DefaultNamespace, ConfigName: config.DefaultConfigMapName})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := s.startCaches(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}
