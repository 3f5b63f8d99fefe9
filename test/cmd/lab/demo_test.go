package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/netlab"
)

// TestDemoUpDown runs the quick start's `make demo` path, `lab up -ironlb`,
// as its own detached process, and `lab down`: every demo service answers
// the client from a real pod, kubectl get pods lists ironlb's pods and the
// demo app, and once down, nothing is left: namespaces, cgroups, host
// paths.
func TestDemoUpDown(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal(netlab.ErrNotRoot)
	}
	bin, err := framework.IronLBBinaries()
	if err != nil {
		t.Fatal(err)
	}
	root, err := framework.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	lab := filepath.Join(tmp, "lab")
	build := exec.Command("go", "build", "-o", lab, "./test/cmd/lab")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the lab command: %v\n%s", err, out)
	}
	dir := filepath.Join(tmp, "state")
	run := func(timeout time.Duration, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, lab, args...)
		cmd.Env = append(os.Environ(), "IRONLB_BIN_DIR="+bin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	down := func() {
		if out, err := run(2*time.Minute, "down", "-dir", dir); err != nil {
			t.Errorf("lab down: %v\n%s", err, out)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "serve.log")); err == nil {
				t.Logf("serve.log:\n%s", tailLines(string(b), 40))
			}
		}
	})
	out, err := run(5*time.Minute, "up", "-ironlb", "-dir", dir, "-service-cidr=198.18.0.0/16,2001:db8:ffff::/112")
	if err != nil {
		down()
		t.Fatalf("lab up -ironlb: %v\n%s", err, out)
	}
	st, err := readState(dir)
	if err != nil {
		down()
		t.Fatal(err)
	}
	for _, want := range []string{
		"default/web ", "default/web-v6 ", "default/api ", "default/shop ", "default/intranet ", "default/routed ",
		"ironlb-speaker-", "ironlb-ccm-", "hello-",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
	if n := strings.Count(out, "  pod hello-"); n != len(demoServices) {
		t.Errorf("%d of %d demo services answered the client from a pod:\n%s", n, len(demoServices), out)
	}
	down()
	for _, ns := range st.Namespaces {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); err == nil {
			t.Errorf("namespace %s still there after lab down", ns)
		}
	}
	for _, p := range []string{"/sys/fs/cgroup/memory/ironlb-nodelab", "/var/lib/kubelet/device-plugins/kubelet.sock"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s still there after lab down", p)
		}
	}
	if links, _ := filepath.Glob("/var/log/containers/hello-*"); len(links) > 0 {
		t.Errorf("container log links left: %v", links)
	}
	if results, _ := filepath.Glob("/var/lib/cni/results/ironlb-" + st.ID + "-*"); len(results) > 0 {
		t.Errorf("CNI results left: %v", results)
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
