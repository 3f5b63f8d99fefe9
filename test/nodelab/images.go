package nodelab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/images"
)

// The lab's own images, made from test/cmd/pause and test/cmd/echo.
const (
	// PauseImage is every node's pod sandbox image.
	PauseImage = "localhost/ironlb-lab/pause:v1"
	// EchoImage is the demo app: an HTTP server on port EchoPort that
	// answers "pod=<POD_NAME> node=<NODE_NAME> client=<address>".
	EchoImage = "localhost/ironlb-lab/echo:v1"
	EchoPort  = 8080
)

var labImages = []struct {
	spec images.Spec
	tag  string
}{
	{images.Spec{Name: "pause", User: "65535:65535", Description: "the real-node lab's pod sandbox"}, PauseImage},
	{images.Spec{Name: "echo", User: "65532:65532", Ports: []string{"8080/tcp"}, Description: "the real-node lab's demo app"}, EchoImage},
}

// buildLabImages compiles the lab's programs (static) and writes one docker
// archive per image into dir.
func buildLabImages(ctx context.Context, dir string) ([]string, error) {
	root, err := framework.RepoRoot()
	if err != nil {
		return nil, err
	}
	binDir := filepath.Join(dir, "bin")
	args := []string{"build", "-trimpath", "-o", binDir + "/"}
	for _, img := range labImages {
		args = append(args, "./test/cmd/"+img.spec.Name)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go %v: %w: %s", args, err, out)
	}
	ca, err := images.ReadCABundle()
	if err != nil {
		return nil, err
	}
	var archives []string
	for _, img := range labImages {
		binary, err := os.ReadFile(filepath.Join(binDir, img.spec.Name))
		if err != nil {
			return nil, err
		}
		built, err := images.Build(img.spec, binary, ca, runtime.GOARCH)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", img.spec.Name, err)
		}
		tag, err := name.NewTag(img.tag)
		if err != nil {
			return nil, err
		}
		file := filepath.Join(dir, img.spec.Name+".tar")
		if err := images.WriteArchive(file, built, tag); err != nil {
			return nil, err
		}
		archives = append(archives, file)
	}
	return archives, nil
}

// IronLBArchives writes ironlb's two images into dir, from the binaries the
// tests run ($IRONLB_BIN_DIR, or built once per test binary), tagged as the
// install manifests run them: what `make image` makes (images.WriteArchives).
func IronLBArchives(dir string) ([]string, error) {
	root, err := framework.RepoRoot()
	if err != nil {
		return nil, err
	}
	bin, err := framework.IronLBBinaries()
	if err != nil {
		return nil, err
	}
	archives, err := images.WriteArchives(root, bin, dir, runtime.GOARCH)
	if err != nil {
		return nil, err
	}
	files := make([]string, len(archives))
	for i, a := range archives {
		files[i] = a.File
	}
	return files, nil
}
