package framework

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// InstallCRDs creates ironlb's CustomResourceDefinitions from the install
// manifests (manifests/base/crd-*.yaml, the very files users apply) and
// waits until the apiserver serves them.
func InstallCRDs(ctx context.Context, cfg *rest.Config) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(root, "manifests", "base", "crd-*.yaml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no CRD manifests under %s/manifests/base (%v)", root, err)
	}
	return ApplyCRDFiles(ctx, cfg, files...)
}

// ApplyCRDFiles creates the CustomResourceDefinitions in files (one CRD per
// file, as a release ships them) and waits until the apiserver serves each.
func ApplyCRDFiles(ctx context.Context, cfg *rest.Config, files ...string) error {
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	crds := client.Resource(crdResource)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var obj unstructured.Unstructured
		if err := yaml.Unmarshal(data, &obj.Object); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if obj.GetKind() != "CustomResourceDefinition" {
			return fmt.Errorf("%s: kind %q, want one CustomResourceDefinition", f, obj.GetKind())
		}
		if _, err := crds.Create(ctx, &obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %s: %w", obj.GetName(), err)
		}
		if err := WaitFor(ctx, 30*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
			got, err := crds.Get(ctx, obj.GetName(), metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			return established(got), nil
		}); err != nil {
			return fmt.Errorf("CRD %s not established: %w", obj.GetName(), err)
		}
	}
	return nil
}

func established(crd *unstructured.Unstructured) bool {
	conditions, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conditions {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}
