package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ironlb/ironlb/test/framework"
)

const (
	// defaultCmdTimeout bounds a command whose context has no deadline.
	defaultCmdTimeout = 30 * time.Second
	// cmdWaitDelay bounds how long a finished command's stray children may
	// hold its output pipes open.
	cmdWaitDelay = 2 * time.Second
)

// run runs name with args and returns its combined output. The error carries
// the command line and output. A ctx without deadline gets
// defaultCmdTimeout.
func run(ctx context.Context, stdin string, name string, args ...string) (string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultCmdTimeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = cmdWaitDelay
	err := cmd.Run()
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("%w (%w)", err, ctxErr)
		}
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// checkLabNetns refuses any name that is not a lab namespace. Every command
// that changes links, addresses, routes or sysctls goes through it, so a bug
// here can never aim one at the namespace the test runs in.
func checkLabNetns(netns string) error {
	if !nsPattern.MatchString(netns) {
		return fmt.Errorf("netlab: refusing to act on network namespace %q: not a lab namespace", netns)
	}
	return nil
}

// ipIn runs `ip -n netns args…`.
func ipIn(ctx context.Context, netns string, args ...string) (string, error) {
	if err := checkLabNetns(netns); err != nil {
		return "", err
	}
	return run(ctx, "", "ip", append([]string{"-n", netns}, args...)...)
}

// ipBatch runs ip commands (one per element, without the leading "ip")
// inside netns with a single `ip -n netns -batch -`, which stops at the first
// failing command and names its line.
func ipBatch(ctx context.Context, netns string, cmds []string) error {
	if err := checkLabNetns(netns); err != nil {
		return err
	}
	if len(cmds) == 0 {
		return nil
	}
	if _, err := run(ctx, strings.Join(cmds, "\n")+"\n", "ip", "-n", netns, "-batch", "-"); err != nil {
		return fmt.Errorf("%w\ncommands:\n%s", err, numbered(cmds))
	}
	return nil
}

func numbered(lines []string) string {
	var b strings.Builder
	for i, l := range lines {
		fmt.Fprintf(&b, "%3d  %s\n", i+1, l)
	}
	return b.String()
}

// setSysctls writes net.* sysctls inside netns. /proc/sys/net shows the
// network namespace of the thread that opens it, so this needs no
// `ip netns exec` (nor procps).
func setSysctls(netns string, kv ...string) error {
	if err := checkLabNetns(netns); err != nil {
		return err
	}
	if len(kv)%2 != 0 {
		return errors.New("setSysctls: odd number of arguments")
	}
	return framework.InNetns(netns, func() error {
		for i := 0; i < len(kv); i += 2 {
			key, val := kv[i], kv[i+1]
			if !strings.HasPrefix(key, "net.") {
				return fmt.Errorf("sysctl %s: only net.* sysctls are per network namespace", key)
			}
			p := path.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
			if err := os.WriteFile(p, []byte(val), 0); err != nil {
				return fmt.Errorf("sysctl %s=%s in %s: %w", key, val, netns, err)
			}
		}
		return nil
	})
}

// netnsPids lists the processes in netns, except this one (whose threads
// visit lab namespaces through framework.InNetns).
func netnsPids(ctx context.Context, netns string) ([]int, error) {
	if err := checkLabNetns(netns); err != nil {
		return nil, err
	}
	out, err := run(ctx, "", "ip", "netns", "pids", netns)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		pid, err := strconv.Atoi(f)
		if err == nil && pid > 1 && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// killNetnsProcs ends every process in netns: SIGTERM, then SIGKILL for
// those still there after grace. Processes a test started should have been
// stopped by their owners already; this is the backstop that lets the
// namespace really go away.
func killNetnsProcs(ctx context.Context, netns string, grace time.Duration) error {
	pids, err := netnsPids(ctx, netns)
	if err != nil || len(pids) == 0 {
		return err
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	if waitGone(ctx, pids, grace) {
		return nil
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if !waitGone(ctx, pids, 5*time.Second) {
		var left []int
		for _, pid := range pids {
			if alive(pid) {
				left = append(left, pid)
			}
		}
		return fmt.Errorf("processes %v in %s survived SIGKILL", left, netns)
	}
	return nil
}

// waitGone polls until none of pids is alive, for at most d.
func waitGone(ctx context.Context, pids []int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		gone := true
		for _, pid := range pids {
			if alive(pid) {
				gone = false
				break
			}
		}
		if gone {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid exists and is not a zombie (a zombie has exited;
// it only waits for its parent to reap it).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	state, _, ok := procStat(pid)
	return ok && state != 'Z'
}

// procStat returns the state and start time (clock ticks after boot) of pid
// from /proc/<pid>/stat.
func procStat(pid int) (state byte, start uint64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid …: comm may hold spaces and parentheses, so
	// parse from the last ')'. starttime is field 22, the 20th after comm.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, 0, false
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], start, true
}
