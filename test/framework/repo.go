package framework

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ModulePath is the main module whose root RepoRoot looks for.
const ModulePath = "github.com/ironlb/ironlb"

// Environment variables that override where binaries are found.
const (
	EnvKubeApiserver = "IRONLB_KUBE_APISERVER"
	EnvEtcd          = "IRONLB_ETCD"
)

// DefaultEtcdBinary is where Debian's etcd-server package installs etcd.
const DefaultEtcdBinary = "/usr/bin/etcd"

// RepoRoot returns the directory holding ironlb's go.mod, found by walking up
// from the working directory (go test runs in the package directory).
func RepoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if moduleOf(filepath.Join(dir, "go.mod")) == ModulePath {
			return dir, nil
		}
		if parent := filepath.Dir(dir); parent == dir {
			return "", fmt.Errorf("no go.mod for module %s in %s or any parent", ModulePath, wd)
		}
	}
}

// moduleOf returns the module path declared in the go.mod at path, or "".
func moduleOf(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if f := strings.Fields(stripComment(sc.Text())); len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

// KubernetesVersion returns the k8s.io/kubernetes version required by the
// tools module (test/tools/go.mod), e.g. "v1.36.3": the version of the
// kube-apiserver the tests run against.
func KubernetesVersion(repoRoot string) (string, error) {
	return requiredVersion(filepath.Join(repoRoot, "test", "tools", "go.mod"), "k8s.io/kubernetes")
}

// requiredVersion returns the version of module that the go.mod at path
// requires.
func requiredVersion(path, module string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(stripComment(sc.Text()))
		if len(f) > 0 && f[0] == "require" {
			f = f[1:] // single-line form: require MODULE vX
		}
		// Matches the require entry only; replace entries carry "=>".
		if len(f) == 2 && f[0] == module && strings.HasPrefix(f[1], "v") {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("%s does not require %s", path, module)
}

// DefaultApiserverBinary returns $IRONLB_KUBE_APISERVER if set, else
// DefaultKubeBinary("kube-apiserver").
func DefaultApiserverBinary() (string, error) {
	if p := os.Getenv(EnvKubeApiserver); p != "" {
		return p, nil
	}
	return DefaultKubeBinary("kube-apiserver")
}

// DefaultKubeBinary returns <repo>/.cache/bin/<name>-<version>, where
// hack/ensure-kube.sh builds the Kubernetes program name (kube-apiserver,
// kubelet, …) at the tools module's version. The file may not exist yet.
func DefaultKubeBinary(name string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	ver, err := KubernetesVersion(root)
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".cache", "bin", name+"-"+ver), nil
}

// DefaultEtcdBinaryPath returns $IRONLB_ETCD if set, else DefaultEtcdBinary.
func DefaultEtcdBinaryPath() string {
	if p := os.Getenv(EnvEtcd); p != "" {
		return p
	}
	return DefaultEtcdBinary
}

// checkExecutable returns a descriptive error unless path is an executable
// regular file; hint tells the reader how to get it.
func checkExecutable(what, path, hint string) error {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s binary %s does not exist: %s", what, path, hint)
	case err != nil:
		return fmt.Errorf("%s binary: %w", what, err)
	case !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("%s binary %s is not an executable file: %s", what, path, hint)
	}
	return nil
}

func stripComment(line string) string {
	if i := strings.Index(line, "//"); i >= 0 {
		return line[:i]
	}
	return line
}
