package manifests

import (
	"encoding/json"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/test/framework"
)

// valuesAll switches on every optional part of the chart and moves every
// port and name off its default, so the cross-checks below see the flags the
// chart adds for them.
const valuesAll = "testdata/values-all.yaml"

// valuesK3s and valuesK3sCloudNode are what the chart needs to match the
// k3s and k3s-cloud-node overlays.
const (
	valuesK3s          = "testdata/values-k3s.yaml"
	valuesK3sCloudNode = "testdata/values-k3s-cloud-node.yaml"
)

// renders returns every rendering the tests check, by name.
func renders(t *testing.T) map[string][]*unstructured.Unstructured {
	t.Helper()
	return map[string][]*unstructured.Unstructured{
		"kustomize kubeadm":          decode(t, renderOverlay(t, "kubeadm")),
		"kustomize k3s":              decode(t, renderOverlay(t, "k3s")),
		"kustomize k3s-cloud-node":   decode(t, renderOverlay(t, "k3s-cloud-node")),
		"helm defaults":              decode(t, renderChart(t, namespace)),
		"helm values-all":            decode(t, renderChart(t, "lb-system", "-f", valuesAll)),
		"helm values-servicemonitor": decode(t, renderChart(t, namespace, "-f", valuesServiceMonitor)),
	}
}

// secretish matches environment variable names that would carry a secret.
var secretish = regexp.MustCompile(`(?i)key|pass|token|secret`)

// TestNoSecretValues: a key or password must never sit in a manifest, a
// values file or the docs next to them. No rendering contains a Secret, no
// YAML file in manifests/ or charts/ holds Secret data, and no file there
// holds something shaped like a key.
func TestNoSecretValues(t *testing.T) {
	for name, objs := range renders(t) {
		for _, o := range objs {
			if o.GetKind() == "Secret" {
				t.Errorf("%s renders %s: the memberlist key is created by ironlb-ccm, BGP passwords by the operator; the install ships no Secret", name, key(o))
			}
			for _, c := range podContainers(t, o) {
				for _, e := range c.Env {
					if e.Value != "" && secretish.MatchString(e.Name) {
						t.Errorf("%s: %s container %s has a literal value for $%s", name, key(o), c.Name, e.Name)
					}
				}
			}
		}
	}

	// 32+ hex digits, or a long base64 run that mixes letters and digits.
	hexKey := regexp.MustCompile(`\b[0-9a-fA-F]{32,}\b`)
	b64Key := regexp.MustCompile(`[A-Za-z0-9+/]{40,}={0,2}`)
	root := repoRoot(t)
	for _, dir := range []string{"manifests", "charts", "Dockerfile"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			text := string(data)
			if m := hexKey.FindString(text); m != "" {
				t.Errorf("%s holds %q, which looks like a key", rel, m)
			}
			for _, m := range b64Key.FindAllString(text, -1) {
				if strings.ContainsAny(m, "0123456789") && strings.ToLower(m) != m && strings.ToUpper(m) != m {
					t.Errorf("%s holds %q, which looks like a base64 secret", rel, m)
				}
			}
			// Templates are not YAML until rendered (checked above).
			if ext := filepath.Ext(p); (ext == ".yaml" || ext == ".yml") && !strings.Contains(filepath.ToSlash(rel), "/templates/") {
				for _, o := range decode(t, data) {
					if o.GetKind() != "Secret" {
						continue
					}
					for _, field := range []string{"data", "stringData"} {
						if m, _, _ := unstructured.NestedMap(o.Object, field); len(m) > 0 {
							t.Errorf("%s: %s has %s values", rel, key(o), field)
						}
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestExampleConfigParses: the example ironlb-config is valid for both
// components (pools and the bgp section) and shows every mode.
func TestExampleConfigParses(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "manifests", "examples", "ironlb-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs := decode(t, data)
	cm := typed[v1.ConfigMap](t, find(t, objs, "ConfigMap", namespace, config.DefaultConfigMapName))
	cfg, errs := config.Parse([]byte(cm.Data[config.ConfigMapKey]))
	if len(errs) > 0 {
		t.Fatalf("example pools: %v", errs.ToAggregate())
	}
	if _, errs := cfg.ParseBGP(); len(errs) > 0 {
		t.Fatalf("example bgp section: %v", errs.ToAggregate())
	}
	modes := map[config.Mode]bool{}
	for _, p := range cfg.Pools {
		modes[p.Mode] = true
	}
	for _, m := range config.Modes {
		if !modes[m] {
			t.Errorf("the example has no pool of mode %s", m)
		}
	}
}

// TestChartConfigValue: the chart's config value, as a map or as a string,
// becomes a config.yaml that ironlb accepts.
func TestChartConfigValue(t *testing.T) {
	example := filepath.Join(t.TempDir(), "config.yaml")
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "manifests", "examples", "ironlb-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cm := typed[v1.ConfigMap](t, find(t, decode(t, data), "ConfigMap", namespace, config.DefaultConfigMapName))
	if err := os.WriteFile(example, []byte(cm.Data[config.ConfigMapKey]), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"map":    {"-f", valuesAll},
		"string": {"--set-file", "config=" + example},
	} {
		t.Run(name, func(t *testing.T) {
			objs := decode(t, renderChart(t, namespace, args...))
			cm := typed[v1.ConfigMap](t, find(t, objs, "ConfigMap", namespace, config.DefaultConfigMapName))
			cfg, errs := config.Parse([]byte(cm.Data[config.ConfigMapKey]))
			if len(errs) > 0 {
				t.Fatalf("rendered config.yaml: %v\n%s", errs.ToAggregate(), cm.Data[config.ConfigMapKey])
			}
			if _, errs := cfg.ParseBGP(); len(errs) > 0 {
				t.Fatalf("rendered bgp section: %v", errs.ToAggregate())
			}
			if len(cfg.Pools) == 0 {
				t.Fatal("no pools rendered")
			}
		})
	}
	// Without a config value the chart leaves ironlb-config to the operator.
	for _, o := range decode(t, renderChart(t, namespace)) {
		if o.GetKind() == "ConfigMap" {
			t.Errorf("the default chart renders %s; a helm upgrade would then overwrite the operator's pools", key(o))
		}
	}
}

// TestChartMatchesKustomize: with default values the chart renders exactly
// the kubeadm overlay's objects (bar the Namespace, which Helm leaves to
// --create-namespace, and Helm's bookkeeping labels); with values-k3s.yaml,
// the k3s overlay's. Reviewing one therefore reviews both.
func TestChartMatchesKustomize(t *testing.T) {
	for overlay, args := range map[string][]string{
		"kubeadm":        nil,
		"k3s":            {"-f", valuesK3s},
		"k3s-cloud-node": {"-f", valuesK3sCloudNode},
	} {
		t.Run(overlay, func(t *testing.T) {
			want := map[string]any{}
			for _, o := range decode(t, renderOverlay(t, overlay)) {
				if o.GetKind() != "Namespace" {
					want[key(o)] = normalize(o.Object)
				}
			}
			got := map[string]any{}
			for _, o := range decode(t, renderChart(t, namespace, args...)) {
				got[key(o)] = normalize(o.Object)
			}
			for k, w := range want {
				g, ok := got[k]
				switch {
				case !ok:
					t.Errorf("the chart does not render %s", k)
				case !reflect.DeepEqual(g, w):
					gj, _ := json.MarshalIndent(g, "", "  ")
					wj, _ := json.MarshalIndent(w, "", "  ")
					t.Errorf("%s differs.\nchart:\n%s\nkustomize:\n%s", k, gj, wj)
				}
			}
			for k := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("the chart renders %s, which the %s overlay does not", k, overlay)
				}
			}
		})
	}
}

// helmOnlyLabels are what Helm adds to identify a release; everything else
// must be equal.
var helmOnlyLabels = []string{"app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart"}

func normalize(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range v {
			if !slices.Contains(helmOnlyLabels, k) {
				out[k] = normalize(e)
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = normalize(e)
		}
		return out
	}
	return v
}

// TestK3sOverlays: the k3s overlays grant nothing in kube-system and let
// the CCM run on servers reserved for critical add-ons; manifests/k3s runs
// only ironlb's service controller (K3s's CCM, or its kubelets, set up the
// nodes) and manifests/k3s-cloud-node adds the cloud-node controller, as
// docs/install-k3s.md says.
func TestK3sOverlays(t *testing.T) {
	for overlay, controllers := range map[string]string{
		"k3s":            "--controllers=service",
		"k3s-cloud-node": "--controllers=service,cloud-node",
	} {
		objs := decode(t, renderOverlay(t, overlay))
		for _, o := range objs {
			if o.GetNamespace() == "kube-system" {
				t.Errorf("the %s overlay renders %s: K3s has no kube-proxy ConfigMap to read", overlay, key(o))
			}
		}
		d := typed[appsv1.Deployment](t, find(t, objs, "Deployment", namespace, "ironlb-ccm"))
		if !slices.ContainsFunc(d.Spec.Template.Spec.Tolerations, func(t v1.Toleration) bool { return t.Key == "CriticalAddonsOnly" }) {
			t.Errorf("%s: ironlb-ccm does not tolerate CriticalAddonsOnly on K3s", overlay)
		}
		var got []string
		for _, a := range d.Spec.Template.Spec.Containers[0].Args {
			if strings.HasPrefix(a, "--controllers") {
				got = append(got, a)
			}
		}
		if len(got) != 1 || got[0] != controllers {
			t.Errorf("%s: ironlb-ccm's controller flags are %v, want [%s]", overlay, got, controllers)
		}
	}
}

// TestFlagsAndWiring: every flag the manifests and the chart pass exists in
// the binary, and what must agree does: the key file is where the Secret is
// mounted, the Secret is the one the CCM creates and may read, the ports
// declared are the ones the flags make the binaries listen on.
func TestFlagsAndWiring(t *testing.T) {
	dir, err := framework.IronLBBinaries()
	if err != nil {
		t.Fatal(err)
	}
	help := map[string]string{}
	for _, bin := range []string{"ironlb-ccm", "ironlb-speaker"} {
		// Both print usage and exit 0 on --help (pflag and cobra).
		out, err := exec.Command(filepath.Join(dir, bin), "--help").CombinedOutput()
		if err != nil {
			t.Fatalf("%s --help: %v\n%s", bin, err, out)
		}
		help[bin] = string(out)
	}
	for name, objs := range renders(t) {
		t.Run(name, func(t *testing.T) {
			var ccm, speaker *v1.PodSpec
			for _, o := range objs {
				switch o.GetKind() {
				case "Deployment":
					ccm = &typed[appsv1.Deployment](t, o).Spec.Template.Spec
				case "DaemonSet":
					speaker = &typed[appsv1.DaemonSet](t, o).Spec.Template.Spec
				}
			}
			if ccm == nil || speaker == nil {
				t.Fatal("no Deployment or no DaemonSet rendered")
			}
			ccmFlags := checkFlags(t, help["ironlb-ccm"], ccm.Containers[0].Args)
			speakerFlags := checkFlags(t, help["ironlb-speaker"], speaker.Containers[0].Args)

			// The CCM: HTTPS on its default secure port.
			wantPort(t, "ironlb-ccm", ccm.Containers[0], "https", v1.ProtocolTCP, 10258)
			if ccm.Containers[0].LivenessProbe.HTTPGet.Port.String() != "https" || ccm.Containers[0].LivenessProbe.HTTPGet.Scheme != v1.URISchemeHTTPS {
				t.Error("ironlb-ccm's liveness probe is not HTTPS on the https port")
			}

			// The speaker's key file is the mounted Secret's item...
			keyFile := speakerFlags["memberlist-key-file"]
			if keyFile == "" {
				t.Fatal("ironlb-speaker has no --memberlist-key-file")
			}
			var mount *v1.VolumeMount
			for i, m := range speaker.Containers[0].VolumeMounts {
				if m.MountPath == path.Dir(keyFile) {
					mount = &speaker.Containers[0].VolumeMounts[i]
				}
			}
			if mount == nil || !mount.ReadOnly {
				t.Fatalf("--memberlist-key-file=%s is not in a read-only mount", keyFile)
			}
			var secretName string
			for _, vol := range speaker.Volumes {
				if vol.Name != mount.Name || vol.Secret == nil {
					continue
				}
				secretName = vol.Secret.SecretName
				if len(vol.Secret.Items) != 1 || vol.Secret.Items[0].Key != "key" || vol.Secret.Items[0].Path != path.Base(keyFile) {
					t.Errorf("the Secret volume does not put data key \"key\" at %s: %+v", keyFile, vol.Secret.Items)
				}
				if vol.Secret.Optional != nil && *vol.Secret.Optional {
					t.Error("the memberlist key volume is optional: a speaker must not start without the key")
				}
			}
			// ...of the Secret the CCM creates and may read.
			ccmSecret := ccmFlags["memberlist-key-secret"]
			if ccmSecret == "" {
				ccmSecret = "ironlb-memberlist" // ironlb-ccm's default
			}
			if secretName != ccmSecret {
				t.Errorf("the speaker mounts Secret %q, the CCM creates %q", secretName, ccmSecret)
			}
			if !slices.Contains(ccmSecretReadable(t, objs), secretName) {
				t.Errorf("the CCM's Role does not let it get Secret %q", secretName)
			}

			// Ports: what is declared is what the flags bind.
			metrics := 7472
			if a := speakerFlags["metrics-bind-address"]; a != "" {
				metrics = atoi(t, a[strings.LastIndex(a, ":")+1:])
			}
			memberlist := 7946
			if p := speakerFlags["memberlist-port"]; p != "" {
				memberlist = atoi(t, p)
			}
			wantPort(t, "ironlb-speaker", speaker.Containers[0], "metrics", v1.ProtocolTCP, int32(metrics))
			wantPort(t, "ironlb-speaker", speaker.Containers[0], "memberlist-tcp", v1.ProtocolTCP, int32(memberlist))
			wantPort(t, "ironlb-speaker", speaker.Containers[0], "memberlist-udp", v1.ProtocolUDP, int32(memberlist))
			if !speaker.HostNetwork {
				t.Error("the speaker is not on the host network")
			}
			var nodeName bool
			for _, e := range speaker.Containers[0].Env {
				nodeName = nodeName || (e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName")
			}
			if !nodeName {
				t.Error("the speaker does not get $NODE_NAME from spec.nodeName")
			}
		})
	}
}

// checkFlags fails for every --flag not in help and returns the flags' values.
func checkFlags(t *testing.T, help string, args []string) map[string]string {
	t.Helper()
	flags := map[string]string{}
	for _, a := range args {
		name, value, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") || !regexp.MustCompile(`(?m)^\s+(-\w, )?--`+regexp.QuoteMeta(name)+`[ =]`).MatchString(help) {
			t.Errorf("argument %q: no such flag", a)
		}
		flags[name] = value
	}
	return flags
}

func wantPort(t *testing.T, what string, c v1.Container, name string, proto v1.Protocol, port int32) {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			if p.ContainerPort != port || p.Protocol != proto {
				t.Errorf("%s port %s is %d/%s, the flags make it %d/%s", what, name, p.ContainerPort, p.Protocol, port, proto)
			}
			return
		}
	}
	t.Errorf("%s declares no port %s", what, name)
}

// ccmSecretReadable returns the Secret names a Role bound to the CCM lets it
// get in its namespace.
func ccmSecretReadable(t *testing.T, objs []*unstructured.Unstructured) []string {
	var names []string
	for _, o := range objs {
		if o.GetKind() != "Role" || !strings.HasSuffix(o.GetName(), "-ccm") {
			continue
		}
		role := typed[rbacv1.Role](t, o)
		for _, r := range role.Rules {
			if slices.Contains(r.Resources, "secrets") && slices.Contains(r.Verbs, "get") {
				names = append(names, r.ResourceNames...)
			}
		}
	}
	return names
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if err := json.Unmarshal([]byte(s), &n); err != nil {
		t.Fatalf("%q is not a number", s)
	}
	return n
}

// podContainers returns the containers of a workload's pod template.
func podContainers(t *testing.T, o *unstructured.Unstructured) []v1.Container {
	switch o.GetKind() {
	case "Deployment":
		return typed[appsv1.Deployment](t, o).Spec.Template.Spec.Containers
	case "DaemonSet":
		return typed[appsv1.DaemonSet](t, o).Spec.Template.Spec.Containers
	}
	return nil
}

// TestImages: both install paths run the same release of both images, and
// the Dockerfile builds them the way the manifests need: static binaries,
// the CCM as non-root, every package the commands import copied in.
func TestImages(t *testing.T) {
	images := map[string][]string{}
	for name, objs := range renders(t) {
		if name == "helm values-all" {
			continue // overrides the tags on purpose
		}
		for _, o := range objs {
			for _, c := range podContainers(t, o) {
				images[name] = append(images[name], c.Image)
			}
		}
		slices.Sort(images[name])
	}
	want := images["kustomize kubeadm"]
	if len(want) != 2 || !strings.HasPrefix(want[0], "ghcr.io/ironlb/ironlb-ccm:v") || !strings.HasPrefix(want[1], "ghcr.io/ironlb/ironlb-speaker:v") ||
		strings.Split(want[0], ":")[1] != strings.Split(want[1], ":")[1] {
		t.Errorf("kubeadm overlay images %v: want ironlb-ccm and ironlb-speaker at one release tag", want)
	}
	for name, got := range images {
		if !slices.Equal(got, want) {
			t.Errorf("%s runs %v, the kubeadm overlay %v", name, got, want)
		}
	}

	root := repoRoot(t)
	data, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages := dockerStages(expandArgs(string(data)))
	for _, s := range []string{"build", "ccm", "speaker"} {
		if _, ok := stages[s]; !ok {
			t.Fatalf("Dockerfile has no stage %q (have %v)", s, slices.Sorted(maps.Keys(stages)))
		}
	}
	build := stages["build"]
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-tags grpcnotrace", "./cmd/ironlb-ccm", "./cmd/ironlb-speaker"} {
		if !strings.Contains(build, want) {
			t.Errorf("the build stage lacks %s", want)
		}
	}
	if !regexp.MustCompile(`(?m)^FROM \S*distroless/static\S*:nonroot AS ccm`).MatchString(stages["ccm"]) || !strings.Contains(stages["ccm"], "USER 65532") {
		t.Error("the ccm image is not distroless/static running as nonroot (65532)")
	}
	if !strings.Contains(stages["ccm"], `ENTRYPOINT ["/usr/local/bin/ironlb-ccm"]`) || !strings.Contains(stages["speaker"], `ENTRYPOINT ["/usr/local/bin/ironlb-speaker"]`) {
		t.Error("an image's entrypoint is not its binary")
	}
	if !regexp.MustCompile(`(?m)^FROM \S*distroless/static`).MatchString(stages["speaker"]) {
		t.Error("the speaker image is not distroless/static")
	}

	// The images are built like `make build` builds the binaries the tests
	// run: every flag of the Makefile's BUILD_FLAGS is in the Dockerfile.
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?m)^BUILD_FLAGS\s*\??=\s*(.*)$`).FindSubmatch(makefile); m != nil {
		flags := strings.Fields(string(m[1]))
		for i, f := range flags {
			want := f
			if f == "-tags" && i+1 < len(flags) {
				want = f + " " + flags[i+1]
			}
			if strings.HasPrefix(f, "-") && !strings.Contains(build, want) {
				t.Errorf("make build uses %s, the Dockerfile does not", want)
			}
		}
	} else if !strings.Contains(string(makefile), "CGO_ENABLED=0") {
		t.Error("the Makefile's build is not static; the images are")
	}

	// Every package of this module the commands are built from must be
	// copied into the build stage, and nothing may need cgo.
	cmd := exec.Command("go", "list", "-deps", "-tags", "grpcnotrace", "-f", "{{if .Module}}{{if .Module.Main}}{{.ImportPath}}{{end}}{{end}}", "./cmd/ironlb-ccm", "./cmd/ironlb-speaker")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list with CGO_ENABLED=0 (the Dockerfile's build): %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, framework.ModulePath), "/")
		top, _, _ := strings.Cut(rel, "/")
		if !strings.Contains(build, "COPY "+top+"/ "+top+"/") {
			t.Errorf("the commands import %s, but the Dockerfile does not COPY %s/", pkg, top)
		}
	}
}

// expandArgs replaces ${NAME} by the default of ARG NAME=default, as a build
// without --build-arg sees it.
func expandArgs(dockerfile string) string {
	for _, m := range regexp.MustCompile(`(?m)^ARG (\w+)=(\S+)\s*$`).FindAllStringSubmatch(dockerfile, -1) {
		dockerfile = strings.ReplaceAll(dockerfile, "${"+m[1]+"}", m[2])
	}
	return dockerfile
}

// dockerStages splits a Dockerfile into its stages by name (FROM ... AS name).
func dockerStages(dockerfile string) map[string]string {
	stages := map[string]string{}
	from := regexp.MustCompile(`(?mi)^FROM .* AS (\S+)\s*$`)
	locs := from.FindAllStringSubmatchIndex(dockerfile, -1)
	for i, loc := range locs {
		end := len(dockerfile)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		stages[dockerfile[loc[2]:loc[3]]] = dockerfile[loc[0]:end]
	}
	return stages
}

// TestChartLint: `helm lint --strict` passes with the default values and
// with every test values file, and values.schema.json refuses a typo rather
// than letting it fall back to a default silently.
func TestChartLint(t *testing.T) {
	chart := filepath.Join(repoRoot(t), "charts", "ironlb")
	for _, values := range []string{"", valuesAll, valuesK3s, valuesServiceMonitor} {
		args := []string{"lint", "--strict", chart}
		if values != "" {
			args = append(args, "-f", values)
		}
		if out, err := run(nil, "", helmBinary(t), args...); err != nil {
			t.Errorf("helm lint with %q: %v\n%s", values, err, out)
		}
	}
	out, err := run(nil, "", helmBinary(t), "template", releaseName, chart, "--set", "ccm.replica=3")
	if err == nil || !strings.Contains(err.Error(), "replica") {
		t.Errorf("a misspelt value (ccm.replica) was accepted: %v\n%s", err, out)
	}
}
