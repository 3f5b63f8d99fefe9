// Command image builds ironlb's two container images without a container
// engine (`make image`): docker archives at <out>/ironlb-ccm.tar and
// <out>/ironlb-speaker.tar, tagged as the install manifests reference them
// (manifests/base/kustomization.yaml's images), which `docker load`,
// `podman load` and `ctr images import` read. With -push REGISTRY it also
// pushes them there (credentials from the docker config, as docker login
// writes them).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path"
	"runtime"
	"syscall"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/images"
)

func main() {
	bin := flag.String("bin", "bin", "folder holding the static ironlb-ccm and ironlb-speaker binaries (make build)")
	out := flag.String("out", "bin/images", "folder the archives are written to")
	arch := flag.String("arch", runtime.GOARCH, "the binaries' architecture")
	push := flag.String("push", "", "also push the images to this registry (e.g. registry.example:5000/ironlb), with the manifests' tags")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *bin, *out, *arch, *push); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, bin, out, arch, push string) error {
	root, err := framework.RepoRoot()
	if err != nil {
		return err
	}
	archives, err := images.WriteArchives(root, bin, out, arch)
	if err != nil {
		return err
	}
	for _, a := range archives {
		fmt.Printf("%s %s %s\n", a.File, a.Tag, a.Digest)
		if push == "" {
			continue
		}
		dest, err := name.NewTag(push + "/" + path.Base(a.Tag.RepositoryStr()) + ":" + a.Tag.TagStr())
		if err != nil {
			return err
		}
		if err := remote.Write(dest, a.Image, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			return fmt.Errorf("pushing %s: %w", dest, err)
		}
		fmt.Printf("pushed %s\n", dest)
	}
	return nil
}
