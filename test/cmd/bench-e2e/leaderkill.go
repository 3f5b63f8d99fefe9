package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ironlb/ironlb/test/framework"
)

const (
	// leaseName is ironlb-ccm's leader-election Lease, in
	// framework.IronLBNamespace.
	leaseName = "ironlb-cloud-controller-manager"
	// firstLeaderTimeout bounds the first replica's wait for the Lease; it
	// starts alone, so it takes the Lease at once.
	firstLeaderTimeout = 60 * time.Second
	leasePoll          = 100 * time.Millisecond
	leaseGetTimeout    = 5 * time.Second
)

// killReport is what the leader-kill mode saw around the kill.
type killReport struct {
	// victim and standby are the replicas' process names; holder the
	// victim's identity in the Lease, newHolder the next one.
	victim, standby, holder, newHolder string
	// killedAt is when the SIGKILL went out, at after the first create.
	killedAt time.Time
	at       time.Duration
	// createdAtKill and assignedAtKill count the Services created and
	// holding an address at the kill.
	createdAtKill, assignedAtKill int
	// leaseDuration is the Lease's own leaseDurationSeconds.
	leaseDuration time.Duration
	// takeover runs from the kill until the standby held the Lease; 0 if it
	// never did within the run.
	takeover time.Duration
	// standbyLogged says whether the standby's log reports acquiring it.
	standbyLogged bool
	// err says why the kill or the takeover did not happen.
	err error
}

func (k *killReport) lines(r *result) []string {
	if k.killedAt.IsZero() {
		return []string{fmt.Sprintf("NO KILL: %v", k.err)}
	}
	out := []string{fmt.Sprintf("killed the leader %s (Lease holder %s) with SIGKILL %s after the first create, when %d of %d Services were created and %d had an address",
		k.victim, k.holder, human(k.at), k.createdAtKill, r.n, k.assignedAtKill)}
	if k.takeover > 0 {
		out = append(out, fmt.Sprintf("%s held the Lease %s after the kill (leaseDurationSeconds %s; its log reports acquiring it: %t)",
			k.standby, human(k.takeover), human(k.leaseDuration), k.standbyLogged))
	} else {
		out = append(out, fmt.Sprintf("%s never held the Lease within the run (%v)", k.standby, k.err))
	}
	switch {
	case r.complete() && !r.lastIP.After(k.killedAt):
		out = append(out, "every Service had an address before the kill")
	case r.complete():
		out = append(out, fmt.Sprintf("all assigned %s after the kill", human(r.lastIP.Sub(k.killedAt))))
	default:
		out = append(out, fmt.Sprintf("%d of %d assigned when the run gave up, %s after the kill", r.assigned(), r.n, human(r.waited-k.at)))
	}
	return out
}

// benchLeaderKill runs two ironlb-ccm replicas as installed (binary
// leader-election defaults), creates the Services, and kills the leader with
// SIGKILL opts.leaderKill after the first create. The leader is whichever
// replica the Lease names: the first replica starts alone and takes the
// Lease, so its identity is known before the second starts.
func benchLeaderKill(ctx context.Context, opts options, c contestant, setup setup) (_ *result, err error) {
	load := loadAverage()
	logf("=== %s, leader kill after %v: starting etcd + kube-apiserver (service CIDR %s)", c.name, opts.leaderKill, serviceCIDR)
	cp, err := startControlPlane(ctx, opts, c)
	if err != nil {
		return nil, err
	}
	defer cp.Stop()
	defer func() {
		if err != nil && opts.logs != "" {
			logf("logs kept in %s", cp.Dir)
		}
	}()
	pool := poolPrefixes(opts.n)
	if err := framework.ApplyConfig(ctx, cp.Client, poolConfig(pool)); err != nil {
		return nil, fmt.Errorf("apply ironlb-config: %w", err)
	}
	client, err := benchClient(cp)
	if err != nil {
		return nil, err
	}

	args := c.ironlbArgs(setup.installed)
	a, err := cp.StartCCM(ctx, framework.CCMOptions{Name: "ironlb-ccm-a", Args: args})
	if err != nil {
		return nil, fmt.Errorf("start ironlb-ccm-a: %w", err)
	}
	defer func() { _ = a.Stop(ccmStopGrace) }()
	idA, err := waitLeaseHolder(ctx, client, firstLeaderTimeout)
	if err != nil {
		return nil, fmt.Errorf("ironlb-ccm-a never took the Lease: %w\n%s", err, a.LogTail(30))
	}
	logf("ironlb-ccm-a holds the Lease as %s; starting ironlb-ccm-b", idA)
	b, err := cp.StartCCM(ctx, framework.CCMOptions{Name: "ironlb-ccm-b", Args: args})
	if err != nil {
		return nil, fmt.Errorf("start ironlb-ccm-b: %w", err)
	}
	defer func() { _ = b.Stop(ccmStopGrace) }()

	if err := warmUp(ctx, client, c); err != nil {
		return nil, fmt.Errorf("%w\n--- ironlb-ccm-a log tail ---\n%s", err, a.LogTail(30))
	}
	tr := newTracker(c.addresses)
	stopWatch, err := watchServices(ctx, client, tr)
	if err != nil {
		return nil, err
	}
	defer stopWatch()

	res := &result{c: c, label: c.label(), n: opts.n, loadAvg: load, cmdline: commandLine(a.Process, cp.Dir)}
	runCtx, cancel := context.WithTimeout(ctx, opts.timeout)
	defer cancel()
	k := &killReport{}
	var brokenOnce sync.Once
	broken := make(chan struct{}) // a replica that should live has exited
	tookOver := make(chan struct{})
	killerDone := make(chan struct{})

	start := time.Now()
	created := createServices(runCtx, client, opts.n, opts.clients, tr)
	go func() {
		defer close(killerDone)
		standby := killLeader(runCtx, client, k, start, opts.leaderKill, idA, a, b, created, tr)
		close(tookOver)
		var died <-chan struct{}
		if standby != nil {
			died = standby.Done()
		} else if k.killedAt.IsZero() {
			died = anyDone(runCtx, a.Done(), b.Done())
		}
		if died == nil {
			return
		}
		select {
		case <-died:
			brokenOnce.Do(func() { close(broken) })
		case <-runCtx.Done():
		}
	}()
	stopped := waitForIPs(runCtx, tr, created, start, opts.n, broken, cp.Apiserver.Done())
	// Everything may be assigned before the kill, or before the standby
	// takes over: the kill and the takeover are still measured, within the
	// run's bound.
	select {
	case <-tookOver:
	case <-runCtx.Done():
	}
	res.waited = time.Since(start)
	cancel()
	<-created.done
	<-killerDone
	res.kill = k
	select {
	case <-broken:
		return nil, fmt.Errorf("an ironlb-ccm replica that should run exited during the run\n--- ironlb-ccm-a ---\n%s\n--- ironlb-ccm-b ---\n%s", a.LogTail(20), b.LogTail(20))
	default:
	}
	switch {
	case ctx.Err() != nil:
		return nil, context.Cause(ctx)
	case cp.Apiserver.Exited():
		return nil, fmt.Errorf("kube-apiserver exited during the run (%v)\n%s", cp.Apiserver.Wait(), cp.LogTails(30))
	case stopped:
		res.endedBy = fmt.Sprintf("gave up after %v", opts.timeout)
	default:
		res.endedBy = "all created Services got an IP"
	}

	tr.summarize(res, start)
	res.createErrors = created.errors.Load()
	res.createErrorSamples = created.samples()
	listCtx, cancelList := context.WithTimeout(ctx, collectTimeout)
	defer cancelList()
	if err := checkAddresses(listCtx, client, c, pool, res); err != nil {
		return res, fmt.Errorf("checking the handed-out addresses: %w", err)
	}
	if k.err != nil && k.killedAt.IsZero() {
		return res, fmt.Errorf("leader kill: %w", k.err)
	}
	logf("%s (leader kill) done: %d/%d Services got an IP in %v (%s)", c.name, res.assigned(), res.n, res.total.Round(time.Millisecond), res.endedBy)
	return res, nil
}

// killLeader waits until after, reads the Lease, kills the replica holding
// it with SIGKILL, then waits for the other to take the Lease. It fills in k
// and returns the standby, or nil if there was no kill.
func killLeader(ctx context.Context, client kubernetes.Interface, k *killReport, start time.Time, after time.Duration, idA string,
	a, b *framework.CCM, created *creation, tr *tracker) *framework.CCM {
	timer := time.NewTimer(time.Until(start.Add(after)))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		k.err = errors.New("the run ended before the kill")
		return nil
	case <-a.Done():
		k.err = errors.New("ironlb-ccm-a exited before the kill")
		return nil
	case <-b.Done():
		k.err = errors.New("ironlb-ccm-b exited before the kill")
		return nil
	case <-timer.C:
	}
	holder, duration, err := leaseHolder(ctx, client)
	if err == nil && holder == "" {
		err = errors.New("the Lease names no holder")
	}
	if err != nil {
		k.err = fmt.Errorf("reading the Lease: %w", err)
		return nil
	}
	leader, standby := a, b
	if holder != idA {
		leader, standby = b, a
	}
	k.victim, k.standby, k.holder, k.leaseDuration = leader.Name, standby.Name, holder, duration
	k.createdAtKill, k.assignedAtKill = int(created.ok.Load()), tr.withIP()
	k.killedAt = time.Now()
	k.at = k.killedAt.Sub(start)
	_ = leader.Kill() // "signal: killed" is the point
	logf("  killed the leader %s (%s) with SIGKILL at %v: %d created, %d with an address", leader.Name, holder, k.at.Round(time.Millisecond), k.createdAtKill, k.assignedAtKill)

	tick := time.NewTicker(leasePoll)
	defer tick.Stop()
	for {
		h, _, err := leaseHolder(ctx, client)
		if err == nil && h != "" && h != holder {
			k.takeover, k.newHolder = time.Since(k.killedAt), h
			k.standbyLogged = standby.IsLeader()
			logf("  %s holds the Lease %v after the kill", standby.Name, k.takeover.Round(time.Millisecond))
			return standby
		}
		select {
		case <-ctx.Done():
			k.err = errors.New("the run ended first")
			return standby
		case <-standby.Done():
			k.err = fmt.Errorf("%s exited", standby.Name)
			return standby
		case <-tick.C:
		}
	}
}

// leaseHolder returns the holder of ironlb-ccm's Lease ("" if none yet) and
// the Lease's duration.
func leaseHolder(ctx context.Context, client kubernetes.Interface) (string, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, leaseGetTimeout)
	defer cancel()
	l, err := client.CoordinationV1().Leases(framework.IronLBNamespace).Get(ctx, leaseName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, err
	}
	var holder string
	var d time.Duration
	if l.Spec.HolderIdentity != nil {
		holder = *l.Spec.HolderIdentity
	}
	if l.Spec.LeaseDurationSeconds != nil {
		d = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	return holder, d, nil
}

// waitLeaseHolder waits until the Lease names a holder and returns it.
func waitLeaseHolder(ctx context.Context, client kubernetes.Interface, timeout time.Duration) (string, error) {
	var holder string
	err := framework.WaitFor(ctx, timeout, leasePoll, func(ctx context.Context) (bool, error) {
		h, _, err := leaseHolder(ctx, client)
		holder = h
		return err == nil && h != "", nil
	})
	return holder, err
}

// anyDone returns a channel closed once any of chans is, or never if ctx
// ends first.
func anyDone(ctx context.Context, chans ...<-chan struct{}) <-chan struct{} {
	out := make(chan struct{})
	var once sync.Once
	for _, ch := range chans {
		go func() {
			select {
			case <-ch:
				once.Do(func() { close(out) })
			case <-ctx.Done():
			}
		}()
	}
	return out
}
