package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testdata = "../../migrate/testdata"

func TestImport(t *testing.T) {
	dir := t.TempDir()
	pools := filepath.Join(dir, "pools.yaml")
	if err := os.WriteFile(pools, []byte("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a, namespace: metallb-system}\nspec: {addresses: [203.0.113.0/28]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l2 := "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2, namespace: metallb-system}\nspec: {interfaces: [eth1]}\n"
	cases := []struct {
		name      string
		args      []string
		stdin     string
		code      int
		stdout    []string
		stderr    []string
		notStdout string
	}{
		{
			name:   "a ConfigMap and the report",
			args:   []string{"import", "metallb", "-f", filepath.Join(testdata, "metallb-bgp.yaml")},
			stdout: []string{"kind: ConfigMap", "name: ironlb-config", "namespace: ironlb-system", "config.yaml: |", "localASN: 64500"},
			stderr: []string{
				"imported from metallb: 3 pools (3 bgp), bgp with 3 peers and 2 advertisements",
				"not carried over: BGPPeer/metallb-system/tor2 spec.password: a plain password is not carried over",
				"Services:\n  metallb.io/address-pool",
			},
		},
		{
			name:      "the bare config",
			args:      []string{"import", "purelb", "--config-only", "-f", filepath.Join(testdata, "purelb.yaml")},
			stdout:    []string{"pools:\n- name: default\n"},
			stderr:    []string{"imported from purelb: 3 pools (3 vip)"},
			notStdout: "ConfigMap",
		},
		{
			name:   "several files, one of them stdin",
			args:   []string{"import", "metallb", "-f", pools, "-f", "-"},
			stdin:  l2,
			stdout: []string{"- name: a\n", "interfaces:\n      - eth1"},
		},
		{
			name:   "nothing usable",
			args:   []string{"import", "openelb", "-f", pools},
			code:   1,
			stderr: []string{"IPAddressPool/metallb-system/a: belongs to MetalLB", "error: no openelb address pool or peer found"},
		},
		{name: "empty input", args: []string{"import", "metallb", "-f", "-"}, code: 1, stderr: []string{"error: no metallb address pool"}},
		{name: "unknown load balancer", args: []string{"import", "kube-vip", "-f", pools}, code: 2, stderr: []string{`unknown load balancer "kube-vip"`}},
		{name: "no load balancer", args: []string{"import", "-f", pools}, code: 2, stderr: []string{"import takes the load balancer to import from"}},
		{name: "no file", args: []string{"import", "metallb"}, code: 2, stderr: []string{`"filename" not set`}},
		{name: "a missing file", args: []string{"import", "metallb", "-f", filepath.Join(dir, "nope.yaml")}, code: 2, stderr: []string{"nope.yaml"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd(tc.args, tc.stdin)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, errOut)
			}
			for _, w := range tc.stdout {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.stderr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if tc.notStdout != "" && strings.Contains(out, tc.notStdout) {
				t.Errorf("stdout has %q:\n%s", tc.notStdout, out)
			}
			if tc.code != 0 && out != "" {
				t.Errorf("stdout is not empty on failure:\n%s", out)
			}
			if strings.Contains(out+errOut, "do-not-print-me") {
				t.Error("a plain password from the input is printed")
			}
		})
	}
}

// TestImportThenValidate: what import prints, validate accepts, as the
// ConfigMap and as the bare config.
func TestImportThenValidate(t *testing.T) {
	for _, src := range []struct{ lb, file string }{
		{"metallb", "metallb-l2.yaml"}, {"metallb", "metallb-bgp.yaml"}, {"openelb", "openelb.yaml"}, {"purelb", "purelb.yaml"},
	} {
		for _, extra := range [][]string{nil, {"--config-only"}} {
			args := append([]string{"import", src.lb, "-f", filepath.Join(testdata, src.file)}, extra...)
			code, out, errOut := runCmd(args, "")
			if code != 0 {
				t.Fatalf("%v: exit %d:\n%s", args, code, errOut)
			}
			code, vout, verr := runCmd([]string{"validate", "-f", "-"}, out)
			if code != 0 || !strings.Contains(vout, "valid:") {
				t.Errorf("%v: validate exits %d:\n%s%s\n%s", args, code, vout, verr, out)
			}
		}
	}
}
