package framework

import (
	"context"
	"fmt"
	"net"
	"time"
)

// WaitFor polls cond every interval until it returns true, returns an error,
// or timeout (or ctx) expires. cond gets a context bounded by the same
// deadline. A non-nil error from cond stops the wait and is returned as is;
// report transient failures as (false, nil).
//
// It is meant for tests observing eventually-consistent state; production
// code should watch instead.
func WaitFor(ctx context.Context, timeout, interval time.Duration, cond func(ctx context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		ok, err := cond(ctx)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("condition not met within %v: %w", timeout, context.Cause(ctx))
		case <-ticker.C:
		}
	}
}

// Sleep waits for d, or until ctx ends (its error then).
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. Another
// process can take it before the caller binds it; callers that hand it to a
// child process should retry on "address already in use".
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
