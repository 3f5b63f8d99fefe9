package framework

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// EnvHelm names a Helm CLI to use instead of building one.
const EnvHelm = "IRONLB_HELM"

// helmModuleDir is the module pinning the Helm version the tests build.
const helmModuleDir = "test/manifests/helmrender"

var (
	helmOnce sync.Once
	helmPath string
	helmErr  error
)

// HelmBinary returns a Helm CLI: $IRONLB_HELM, or the version pinned by
// test/manifests/helmrender/go.mod, built once into
// .cache/bin/helm-<version> unless a binary of that version is already
// there.
func HelmBinary() (string, error) {
	helmOnce.Do(func() { helmPath, helmErr = ensureHelm() })
	return helmPath, helmErr
}

func ensureHelm() (string, error) {
	if p := os.Getenv(EnvHelm); p != "" {
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	modDir := filepath.Join(root, helmModuleDir)
	version, err := requiredVersion(filepath.Join(modDir, "go.mod"), "helm.sh/helm/v3")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(root, ".cache", "bin", "helm-"+version)
	if out, err := exec.Command(bin, "version", "--template", "{{.Version}}").Output(); err == nil && strings.TrimSpace(string(out)) == version {
		return bin, nil
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	// A private temporary file renamed into place: concurrent test runs
	// never see a half-written binary.
	tmp, err := os.CreateTemp(filepath.Dir(bin), filepath.Base(bin)+".tmp.")
	if err != nil {
		return "", err
	}
	_ = tmp.Close()
	defer os.Remove(tmp.Name())
	fmt.Fprintf(os.Stderr, "building Helm %s from %s (a minute or two on a cold module cache)\n", version, helmModuleDir)
	cmd := exec.Command("go", "build", "-mod=readonly", "-trimpath",
		"-ldflags=-s -w -X helm.sh/helm/v3/internal/version.version="+version,
		"-o", tmp.Name(), "helm.sh/helm/v3/cmd/helm")
	cmd.Dir = modDir
	// The module stands alone: never let a go.work pull it into another.
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building Helm from %s: %v\n%s", modDir, err, out)
	}
	if err := os.Rename(tmp.Name(), bin); err != nil {
		return "", err
	}
	return bin, nil
}
