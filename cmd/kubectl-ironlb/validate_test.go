package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// runCmd runs one command line with in-memory streams.
func runCmd(args []string, stdin string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, genericiooptions.IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut})
	return code, out.String(), errOut.String()
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, file string
		code       int
		want       []string
	}{
		{"valid bare config", write("ok.yaml", "pools:\n- name: lan\n  addresses: [203.0.113.10-203.0.113.20]\n"),
			0, []string{"valid: 1 pools"}},
		{"valid ConfigMap", write("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ironlb-config, namespace: ironlb-system}\ndata:\n  config.yaml: |\n    pools:\n    - name: lan\n      addresses: [203.0.113.10]\n"),
			0, []string{"valid: 1 pools"}},
		{"every error, as the CCM reports them", write("bad.yaml", "pools:\n- name: lan\n  addresses: [203.0.113.300]\n- name: lan\n  addresses: [203.0.113.1]\n"),
			1, []string{`pools[0].addresses[0]: Invalid value: "203.0.113.300": is not an IP, range or CIDR`, `pools[1].name: Duplicate value: "lan"`, "invalid (2 errors)"}},
		{"ConfigMap without the key", write("nokey.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {other: x}\n"),
			1, []string{"no data.config.yaml"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd([]string{"validate", "-f", tc.file}, "")
			all := out + errOut
			if code != tc.code {
				t.Errorf("exit %d, want %d; output:\n%s", code, tc.code, all)
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q:\n%s", w, all)
				}
			}
		})
	}
	if code, _, errOut := runCmd([]string{"bogus"}, ""); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("bad usage: exit %d, %q", code, errOut)
	}
	if code, out, _ := runCmd([]string{"validate", "-f", "-"}, "pools: []\n"); code != 0 {
		t.Errorf("stdin: exit %d: %s", code, out)
	}
}
