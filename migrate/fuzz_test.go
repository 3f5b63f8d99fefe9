package migrate

import (
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/config"
)

// FuzzImport: no input makes the importer panic, and whatever it emits is
// a config ironlb accepts, in a ConfigMap that reads back.
func FuzzImport(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("kind: List\nitems: [{kind: List, items: []}]\n"))
	f.Add([]byte("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nspec: {addresses: ['::ffff:1.2.3.4/120']}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, src := range Sources {
			res := Import(src, []Input{{Name: "fuzz.yaml", Data: data}})
			if res.File == nil {
				continue
			}
			if len(res.Errors) > 0 {
				t.Fatalf("%s: the emitted config is refused: %v\n%s", src, res.Errors, res.YAML)
			}
			if _, errs := config.Parse(res.YAML); len(errs) > 0 {
				t.Fatalf("%s: config.Parse: %v\n%s", src, errs, res.YAML)
			}
			cm, err := res.ConfigMap()
			if err != nil {
				t.Fatalf("%s: %v", src, err)
			}
			var back struct {
				Data map[string]string `json:"data"`
			}
			if err := yaml.Unmarshal(cm, &back); err != nil || back.Data[config.ConfigMapKey] != string(res.YAML) {
				t.Fatalf("%s: the ConfigMap does not read back (%v):\n%s", src, err, cm)
			}
		}
	})
}
