package announcer

import (
	"context"
	"net/netip"
	"sync"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/util/workqueue"

	"github.com/ironlb/ironlb/config"
)

// recordingBGP records the passwords each SetConfig was given.
type recordingBGP struct {
	mu    sync.Mutex
	calls []map[string]string
}

func (b *recordingBGP) SetConfig(_ context.Context, _ *config.BGP, _ string, _, passwords map[string]string, _ netip.Addr) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, passwords)
	return nil
}

func (b *recordingBGP) last() (int, map[string]string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.calls) == 0 {
		return 0, nil
	}
	return len(b.calls), b.calls[len(b.calls)-1]
}

// A password Secret created after the config (or an API error reading it)
// is retried with backoff: the peer gets its password without any config
// change, and a sync in between does not read the Secret again.
func TestBGPPasswordSecretIsRetried(t *testing.T) {
	const cfgYAML = `
pools:
- {name: routed, addresses: [203.0.113.0/28], mode: bgp}
bgp:
  localASN: 64515
  peers:
  - name: tor1
    address: 198.51.100.1
    asn: 64512
    passwordSecretRef: {name: bgp-tor1, key: password}
`
	cm := &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: config.DefaultNamespace, Name: config.DefaultConfigMapName},
		Data:       map[string]string{config.ConfigMapKey: cfgYAML},
	}
	client := fake.NewClientset(cm, node("n1", nil))
	bgp := &recordingBGP{}
	s := NewSpeaker(client, &fakeMembers{changes: make(chan struct{})}, SpeakerOptions{
		NodeName: "n1", ConfigNamespace: config.DefaultNamespace, ConfigName: config.DefaultConfigMapName,
		Protocols: map[config.Mode]Protocol{config.ModeBGP: &recordingProtocol{}},
		BGP:       bgp,
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	startSynced(t, ctx, s)
	calls, passwords := bgp.last()
	if calls != 1 || passwords["tor1"] != "" {
		t.Fatalf("after the first sync: %d calls, passwords %v; want one call without tor1's password", calls, passwords)
	}
	if s.bgpRetryDelay != bgpRetryMin {
		t.Errorf("retry in %v, want %v", s.bgpRetryDelay, bgpRetryMin)
	}
	// Another sync with the same inputs leaves the retry to its schedule.
	if err := s.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if calls, _ := bgp.last(); calls != 1 {
		t.Errorf("a sync before the retry configured BGP again (%d calls)", calls)
	}
	// A retry that still fails backs off.
	s.retryBGP(ctx)
	if s.bgpRetryDelay != 2*bgpRetryMin {
		t.Errorf("after a second failure: retry in %v, want %v", s.bgpRetryDelay, 2*bgpRetryMin)
	}

	secret := &v1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: config.DefaultNamespace, Name: "bgp-tor1"},
		Data:       map[string][]byte{"password": []byte("s3cret")},
	}
	if _, err := client.CoreV1().Secrets(config.DefaultNamespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The queue delivers bgpKey after the delay; call what it calls.
	s.retryBGP(ctx)
	calls, passwords = bgp.last()
	if passwords["tor1"] != "s3cret" {
		t.Fatalf("after the Secret appeared: %d calls, passwords %v; want tor1's password", calls, passwords)
	}
	if s.bgpRetryDelay != 0 || s.bgpFailed != nil {
		t.Errorf("after success: retry delay %v, failed inputs %v; want none", s.bgpRetryDelay, s.bgpFailed)
	}
	// Applied: syncs no longer configure BGP.
	if err := s.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if again, _ := bgp.last(); again != calls {
		t.Errorf("a sync after success configured BGP again (%d calls, was %d)", again, calls)
	}
}

func TestBGPRetryBackoffIsBounded(t *testing.T) {
	s := &Speaker{queue: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())}
	defer s.queue.ShutDown()
	for range 20 {
		s.scheduleBGPRetry(context.DeadlineExceeded)
	}
	if s.bgpRetryDelay != bgpRetryMax {
		t.Errorf("delay after 20 failures %v, want the cap %v", s.bgpRetryDelay, bgpRetryMax)
	}
}
