package nodelab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ironlb/ironlb/test/framework"
)

// cgroupFS is where the machine mounts its cgroup hierarchies.
const cgroupFS = "/sys/fs/cgroup"

// cgroupParent holds every node's cgroup root, in every hierarchy.
const cgroupParent = "ironlb-nodelab"

// cgroupRoot is a node's cgroup root as kubelet takes it (cgroupRoot).
func cgroupRoot(netns string) string { return "/" + cgroupParent + "/" + netns }

// hierarchies lists the mounted cgroup hierarchies (cpu, memory, …, and the
// unified one on a hybrid machine).
func hierarchies() ([]string, error) {
	entries, err := os.ReadDir(cgroupFS)
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, e := range entries {
		p := filepath.Join(cgroupFS, e.Name())
		// Skip the symlinks (cpu -> cpu,cpuacct) and plain files.
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			dirs = append(dirs, p)
		}
	}
	if _, err := os.Stat(filepath.Join(cgroupFS, "cgroup.controllers")); err == nil {
		// A pure cgroup v2 machine mounts the one hierarchy at cgroupFS.
		dirs = []string{cgroupFS}
	}
	return dirs, nil
}

// createCgroupRoot makes root in every hierarchy. cpuset cgroups start with
// no CPUs or memory nodes, so they get their parent's.
func createCgroupRoot(root string) error {
	hs, err := hierarchies()
	if err != nil {
		return err
	}
	for _, h := range hs {
		parts := strings.Split(strings.Trim(root, "/"), "/")
		dir := h
		for _, part := range parts {
			parent := dir
			dir = filepath.Join(dir, part)
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("cgroup %s: %w", dir, err)
			}
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(parent, f))
				if err != nil {
					continue // not the cpuset hierarchy
				}
				if cur, _ := os.ReadFile(filepath.Join(dir, f)); strings.TrimSpace(string(cur)) != "" {
					continue
				}
				if err := os.WriteFile(filepath.Join(dir, f), v, 0); err != nil {
					return fmt.Errorf("cgroup %s: %s: %w", dir, f, err)
				}
			}
		}
	}
	return nil
}

// cgroupPids lists the processes in root and below, in every hierarchy.
func cgroupPids(root string) []int {
	hs, _ := hierarchies()
	seen := map[int]bool{}
	var pids []int
	for _, h := range hs {
		_ = filepath.WalkDir(filepath.Join(h, root), func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			if err != nil {
				return nil
			}
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && !seen[pid] && pid != os.Getpid() {
					seen[pid] = true
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

// removeCgroupRoot kills every process in root and removes its cgroups,
// deepest first, in every hierarchy. Bounded by ctx.
func removeCgroupRoot(ctx context.Context, root string) error {
	var left []string
	err := framework.WaitFor(ctx, 10*time.Second, 50*time.Millisecond, func(context.Context) (bool, error) {
		for _, pid := range cgroupPids(root) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		left = left[:0]
		hs, _ := hierarchies()
		for _, h := range hs {
			var dirs []string
			_ = filepath.WalkDir(filepath.Join(h, root), func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					dirs = append(dirs, p)
				}
				return nil
			})
			slices.Reverse(dirs) // children first
			for _, d := range dirs {
				if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
					left = append(left, d)
				}
			}
		}
		return len(left) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("cgroups left behind: %s: %w", strings.Join(left, ", "), err)
	}
	return nil
}

// Sweep removes the cgroups (and kills the pods in them) of clusters whose
// lab is gone, as after a crash: a cgroup root is named after its node's
// namespace, which a lab deletes when it closes and netlab.Sweep deletes
// when its process died. Start sweeps too.
func Sweep(ctx context.Context, logf func(string, ...any)) {
	hs, _ := hierarchies()
	stale := map[string]bool{}
	for _, h := range hs {
		entries, _ := os.ReadDir(filepath.Join(h, cgroupParent))
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			if _, err := os.Stat(filepath.Join("/run/netns", e.Name())); errors.Is(err, fs.ErrNotExist) {
				stale[e.Name()] = true
			}
		}
	}
	for netns := range stale {
		logf("nodelab: removing cgroups of a cluster that is gone (%s)", netns)
		if err := removeCgroupRoot(ctx, cgroupRoot(netns)); err != nil {
			logf("nodelab: %v", err)
		}
	}
	if len(stale) > 0 {
		removeCgroupParent()
	}
}

// removeCgroupParent removes the folder of every node's cgroup root, in
// every hierarchy, unless another cluster's nodes are still in it.
func removeCgroupParent() {
	hs, _ := hierarchies()
	for _, h := range hs {
		_ = os.Remove(filepath.Join(h, cgroupParent))
	}
}
