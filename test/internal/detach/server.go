package detach

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The files of the state directory.
const (
	pidFile   = "serve.pid"
	readyFile = "ready"
	logFile   = "serve.log"
)

// pollInterval is how often up and down look at the serve process.
const pollInterval = 100 * time.Millisecond

// Server is a detached server, known by its state directory.
type Server struct {
	// Name says what the server is, in messages: "control plane", "lab".
	Name string
	// Dir is the state directory, an absolute path.
	Dir string
}

// LogPath is the file serve's output goes to.
func (s Server) LogPath() string { return filepath.Join(s.Dir, logFile) }

// Ready reports whether the server said it is usable.
func (s Server) Ready() bool {
	_, err := os.Stat(filepath.Join(s.Dir, readyFile))
	return err == nil
}

// Running returns the pid in the pid file if that process is alive and is
// the serve process of this state directory, not another that got the pid
// since.
func (s Server) Running() (pid int, ok bool) {
	b, err := os.ReadFile(filepath.Join(s.Dir, pidFile))
	if err != nil {
		return 0, false
	}
	pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || !alive(pid) {
		return 0, false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0, false
	}
	argv := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if len(argv) < 4 || argv[1] != "serve" || !slices.Contains(argv, s.Dir) {
		return 0, false
	}
	return pid, true
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// Format: pid (comm) state ...; comm may contain spaces or parens.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
