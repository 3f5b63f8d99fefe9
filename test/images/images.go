// Package images builds ironlb's two container images without a container
// engine (go-containerregistry), from the same static binaries `make build`
// makes, as the Dockerfile's ccm and speaker stages describe them: the same
// paths, users, ports, labels and entrypoints, on a base with what
// distroless/static-debian12 gives a static Go binary (CA certificates,
// /etc/passwd with root, nobody and nonroot, /tmp, nsswitch.conf). The base
// is made here rather than pulled: a build machine may reach no registry.
package images

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"sigs.k8s.io/yaml"
)

// Spec is one image: what the Dockerfile's stage of the same name says.
type Spec struct {
	// Name is the command and the image's repository name.
	Name        string
	User        string   // USER
	Ports       []string // EXPOSE, each port/protocol
	Description string
}

// BinaryDir is where the Dockerfile copies the binaries.
const BinaryDir = "/usr/local/bin"

// Source is the images' org.opencontainers.image.source label.
const Source = "https://github.com/ironlb/ironlb"

// CCM and Speaker are the two images.
var (
	CCM = Spec{Name: "ironlb-ccm", User: "65532:65532", Ports: []string{"10258/tcp"},
		Description: "ironlb's cloud-controller-manager: LoadBalancer addresses from your pools"}
	Speaker = Spec{Name: "ironlb-speaker", User: "0:0", Ports: []string{"7472/tcp", "7946/tcp", "7946/udp"},
		Description: "ironlb's per-node speaker: announces LoadBalancer addresses (layer2, vip, bgp)"}
	All = []Spec{CCM, Speaker}
)

// CABundle is where the base image keeps the CA certificates, as Debian
// and distroless do.
const CABundle = "/etc/ssl/certs/ca-certificates.crt"

// Build returns spec's image for linux/arch: the base layer, then the
// binary at BinaryDir/spec.Name. caBundle is the PEM bundle to trust.
// Every timestamp is the epoch, so the same inputs give the same image.
func Build(spec Spec, binary, caBundle []byte, arch string) (v1.Image, error) {
	if len(caBundle) == 0 || !bytes.Contains(caBundle, []byte("BEGIN CERTIFICATE")) {
		return nil, fmt.Errorf("the CA bundle holds no certificate")
	}
	base, err := layer(baseFiles(caBundle))
	if err != nil {
		return nil, err
	}
	app, err := layer([]file{{path: path.Join(BinaryDir, spec.Name), mode: 0o755, data: binary}})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.DockerManifestSchema2), base, app)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", arch
	cfg.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cfg.Config.User = spec.User
	cfg.Config.Entrypoint = []string{path.Join(BinaryDir, spec.Name)}
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SSL_CERT_FILE=" + CABundle}
	cfg.Config.ExposedPorts = map[string]struct{}{}
	for _, p := range spec.Ports {
		cfg.Config.ExposedPorts[p] = struct{}{}
	}
	cfg.Config.Labels = map[string]string{
		"org.opencontainers.image.title":       spec.Name,
		"org.opencontainers.image.description": spec.Description,
		"org.opencontainers.image.source":      Source,
	}
	return mutate.ConfigFile(img, cfg)
}

// WriteArchive writes img as a docker archive (what `docker load` and
// `ctr images import` read) under each of tags.
func WriteArchive(file string, img v1.Image, tags ...name.Tag) error {
	refs := map[name.Reference]v1.Image{}
	for _, t := range tags {
		refs[t] = img
	}
	return tarball.MultiRefWriteToFile(file, refs)
}

type file struct {
	path string
	mode int64
	uid  int
	data []byte
	dir  bool
}

// baseFiles are distroless/static's files that a static Go binary can use.
func baseFiles(caBundle []byte) []file {
	return []file{
		{path: "/etc", mode: 0o755, dir: true},
		{path: "/etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{path: "/etc/group", mode: 0o644, data: []byte("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")},
		{path: "/etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
		{path: "/etc/ssl", mode: 0o755, dir: true},
		{path: "/etc/ssl/certs", mode: 0o755, dir: true},
		{path: CABundle, mode: 0o644, data: caBundle},
		{path: "/home", mode: 0o755, dir: true},
		{path: "/home/nonroot", mode: 0o700, uid: 65532, dir: true},
		{path: "/root", mode: 0o700, dir: true},
		{path: "/tmp", mode: 0o1777, dir: true},
		{path: "/usr", mode: 0o755, dir: true},
		{path: "/usr/local", mode: 0o755, dir: true},
		{path: BinaryDir, mode: 0o755, dir: true},
	}
}

// layer is a gzipped layer holding files, in order,
// every timestamp the epoch.
func layer(files []file) (v1.Layer, error) {
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: strings.TrimPrefix(f.path, "/"), Mode: f.mode, Uid: f.uid, Gid: f.uid,
			ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := w.WriteHeader(h); err != nil {
			return nil, err
		}
		if !f.dir {
			if _, err := w.Write(f.data); err != nil {
				return nil, err
			}
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}

// Files lists an image's files (path → mode and size), lower layers first,
// for checks.
func Files(img v1.Image) (map[string]tar.Header, map[string][]byte, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, nil, err
	}
	headers, contents := map[string]tar.Header{}, map[string][]byte{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, nil, err
		}
		r := tar.NewReader(rc)
		for {
			h, err := r.Next()
			if err != nil {
				break
			}
			p := "/" + strings.TrimSuffix(h.Name, "/")
			headers[p] = *h
			if h.Typeflag == tar.TypeReg && slices.Contains([]string{"/etc/passwd", "/etc/group", CABundle}, p) || strings.HasPrefix(p, BinaryDir+"/") {
				var b bytes.Buffer
				_, _ = b.ReadFrom(r)
				contents[p] = b.Bytes()
			}
		}
		rc.Close()
	}
	return headers, contents, nil
}

// ReadCABundle reads the build machine's CA bundle.
func ReadCABundle() ([]byte, error) {
	data, err := os.ReadFile(CABundle)
	if err != nil {
		return nil, fmt.Errorf("the CA certificates the images trust come from this machine's %s (Debian: apt install ca-certificates): %w", CABundle, err)
	}
	return data, nil
}

// ManifestTags are the images the install manifests run, by image name:
// manifests/base/kustomization.yaml's images (name, newName, newTag), which
// every overlay and the chart's defaults follow (test/manifests checks it).
func ManifestTags(repoRoot string) (map[string]name.Tag, error) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "manifests", "base", "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	var k struct {
		Images []struct {
			Name    string `json:"name"`
			NewName string `json:"newName"`
			NewTag  string `json:"newTag"`
		} `json:"images"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		return nil, err
	}
	out := map[string]name.Tag{}
	for _, img := range k.Images {
		repo := img.Name
		if img.NewName != "" {
			repo = img.NewName
		}
		tag, err := name.NewTag(repo+":"+img.NewTag, name.StrictValidation)
		if err != nil {
			return nil, fmt.Errorf("manifests/base/kustomization.yaml, image %s: %w", img.Name, err)
		}
		out[path.Base(repo)] = tag
	}
	for _, spec := range All {
		if _, ok := out[spec.Name]; !ok {
			return nil, fmt.Errorf("manifests/base/kustomization.yaml names no image %s", spec.Name)
		}
	}
	return out, nil
}

// Archive is one image written by WriteArchives.
type Archive struct {
	File   string
	Tag    name.Tag
	Digest v1.Hash
	Image  v1.Image
}

// WriteArchives builds ironlb's images (All) from the static binaries in
// binDir for linux/arch and writes each as a docker archive <outDir>/<name>.tar,
// tagged as the install manifests run it (ManifestTags): what `make image`
// does, and what the real-node lab loads into its nodes.
func WriteArchives(repoRoot, binDir, outDir, arch string) ([]Archive, error) {
	tags, err := ManifestTags(repoRoot)
	if err != nil {
		return nil, err
	}
	ca, err := ReadCABundle()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	var out []Archive
	for _, spec := range All {
		binary, err := os.ReadFile(filepath.Join(binDir, spec.Name))
		if err != nil {
			return nil, fmt.Errorf("%w (run make build first)", err)
		}
		img, err := Build(spec, binary, ca, arch)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", spec.Name, err)
		}
		a := Archive{File: filepath.Join(outDir, spec.Name+".tar"), Tag: tags[spec.Name], Image: img}
		if err := WriteArchive(a.File, img, a.Tag); err != nil {
			return nil, err
		}
		if a.Digest, err = img.Digest(); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}
