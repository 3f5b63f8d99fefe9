package manifests

import (
	"bytes"
	"debug/elf"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ironlb/ironlb/test/framework"
	"github.com/ironlb/ironlb/test/images"
)

// TestImageArchives: `make image` (test/images, no container engine) builds
// what the Dockerfile's stages say, tagged as the kubeadm overlay runs
// them, reproducibly, on a base a static binary can use. Without a Docker
// engine here the Dockerfile cannot be built; its stages are compared
// instead: user, entrypoint, binary path, ports and labels.
func TestImageArchives(t *testing.T) {
	root := repoRoot(t)
	bins, err := framework.IronLBBinaries()
	if err != nil {
		t.Fatal(err)
	}
	ca, err := images.ReadCABundle()
	if err != nil {
		t.Fatal(err)
	}
	tags, err := images.ManifestTags(root)
	if err != nil {
		t.Fatal(err)
	}
	var running []string
	for _, o := range renders(t)["kustomize kubeadm"] {
		for _, c := range podContainers(t, o) {
			running = append(running, c.Image)
		}
	}
	data, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages := dockerStages(expandArgs(string(data)))

	for _, spec := range images.All {
		t.Run(spec.Name, func(t *testing.T) {
			binary, err := os.ReadFile(filepath.Join(bins, spec.Name))
			if err != nil {
				t.Fatal(err)
			}
			built, err := images.Build(spec, binary, ca, "amd64")
			if err != nil {
				t.Fatal(err)
			}
			tag := tags[spec.Name]
			if !slices.Contains(running, tag.String()) {
				t.Errorf("tagged %s; the kubeadm overlay runs %v", tag, running)
			}
			file := filepath.Join(t.TempDir(), spec.Name+".tar")
			if err := images.WriteArchive(file, built, tag); err != nil {
				t.Fatal(err)
			}
			img, err := tarball.ImageFromPath(file, &tag)
			if err != nil {
				t.Fatalf("reading the archive back under %s: %v", tag, err)
			}
			again, _ := images.Build(spec, binary, ca, "amd64")
			d1, _ := img.Digest()
			d2, _ := again.Digest()
			if d1 != d2 {
				t.Errorf("two builds from the same binary differ: %s, %s", d1, d2)
			}

			// What the Dockerfile's stage says.
			stage := stages[strings.TrimPrefix(spec.Name, "ironlb-")]
			cfg, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if want := dockerfileValue(stage, "USER"); cfg.Config.User != want {
				t.Errorf("user %q, the Dockerfile %q", cfg.Config.User, want)
			}
			entry := `["` + strings.Join(cfg.Config.Entrypoint, `", "`) + `"]`
			if want := dockerfileValue(stage, "ENTRYPOINT"); entry != want {
				t.Errorf("entrypoint %s, the Dockerfile %s", entry, want)
			}
			copied := regexp.MustCompile(`(?m)^COPY --from=build \S+ (\S+)$`).FindStringSubmatch(stage)
			if copied == nil || copied[1] != cfg.Config.Entrypoint[0] {
				t.Errorf("the binary is at %s; the Dockerfile copies it to %v", cfg.Config.Entrypoint[0], copied)
			}
			var ports []string
			for _, p := range strings.Fields(dockerfileValue(stage, "EXPOSE")) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				ports = append(ports, p)
			}
			slices.Sort(ports)
			var got []string
			for p := range cfg.Config.ExposedPorts {
				got = append(got, p)
			}
			slices.Sort(got)
			if !slices.Equal(got, ports) {
				t.Errorf("ports %v, the Dockerfile %v", got, ports)
			}
			for key, value := range cfg.Config.Labels {
				if !strings.Contains(stage, key+`="`+value+`"`) {
					t.Errorf("label %s=%q is not the Dockerfile's", key, value)
				}
			}

			// A base a static binary can use, the binary as built.
			headers, contents, err := images.Files(img)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(contents[images.CABundle], []byte("BEGIN CERTIFICATE")) {
				t.Errorf("no CA certificates at %s", images.CABundle)
			}
			user := strings.Split(cfg.Config.User, ":")[0]
			if !regexp.MustCompile(`(?m)^\w+:x:` + user + `:`).Match(contents["/etc/passwd"]) {
				t.Errorf("/etc/passwd has no user %s:\n%s", user, contents["/etc/passwd"])
			}
			if h := headers["/tmp"]; h.Mode&0o1777 != 0o1777 {
				t.Errorf("/tmp mode %o, want 1777", h.Mode)
			}
			bin := cfg.Config.Entrypoint[0]
			if h := headers[bin]; h.Mode&0o111 == 0 || !bytes.Equal(contents[bin], binary) {
				t.Errorf("%s: mode %o, %d bytes; want the executable binary as built (%d bytes)", bin, h.Mode, len(contents[bin]), len(binary))
			}
			if f, err := elf.NewFile(bytes.NewReader(contents[bin])); err != nil {
				t.Errorf("%s is not an ELF binary: %v", bin, err)
			} else if slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP }) {
				t.Errorf("%s is dynamically linked; the image has no libc", bin)
			}
		})
	}
	// The tags are the manifests', and so parse strictly.
	for n, tag := range tags {
		if _, err := name.NewTag(tag.String(), name.StrictValidation); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
}

// dockerfileValue is the argument of the last instr line in a stage.
func dockerfileValue(stage, instr string) string {
	m := regexp.MustCompile(`(?m)^`+instr+` (.*)$`).FindAllStringSubmatch(stage, -1)
	if m == nil {
		return ""
	}
	return strings.TrimSpace(m[len(m)-1][1])
}
