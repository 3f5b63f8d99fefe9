package ipam

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
)

// TestConcurrentAllocateRelease has many goroutines allocate and release in
// parallel on pools too small for all of them, sharing some addresses, while
// another checks the allocator's invariants, among them that two services
// hold the same address only when their sharing allows it.
func TestConcurrentAllocateRelease(t *testing.T) {
	a := newAllocator(t,
		poolSpec(t, "small", "198.51.100.0/28", "2001:db8::/124"),
		poolSpec(t, "spill", "198.51.100.64/29"),
	)
	const workers, rounds, servicesPerWorker = 8, 400, 4
	sharings := []Sharing{
		{},
		{Key: "web", Ports: []Port{tcp(80)}},
		{Key: "web", Ports: []Port{tcp(443)}},
		{Key: "dns", Ports: []Port{tcp(53)}},
		{Key: "dns", Ports: []Port{udp(53)}},
	}

	done := make(chan struct{})
	var observer sync.WaitGroup
	observer.Go(func() {
		for {
			if err := a.checkInvariants(); err != nil {
				t.Error(err)
				return
			}
			select {
			case <-done:
				return
			default:
			}
		}
	})

	// Each worker owns its services, so it alone knows their sharing.
	sharingOf := make([]map[string]Sharing, workers)
	var wg sync.WaitGroup
	for w := range workers {
		sharingOf[w] = map[string]Sharing{}
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for range rounds {
				service := fmt.Sprintf("ns%d/svc%d", w, rng.IntN(servicesPerWorker))
				if rng.IntN(4) == 0 {
					a.Release(service)
					delete(sharingOf[w], service)
					continue
				}
				v4 := FamilyRequest{Family: IPv4, Required: true, Pools: []string{"small", "spill"}}
				if rng.IntN(4) == 0 {
					v4.IP = netip.AddrFrom4([4]byte{198, 51, 100, byte(rng.IntN(16))})
				}
				v6 := FamilyRequest{Family: IPv6, Required: rng.IntN(2) == 0, Pools: []string{"small"}}
				r := Request{Service: service, Sharing: sharings[rng.IntN(len(sharings))], Families: []FamilyRequest{v4, v6}}
				got, err := a.Allocate(r)
				if err != nil {
					continue
				}
				sharingOf[w][service] = r.Sharing
				held := a.Addresses(service)
				for i := range got {
					got[i].Kept = true
				}
				if !slices.Equal(got, held) {
					t.Errorf("%s: Allocate() = %v but Addresses() = %v", service, got, held)
				}
			}
		})
	}
	wg.Wait()
	close(done)
	observer.Wait()

	if err := a.checkInvariants(); err != nil {
		t.Fatal(err)
	}
	holders := map[netip.Addr][]string{}
	sharing := map[string]Sharing{}
	for _, m := range sharingOf {
		for service, s := range m {
			sharing[service] = s
			for _, as := range a.Addresses(service) {
				holders[as.Addr] = append(holders[as.Addr], service)
			}
		}
	}
	if len(holders) == 0 {
		t.Fatal("no address is held at the end")
	}
	for addr, services := range holders {
		for i, x := range services {
			for _, y := range services[i+1:] {
				if !sharing[x].compatible(sharing[y]) {
					t.Errorf("%s is held by %s %v and %s %v", addr, x, sharing[x], y, sharing[y])
				}
			}
		}
	}
}
