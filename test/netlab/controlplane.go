package netlab

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/ironlb/ironlb/test/framework"
)

// StartControlPlane runs etcd and kube-apiserver in the control plane host's
// namespace, configured by Options.ControlPlane. The apiserver serves on
// https://198.51.100.2:<port>, so processes on any lab host reach it with
// the returned ControlPlane's Kubeconfig (e.g. `ip netns exec <cp netns>
// kubectl --kubeconfig …`, or a speaker started with Host.StartProcess);
// its RESTConfig and Client dial from inside the namespace, so they work
// from the test process. Close stops it; so may the caller, earlier.
func (l *Lab) StartControlPlane(ctx context.Context) (*framework.ControlPlane, error) {
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return nil, errors.New("netlab: StartControlPlane: lab is closed")
	case l.controlPlane != nil:
		l.mu.Unlock()
		return nil, errors.New("netlab: StartControlPlane: already started")
	}
	l.mu.Unlock()

	opts := l.opts.ControlPlane
	opts.Netns = l.cp.Netns
	opts.BindAddress = l.cp.IPv4.String()
	if opts.Dir == "" {
		opts.Dir = filepath.Join(l.Dir, "controlplane")
	}
	if opts.Logf == nil {
		opts.Logf = l.logf
	}
	cp, err := framework.StartControlPlane(ctx, opts)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.controlPlane != nil {
		// Lost a race with Close or with another StartControlPlane.
		cp.Stop()
		return nil, errors.New("netlab: StartControlPlane: lab closed or control plane started meanwhile")
	}
	l.controlPlane = cp
	return cp, nil
}
