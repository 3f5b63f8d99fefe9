package detach

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Serve runs the serve subcommand: it writes this process's pid to the
// state directory, so that down and status find it, and calls run with a
// context that SIGTERM, SIGINT or SIGHUP cancels. run sets up the server,
// calls SetReady once it is usable, and returns after tearing it down. The
// pid file goes once run has returned.
func (s Server) Serve(run func(ctx context.Context) error) error {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return err
	}
	pidPath := filepath.Join(s.Dir, pidFile)
	if err := os.WriteFile(pidPath, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	defer os.Remove(pidPath)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer stop()
	return run(ctx)
}

// SetReady tells up and status that the server is usable; content (say, the
// kubeconfig's path) goes in the ready file for people to read. Defer unset
// right away: it runs first on the way out, before the teardown, so that
// nobody takes a server that is going away for a ready one.
func (s Server) SetReady(content string) (unset func(), err error) {
	path := filepath.Join(s.Dir, readyFile)
	if err := os.WriteFile(path, []byte(content+"\n"), 0o644); err != nil {
		return nil, err
	}
	return func() { _ = os.Remove(path) }, nil
}

// Logf writes a timestamped line to stderr, which up sends to serve.log.
func Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format(time.RFC3339)}, args...)...)
}
