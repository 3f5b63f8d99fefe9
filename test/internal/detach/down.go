package detach

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Down stops the server: SIGTERM, then SIGKILL if it still runs after
// timeout, and waits (5 s more at most) until it is gone. The processes it
// started die with it if they have Pdeathsig set, as framework's do. Down
// reports whether the server was running; either way, what is left of its
// pid and ready files is stale, and is removed.
func (s Server) Down(timeout time.Duration) (wasRunning bool, err error) {
	pid, running := s.Running()
	if running {
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			return true, err
		}
		fmt.Fprintf(os.Stderr, "stopping %s (pid %d)\n", s.Name, pid)
		if !waitGone(pid, timeout) {
			fmt.Fprintf(os.Stderr, "pid %d ignored SIGTERM for %v; killing it\n", pid, timeout)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			waitGone(pid, 5*time.Second)
		}
	} else {
		fmt.Fprintf(os.Stderr, "%s is not running\n", s.Name)
	}
	_ = os.Remove(filepath.Join(s.Dir, pidFile))
	_ = os.Remove(filepath.Join(s.Dir, readyFile))
	return running, nil
}

// waitGone waits up to d for pid to exit, and reports whether it did.
func waitGone(pid int, d time.Duration) bool {
	for deadline := time.Now().Add(d); alive(pid); time.Sleep(pollInterval) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}
