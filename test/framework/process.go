package framework

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// DefaultStopGrace is how long a process gets to exit after SIGTERM before it
// is killed, when its context ends or Stop is called without a timeout.
const DefaultStopGrace = 10 * time.Second

// ProcessOptions configures StartProcessWith.
type ProcessOptions struct {
	// Name labels the process in errors and in the log file.
	Name string
	// LogPath receives the process's stdout and stderr (appended, so a
	// restarted process keeps its earlier output). Required.
	LogPath string
	// Netns, if set, runs the command inside that named network namespace
	// via `ip netns exec`.
	Netns string
	// Env is appended to the test binary's environment.
	Env []string
	// Dir is the working directory; empty means the current one.
	Dir string
	// StopGrace bounds the SIGTERM→SIGKILL escalation when the start
	// context ends. Default DefaultStopGrace.
	StopGrace time.Duration
}

// Process is a supervised child process. Its output goes to a log file, it
// runs in its own process group, and it is SIGKILLed by the kernel if the
// process that started it dies, so a crashed or killed test leaves nothing
// behind.
type Process struct {
	Name    string
	LogPath string
	Netns   string

	cmd       *exec.Cmd
	logOffset int64 // where this run's output starts in LogPath
	done      chan struct{}
	err       error // valid once done is closed
}

// StartProcess starts cmd with args, logging to logPath. The process lives
// until it exits, Stop or Kill is called, or ctx ends; in the last case it is
// stopped as by Stop(DefaultStopGrace).
func StartProcess(ctx context.Context, name, logPath string, cmd string, args ...string) (*Process, error) {
	return StartProcessWith(ctx, ProcessOptions{Name: name, LogPath: logPath}, cmd, args...)
}

// StartProcessInNetns is StartProcess inside the named network namespace
// (created beforehand, e.g. with `ip netns add`).
func StartProcessInNetns(ctx context.Context, netns, name, logPath string, cmd string, args ...string) (*Process, error) {
	return StartProcessWith(ctx, ProcessOptions{Name: name, LogPath: logPath, Netns: netns}, cmd, args...)
}

// StartProcessWith starts cmd with args as configured by opts. See
// StartProcess for the lifetime rules.
func StartProcessWith(ctx context.Context, opts ProcessOptions, cmd string, args ...string) (*Process, error) {
	if opts.LogPath == "" {
		return nil, errors.New("StartProcess: LogPath is required")
	}
	if opts.Name == "" {
		opts.Name = filepath.Base(cmd)
	}
	if opts.StopGrace <= 0 {
		opts.StopGrace = DefaultStopGrace
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start %s: %w", opts.Name, err)
	}
	if opts.Netns != "" {
		// `ip netns exec` execs the command after setns, so the pid we track
		// is the command's own.
		args = append([]string{"netns", "exec", opts.Netns, cmd}, args...)
		cmd = "ip"
	}
	if err := os.MkdirAll(filepath.Dir(opts.LogPath), 0o755); err != nil {
		return nil, fmt.Errorf("start %s: %w", opts.Name, err)
	}
	logFile, err := os.OpenFile(opts.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", opts.Name, err)
	}
	// The child holds its own copy of the descriptor; ours is only for the
	// start/exit markers.
	defer logFile.Close()

	// Not exec.CommandContext: its escalation kills only the pid, while Stop
	// also kills the process group.
	c := exec.Command(cmd, args...)
	c.Dir = opts.Dir
	c.Env = append(os.Environ(), opts.Env...)
	c.Stdin = nil // /dev/null
	c.Stdout = logFile
	c.Stderr = logFile
	c.SysProcAttr = &syscall.SysProcAttr{
		// Own process group: signals aimed at the test (e.g. ^C) are not
		// delivered twice, and Kill can take down helpers the process forked.
		Setpgid: true,
		// The kernel kills the child when the thread that forked it dies. Go
		// only retires threads whose goroutine exits while locked to them,
		// which nothing here does, so in practice this means "when the test
		// binary dies".
		Pdeathsig: syscall.SIGKILL,
	}

	logOffset, err := logFile.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", opts.Name, err)
	}
	fmt.Fprintf(logFile, "=== %s starting %s: %s\n", time.Now().Format(time.RFC3339Nano), opts.Name, shellQuote(c.Args))
	if err := c.Start(); err != nil {
		fmt.Fprintf(logFile, "=== start failed: %v\n", err)
		return nil, fmt.Errorf("start %s: %w", opts.Name, err)
	}
	p := &Process{Name: opts.Name, LogPath: opts.LogPath, Netns: opts.Netns, cmd: c, logOffset: logOffset, done: make(chan struct{})}
	go p.reap()
	if ctx.Done() != nil {
		go func() {
			select {
			case <-ctx.Done():
				_ = p.Stop(opts.StopGrace)
			case <-p.done:
			}
		}()
	}
	return p, nil
}

func (p *Process) reap() {
	err := p.cmd.Wait()
	if f, ferr := os.OpenFile(p.LogPath, os.O_WRONLY|os.O_APPEND, 0); ferr == nil {
		status := "exited with status 0"
		if err != nil {
			status = err.Error()
		}
		fmt.Fprintf(f, "=== %s %s (pid %d) %s\n", time.Now().Format(time.RFC3339Nano), p.Name, p.Pid(), status)
		f.Close()
	}
	p.err = err
	close(p.done)
}

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait blocks until the process exits and returns its exit error (nil for
// status 0; an *exec.ExitError otherwise).
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Signal sends sig to the process itself (not its group). It is a no-op once
// the process has exited.
func (p *Process) Signal(sig os.Signal) error {
	if p.Exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s: %w", p.Name, err)
	}
	return nil
}

// Kill SIGKILLs the process and its process group, waits for it, and returns
// what Wait returns.
func (p *Process) Kill() error {
	p.killGroup()
	return p.Wait()
}

// Stop sends SIGTERM, waits up to timeout (DefaultStopGrace if <= 0), then
// SIGKILLs the process group. It returns what Wait returns, so a process that
// had to be killed reports "signal: killed".
func (p *Process) Stop(timeout time.Duration) error {
	if timeout <= 0 {
		timeout = DefaultStopGrace
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.killGroup()
	}
	return p.Wait()
}

func (p *Process) killGroup() {
	if p.Exited() {
		return
	}
	// The child is its own group leader (Setpgid), so -pid is its group; the
	// group cannot be recycled while the unreaped leader still holds the id.
	if err := syscall.Kill(-p.Pid(), syscall.SIGKILL); err != nil {
		_ = p.cmd.Process.Kill()
	}
}

// LogTail returns the last n lines of the process's log.
func (p *Process) LogTail(n int) string {
	return fileTail(p.LogPath, n)
}

// output returns up to the last max bytes this run of the process logged
// (earlier runs may share the file).
func (p *Process) output(max int64) string {
	f, err := os.Open(p.LogPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	start := p.logOffset
	if st, err := f.Stat(); err == nil && st.Size()-start > max {
		start = st.Size() - max
	}
	b, _ := io.ReadAll(io.NewSectionReader(f, start, 1<<62))
	return string(b)
}

// fileTail returns the last n lines of the file at path, or a note saying why
// it cannot.
func fileTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	// Logs can be large; the last 256 KiB hold far more than the lines
	// anyone asks for.
	const window = 256 << 10
	if st, err := f.Stat(); err == nil && st.Size() > window {
		if _, err := f.Seek(-window, io.SeekEnd); err != nil {
			return fmt.Sprintf("(read log: %v)", err)
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && !strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
			q[i] = a
			continue
		}
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// stopAll stops processes one after the other (order matters: clients before
// the servers they depend on), each bounded by timeout, ignoring nils. Exit
// errors are expected after a signal and not reported.
func stopAll(timeout time.Duration, procs ...*Process) {
	for _, p := range procs {
		if p != nil {
			_ = p.Stop(timeout)
		}
	}
}
