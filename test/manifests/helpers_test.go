package manifests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/ironlb/ironlb/test/framework"
)

// The names the install uses (and the binaries default to).
const (
	namespace   = "ironlb-system"
	ccmSA       = "system:serviceaccount:ironlb-system:ironlb-ccm"
	speakerSA   = "system:serviceaccount:ironlb-system:ironlb-speaker"
	releaseName = "ironlb"
)

// saGroups are the groups the apiserver gives every ServiceAccount token of
// namespace ironlb-system; a client certificate with them is authorized
// exactly like the ServiceAccount.
var saGroups = []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"}

func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := framework.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// run runs a command and returns its stdout; a failure carries stderr.
func run(stdin []byte, dir, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// kubectlPath finds kubectl; the tests need its built-in kustomize and
// `auth can-i`.
func kubectlPath(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("kubectl is needed to render the overlays and check RBAC: %v (install kubectl >= 1.27, which embeds kustomize v5)", err)
	}
	return p
}

// kubectl runs kubectl against the control plane whose kubeconfig is given.
func kubectl(t testing.TB, kubeconfig string, stdin []byte, args ...string) string {
	t.Helper()
	out, err := run(stdin, "", kubectlPath(t), append([]string{"--kubeconfig=" + kubeconfig}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// renderOverlay renders manifests/<overlay> with kubectl's kustomize.
func renderOverlay(t testing.TB, overlay string) []byte {
	t.Helper()
	out, err := run(nil, "", kubectlPath(t), "kustomize", filepath.Join(repoRoot(t), "manifests", overlay))
	if err != nil {
		t.Fatal(err)
	}
	return []byte(out)
}

// renderChart runs `helm template` on charts/ironlb for the release
// namespace ns, with extra helm arguments (-f, --set...).
func renderChart(t testing.TB, ns string, args ...string) []byte {
	t.Helper()
	root := repoRoot(t)
	kubeVersion, err := framework.KubernetesVersion(root)
	if err != nil {
		t.Fatal(err)
	}
	base := []string{"template", releaseName, filepath.Join(root, "charts", "ironlb"), "--namespace", ns, "--kube-version", kubeVersion, "--include-crds"}
	out, err := run(nil, "", helmBinary(t), append(base, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(out)
}

// helmBinary returns a Helm CLI (framework.HelmBinary).
func helmBinary(t testing.TB) string {
	t.Helper()
	p, err := framework.HelmBinary()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// decode splits a multi-document YAML stream into objects, skipping empty
// documents.
func decode(t testing.TB, data []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("decoding YAML: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// find returns the object of that kind, namespace and name, failing if absent.
func find(t testing.TB, objs []*unstructured.Unstructured, kind, ns, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetNamespace() == ns && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s/%s among %d objects", kind, ns, name, len(objs))
	return nil
}

// typed converts o into a typed API object.
func typed[T any](t testing.TB, o *unstructured.Unstructured) *T {
	t.Helper()
	var v T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, &v, true); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
	return &v
}

// key identifies an object in messages and maps.
func key(o *unstructured.Unstructured) string {
	return fmt.Sprintf("%s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName())
}
