package netlab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

const (
	// netnsDir is where `ip netns add` mounts named namespaces.
	netnsDir = "/run/netns"
	// markerDir holds one <id>.pid file per lab: the proof Sweep needs that
	// a namespace is a lab's, and whether its owner still runs.
	markerDir = "/run/ironlb-netlab"
)

// sweepGrace is how long processes left in a stale lab get after SIGTERM.
const sweepGrace = time.Second

// owner is the content of a marker file: the process that owns the lab, and
// its start time, which tells a recycled pid from the owner.
type owner struct {
	pid   int
	start uint64
}

func (o owner) String() string {
	return strconv.Itoa(o.pid) + " " + strconv.FormatUint(o.start, 10) + "\n"
}

// alive reports whether the owner still runs (not a new process that got the
// same pid).
func (o owner) alive() bool {
	if !alive(o.pid) {
		return false
	}
	_, start, ok := procStat(o.pid)
	return !ok || o.start == 0 || start == o.start
}

func self() owner {
	_, start, _ := procStat(os.Getpid())
	return owner{pid: os.Getpid(), start: start}
}

func markerPath(id string) string { return filepath.Join(markerDir, id+".pid") }

func readMarker(id string) (owner, error) {
	b, err := os.ReadFile(markerPath(id))
	if err != nil {
		return owner{}, err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return owner{}, fmt.Errorf("marker %s: malformed %q", markerPath(id), b)
	}
	pid, err1 := strconv.Atoi(f[0])
	start, err2 := strconv.ParseUint(f[1], 10, 64)
	if err1 != nil || err2 != nil || pid <= 0 {
		return owner{}, fmt.Errorf("marker %s: malformed %q", markerPath(id), b)
	}
	return owner{pid: pid, start: start}, nil
}

// claimID picks a fresh lab id and writes its marker, naming this process as
// the owner, before any namespace exists: a lab without a marker would be
// out of Sweep's reach.
func claimID() (string, error) {
	if err := os.MkdirAll(markerDir, 0o755); err != nil {
		return "", err
	}
	for range 20 {
		var b [2]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		id := "ilb" + hex.EncodeToString(b[:])
		if inUse, err := namespacesOf(id); err != nil || len(inUse) > 0 {
			continue
		}
		f, err := os.OpenFile(markerPath(id), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		_, err = f.WriteString(self().String())
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(f.Name())
			return "", err
		}
		return id, nil
	}
	return "", errors.New("netlab: no free lab id after 20 tries")
}

// namespacesOf lists the named network namespaces of lab id.
func namespacesOf(id string) ([]string, error) {
	all, err := labNamespaces()
	return all[id], err
}

// labNamespaces returns the named network namespaces that look like a lab's,
// by id. Looks are not proof: see Sweep.
func labNamespaces() (map[string][]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	byID := map[string][]string{}
	for _, e := range entries {
		if m := nsPattern.FindStringSubmatch(e.Name()); m != nil {
			byID[m[1]] = append(byID[m[1]], e.Name())
		}
	}
	return byID, nil
}

// Sweep deletes what crashed labs left behind and returns the namespaces it
// deleted. A lab is crashed when its marker file
// /run/ironlb-netlab/<id>.pid names a process that no longer runs; then its
// namespaces (<id>-*) lose their processes and are deleted, and its marker
// and temporary directory go. A namespace that merely looks like a lab's,
// without a marker, is never touched, nor is a lab whose owner still runs.
//
// New calls Sweep; `go run ./test/cmd/lab down` does too.
func Sweep(ctx context.Context) ([]string, error) {
	byID, err := labNamespaces()
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for id := range byID {
		ids[id] = true
	}
	markers, err := os.ReadDir(markerDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, m := range markers {
		if id, ok := strings.CutSuffix(m.Name(), ".pid"); ok && idPattern.MatchString(id) {
			ids[id] = true
		}
	}
	sorted := make([]string, 0, len(ids))
	for id := range ids {
		sorted = append(sorted, id)
	}
	sort.Strings(sorted)

	var removed []string
	var errs []error
	for _, id := range sorted {
		o, err := readMarker(id)
		if errors.Is(err, fs.ErrNotExist) {
			continue // no proof that these are ours
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if o.alive() {
			continue
		}
		gone, err := removeLab(ctx, id, byID[id])
		removed = append(removed, gone...)
		if err != nil {
			errs = append(errs, fmt.Errorf("sweep lab %s (owner pid %d is gone): %w", id, o.pid, err))
		}
	}
	return removed, errors.Join(errs...)
}

// removeLab kills the processes in namespaces, deletes them, then the lab's
// temporary directories and its marker (last: until then, a failed removal
// can be retried by the next Sweep). It returns the namespaces it deleted.
func removeLab(ctx context.Context, id string, namespaces []string) ([]string, error) {
	var removed []string
	var errs []error
	for _, ns := range namespaces {
		if err := killNetnsProcs(ctx, ns, sweepGrace); err != nil {
			errs = append(errs, err)
		}
		if err := deleteNetns(ctx, ns); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, ns)
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tempDirPattern(id)))
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		if err := os.Remove(markerPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return removed, errors.Join(errs...)
}

// tempDirPattern matches the temporary directories of lab id (created by
// New when Options.Dir is empty).
func tempDirPattern(id string) string { return "ironlb-netlab-" + id + "-*" }

// deleteNetns deletes a lab namespace; one already gone is not an error.
func deleteNetns(ctx context.Context, netns string) error {
	if err := checkLabNetns(netns); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(netnsDir, netns)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	_, err := run(ctx, "", "ip", "netns", "delete", netns)
	return err
}
