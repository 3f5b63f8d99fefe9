// Command kubectl-ironlb is ironlb's kubectl plugin (`kubectl ironlb ...`).
// Today it validates an ironlb config offline with the exact validator
// ironlb-ccm and the speakers use.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	v1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/config"
)

const usage = `usage: kubectl ironlb validate -f FILE

  validate   check an ironlb config offline, with the same messages ironlb-ccm
             records on the ConfigMap; FILE is either the ConfigMap manifest
             (its data.config.yaml is checked) or the bare config.yaml, "-"
             for standard input. Exit status 1 when it is invalid.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 3 && args[0] == "validate" && args[1] == "-f" {
		return validate(args[2], stdin, stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return 2
}

func validate(path string, stdin io.Reader, stdout, stderr io.Writer) int {
	data, err := readFile(path, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 2
	}
	doc, err := configDocument(data)
	if err != nil {
		fmt.Fprintf(stderr, "error: %s: %v\n", path, err)
		return 1
	}
	cfg, errs := config.Parse(doc)
	if len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintf(stdout, "%s: %s\n", path, e.Error())
		}
		fmt.Fprintf(stdout, "%s: invalid (%d errors); ironlb would keep serving its last good config\n", path, len(errs))
		return 1
	}
	fmt.Fprintf(stdout, "%s: valid: %d pools", path, len(cfg.Pools))
	if cfg.BGP != nil {
		fmt.Fprintf(stdout, ", bgp with %d peers", len(cfg.BGP.Peers))
	}
	fmt.Fprintln(stdout)
	return 0
}

func readFile(path string, stdin io.Reader) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(path)
}

// configDocument returns config.yaml itself: from a ConfigMap manifest, its
// data key; anything else is taken as the bare document.
func configDocument(data []byte) ([]byte, error) {
	var probe struct {
		Kind string `json:"kind"`
	}
	if err := yaml.Unmarshal(data, &probe); err != nil || probe.Kind != "ConfigMap" {
		return data, nil
	}
	var cm v1.ConfigMap
	if err := yaml.Unmarshal(data, &cm); err != nil {
		return nil, err
	}
	doc, ok := cm.Data[config.ConfigMapKey]
	if !ok {
		return nil, errors.New("the ConfigMap has no data." + config.ConfigMapKey)
	}
	return []byte(doc), nil
}
