package detach

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serveEnv makes the test binary act as the serve process that Up starts:
// "ready" serves until a signal, "fail" fails before it is ready.
const serveEnv = "DETACH_TEST_SERVE"

func TestMain(m *testing.M) {
	if mode := os.Getenv(serveEnv); mode != "" && len(os.Args) > 1 && os.Args[1] == "serve" {
		os.Exit(fakeServe(mode, os.Args[2:]))
	}
	os.Exit(m.Run())
}

func fakeServe(mode string, args []string) int {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	dir := fs.String("dir", "", "")
	_ = fs.Parse(args)
	srv := Server{Name: "test server", Dir: *dir}
	err := srv.Serve(func(ctx context.Context) error {
		if mode == "fail" {
			return errors.New("boom: cannot start")
		}
		unset, err := srv.SetReady("usable")
		if err != nil {
			return err
		}
		defer unset()
		<-ctx.Done()
		return nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func TestUpCheckDown(t *testing.T) {
	t.Setenv(serveEnv, "ready")
	srv := Server{Name: "test server", Dir: filepath.Join(t.TempDir(), "state")}
	t.Cleanup(func() { _, _ = srv.Down(time.Second) })

	if _, err := srv.Check(); err == nil || err.Error() != "not running" {
		t.Fatalf("Check before Up = %v, want not running", err)
	}
	started, err := srv.Up(nil, 10*time.Second)
	if err != nil || !started {
		t.Fatalf("Up = %v, %v; want started", started, err)
	}
	pid, err := srv.Check()
	if err != nil {
		t.Fatalf("Check after Up: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(srv.Dir, readyFile)); err != nil || string(b) != "usable\n" {
		t.Errorf("ready file = %q, %v; want what SetReady wrote", b, err)
	}
	if started, err := srv.Up(nil, time.Second); err != nil || started {
		t.Errorf("Up of a running server = %v, %v; want not started, no error", started, err)
	}

	wasRunning, err := srv.Down(10 * time.Second)
	if err != nil || !wasRunning {
		t.Fatalf("Down = %v, %v; want it was running", wasRunning, err)
	}
	if alive(pid) {
		t.Errorf("serve (pid %d) still alive after Down", pid)
	}
	for _, f := range []string{pidFile, readyFile} {
		if _, err := os.Stat(filepath.Join(srv.Dir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after Down: %v", f, err)
		}
	}
	if wasRunning, err := srv.Down(time.Second); err != nil || wasRunning {
		t.Errorf("second Down = %v, %v; want not running", wasRunning, err)
	}
}

func TestUpReportsWhyServeFailed(t *testing.T) {
	t.Setenv(serveEnv, "fail")
	srv := Server{Name: "test server", Dir: filepath.Join(t.TempDir(), "state")}
	started, err := srv.Up(nil, 10*time.Second)
	if started || err == nil || !strings.Contains(err.Error(), "before the test server was ready") || !strings.Contains(err.Error(), "boom: cannot start") {
		t.Fatalf("Up = %v, %v; want an error quoting serve's log", started, err)
	}
	if _, ok := srv.Running(); ok {
		t.Error("a failed serve counts as running")
	}
}

func TestRunningIgnoresOtherProcesses(t *testing.T) {
	srv := Server{Name: "test server", Dir: t.TempDir()}
	// Our own pid is alive but not a serve process of srv.Dir, as after
	// the pid was recycled.
	if err := os.WriteFile(filepath.Join(srv.Dir, pidFile), []byte(fmt.Sprintln(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	if pid, ok := srv.Running(); ok {
		t.Errorf("Running = %d, true for a process that is not serve", pid)
	}
}

func TestTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(path, []byte("1\n2\n3\n4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := tail(path, 2); got != "3\n4" {
		t.Errorf("tail(2) = %q, want %q", got, "3\n4")
	}
	if got := tail(path, 10); got != "1\n2\n3\n4" {
		t.Errorf("tail(10) = %q, want the whole file", got)
	}
	if got := tail(filepath.Join(path, "missing"), 2); got == "" {
		t.Error("tail of a missing file says nothing")
	}
}
