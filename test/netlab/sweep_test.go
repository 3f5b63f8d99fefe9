package netlab_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ironlb/ironlb/test/netlab"
)

const markerDir = "/run/ironlb-netlab"

// The sweep and signal tests are not parallel: every New sweeps, and would
// race them for the crashed lab they set up.

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "hold-lab" {
		os.Exit(holdLab())
	}
	os.Exit(m.Run())
}

const helperEnv = "NETLAB_TEST_HELPER"

// holdLab is the helper process: it builds a lab, leaves a stray process in
// n1 (in its own session, so it outlives the helper), reports both on
// stdout and waits to be signalled.
func holdLab() int {
	lab, err := netlab.New(context.Background(), netlab.Options{Nodes: 1, Client: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer lab.Close()
	stray := exec.Command("ip", "netns", "exec", lab.Node(1).Netns, "sleep", "300")
	stray.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := stray.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Report only once it is in n1: until ip has switched namespace and
	// exec'd sleep, it would escape a Close or Sweep.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		comm, _ := os.ReadFile("/proc/" + strconv.Itoa(stray.Process.Pid) + "/comm")
		if strings.TrimSpace(string(comm)) == "sleep" {
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "stray process never became sleep")
			return 1
		}
	}
	fmt.Printf("ready %s %d %s\n", lab.ID, stray.Process.Pid, strings.Join(lab.Namespaces(), " "))
	time.Sleep(60 * time.Second) // the test signals long before
	return 3
}

type heldLab struct {
	cmd        *exec.Cmd
	exited     chan error
	id         string
	strayPid   int
	namespaces []string
}

func startHeldLab(t *testing.T) *heldLab {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=hold-lab")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &heldLab{cmd: cmd, exited: make(chan error, 1)}
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
		h.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if h.strayPid > 0 {
			_ = syscall.Kill(h.strayPid, syscall.SIGKILL)
		}
		_, _ = netlab.Sweep(context.Background())
	})
	select {
	case line := <-lines:
		f := strings.Fields(line)
		if len(f) < 4 || f[0] != "ready" {
			t.Fatalf("helper said %q", line)
		}
		h.id = f[1]
		h.strayPid, _ = strconv.Atoi(f[2])
		h.namespaces = f[3:]
	case <-time.After(20 * time.Second):
		t.Fatal("helper lab not ready after 20s")
	}
	return h
}

func (h *heldLab) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-h.exited:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("helper still running 20s after its signal")
		return nil
	}
}

func TestSignalClosesLab(t *testing.T) {
	h := startHeldLab(t)
	if err := h.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := h.wait(t)
	// It must die of the signal, as it would have without netlab's handler.
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || !exitErr.Sys().(syscall.WaitStatus).Signaled() || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGINT {
		t.Errorf("helper exit = %v, want death by SIGINT", err)
	}
	if left := namespacesWithPrefix(t, h.id+"-"); len(left) > 0 {
		t.Errorf("namespaces left after SIGINT: %v", left)
	}
	if _, err := os.Stat(filepath.Join(markerDir, h.id+".pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("marker left after SIGINT (%v)", err)
	}
	waitDead(t, h.strayPid)
}

func TestSweepAfterCrash(t *testing.T) {
	h := startHeldLab(t)
	if err := h.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = h.wait(t)
	if left := namespacesWithPrefix(t, h.id+"-"); !slices.Equal(sorted(left), sorted(h.namespaces)) {
		// Another test process's New may have swept first; the checks
		// below still hold.
		t.Logf("after SIGKILL the lab has %v of %v; swept by someone else?", left, h.namespaces)
	}
	gone, err := netlab.Sweep(t.Context())
	if err != nil {
		t.Errorf("Sweep: %v", err)
	}
	t.Logf("Sweep deleted %v", gone)
	if left := namespacesWithPrefix(t, h.id+"-"); len(left) > 0 {
		t.Errorf("namespaces left after Sweep: %v", left)
	}
	if _, err := os.Stat(filepath.Join(markerDir, h.id+".pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("marker left after Sweep (%v)", err)
	}
	waitDead(t, h.strayPid)
}

func TestSweepSparesWhatIsNotProvablyStale(t *testing.T) {
	ctx := t.Context()
	start := selfStartTime(t)
	noMarker := fakeLab(t, "")                                           // looks like a lab, but no proof
	live := fakeLab(t, fmt.Sprintf("%d %d\n", os.Getpid(), start))       // owned by this process
	recycled := fakeLab(t, fmt.Sprintf("%d %d\n", os.Getpid(), start+1)) // pid alive, but reused
	garbled := fakeLab(t, "not a pid\n")                                 // unreadable proof
	stale := fakeLab(t, fmt.Sprintf("%d 1\n", deadPid(t)))               // owner gone

	gone, err := netlab.Sweep(ctx)
	if err == nil || !strings.Contains(err.Error(), garbled) {
		t.Errorf("Sweep error = %v, want a complaint about %s's marker", err, garbled)
	}
	for _, id := range []string{noMarker, live, garbled} {
		if left := namespacesWithPrefix(t, id+"-"); len(left) != 1 {
			t.Errorf("Sweep deleted %s-n1 (it returned %v)", id, gone)
		}
	}
	for _, id := range []string{recycled, stale} {
		if left := namespacesWithPrefix(t, id+"-"); len(left) != 0 {
			t.Errorf("Sweep left %v", left)
		}
		if !slices.Contains(gone, id+"-n1") {
			// Only if another test process's Sweep got there first.
			t.Logf("Sweep returned %v, without %s-n1", gone, id)
		}
		if _, err := os.Stat(filepath.Join(markerDir, id+".pid")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("marker of swept %s left (%v)", id, err)
		}
	}
}

// fakeLab creates the namespace <id>-n1 for a fresh id and, unless marker
// is empty, the marker file with that content. Both go when the test ends.
func fakeLab(t *testing.T, marker string) string {
	t.Helper()
	var id string
	for {
		var b [2]byte
		_, _ = rand.Read(b[:])
		id = "ilb" + hex.EncodeToString(b[:])
		_, err := os.Stat(filepath.Join(markerDir, id+".pid"))
		if errors.Is(err, os.ErrNotExist) && len(namespacesWithPrefix(t, id+"-")) == 0 {
			break
		}
	}
	ns := id + "-n1"
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", ns).Run() })
	if marker != "" {
		if err := os.MkdirAll(markerDir, 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(markerDir, id+".pid")
		if err := os.WriteFile(path, []byte(marker), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Remove(path) })
	}
	return id
}

// deadPid returns the pid of a process that has exited.
func deadPid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func selfStartTime(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return start
}

// waitDead waits until pid is gone or a zombie.
func waitDead(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) > 0 && f[0] == "Z" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("stray process %d still runs", pid)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
