package detach

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Up starts the server: it wipes the state directory, starts this program
// as "serve -dir <Dir> <serveArgs>", and waits until serve says it is ready.
// serve is expected to give up by itself after timeout; Up sends it SIGTERM
// if it is still not ready 10 s later.
//
// If the server already runs and is ready, Up says so and returns false; if
// it runs but is not ready, Up fails.
func (s Server) Up(serveArgs []string, timeout time.Duration) (started bool, err error) {
	if pid, ok := s.Running(); ok {
		if s.Ready() {
			fmt.Fprintf(os.Stderr, "%s already running (pid %d)\n", s.Name, pid)
			return false, nil
		}
		return false, fmt.Errorf("a %s (pid %d) is starting or unhealthy; run `down` first", s.Name, pid)
	}
	// Fresh state every time: a previous run's etcd data and certificates
	// would only cause confusion.
	if err := os.RemoveAll(s.Dir); err != nil {
		return false, err
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return false, err
	}

	self, err := os.Executable()
	if err != nil {
		return false, err
	}
	log, err := os.OpenFile(s.LogPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return false, err
	}
	defer log.Close()
	cmd := exec.Command(self, append([]string{"serve", "-dir", s.Dir}, serveArgs...)...)
	cmd.Stdout, cmd.Stderr = log, log
	// A new session: no controlling terminal, not in the shell's job, so it
	// outlives this command and ^C here.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return false, err
	}
	fmt.Fprintf(os.Stderr, "starting %s in %s (pid %d, log %s)\n", s.Name, s.Dir, cmd.Process.Pid, log.Name())

	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(timeout + 10*time.Second) // serve enforces timeout itself
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return false, fmt.Errorf("serve exited (%v) before the %s was ready; %s:\n%s", err, s.Name, log.Name(), tail(log.Name(), 30))
		case <-deadline:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			return false, fmt.Errorf("%s not ready after %v; sent SIGTERM to pid %d; see %s", s.Name, timeout, cmd.Process.Pid, log.Name())
		case <-tick.C:
			if s.Ready() {
				return true, nil
			}
		}
	}
}

// tail returns the last n lines of the file at path, or why it cannot.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
