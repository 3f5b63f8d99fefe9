package framework

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Peer is another load-balancer implementation whose real binary the
// benchmarks run next to ironlb's. Each is built from a tools module of its
// own, test/peers/<Name> (ironlb's go.mod never requires a peer), by
// hack/ensure-peers.sh, into .cache/bin.
type Peer struct {
	// Name is the argument of hack/ensure-peers.sh.
	Name string
	// Dir is the folder under test/peers holding its tools module; default
	// Name (MetalLB's speaker is built from its controller's module).
	Dir string
	// Module is the Go module the tools module requires by exact version.
	Module string
}

// The peers hack/ensure-peers.sh knows how to build.
var (
	PeerKubeVIP = Peer{Name: "kube-vip-cloud-provider", Module: "github.com/kube-vip/kube-vip-cloud-provider"}
	PeerMetalLB = Peer{Name: "metallb", Module: "go.universe.tf/metallb"}
	// PeerMetalLBSpeaker is MetalLB's speaker, from the same module.
	PeerMetalLBSpeaker = Peer{Name: "metallb-speaker", Dir: "metallb", Module: "go.universe.tf/metallb"}
)

// dir is the peer's folder under test/peers.
func (p Peer) dir() string {
	if p.Dir != "" {
		return p.Dir
	}
	return p.Name
}

// peerBuildTimeout bounds hack/ensure-peers.sh: a cold module cache and
// build of one peer on two busy cores take a few minutes.
const peerBuildTimeout = 20 * time.Minute

// Version returns the version of Module that test/peers/<Name>/go.mod
// requires, e.g. "v0.16.1".
func (p Peer) Version() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return requiredVersion(filepath.Join(root, "test", "peers", p.dir(), "go.mod"), p.Module)
}

// Binary returns the path of the peer's binary, building it with
// hack/ensure-peers.sh first if it is not cached yet (its progress goes to
// this process's stderr).
func (p Peer) Binary(ctx context.Context) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, peerBuildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "hack", "ensure-peers.sh"), p.Name)
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/ensure-peers.sh %s: %w", p.Name, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == p.Name {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("hack/ensure-peers.sh %s printed no binary: %q", p.Name, out)
}

// ModuleDir returns the folder of the peer's module source in the module
// cache (for the manifests and CRDs the release ships), downloading it if
// needed.
func (p Peer) ModuleDir(ctx context.Context) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	dir := filepath.Join(root, "test", "peers", p.dir())
	goCmd := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("go %s in test/peers/%s: %w: %s", strings.Join(args, " "), p.dir(), err, strings.TrimSpace(stderr.String()))
		}
		return strings.TrimSpace(string(out)), nil
	}
	list := []string{"list", "-m", "-f", "{{.Dir}}", p.Module}
	src, err := goCmd(list...)
	if err == nil && src == "" {
		// go list leaves Dir empty for a module not downloaded yet.
		if _, err = goCmd("mod", "download", p.Module); err == nil {
			src, err = goCmd(list...)
		}
	}
	if err == nil && src == "" {
		err = fmt.Errorf("go list -m %s in test/peers/%s: the module has no folder in the module cache", p.Module, p.dir())
	}
	return src, err
}
