// Package migrate converts the configuration of other bare-metal load
// balancers (MetalLB, OpenELB, PureLB) into an ironlb config.
//
// It reads their resources as they are found in a cluster or in the files
// that created them, and builds the config from config's own types, checked
// with config.Parse. What it cannot carry over is not guessed at: it is
// reported, one Finding per field, naming the source resource.
package migrate

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/ironlb/ironlb/config"
)

// Source is the load balancer being migrated from.
type Source string

const (
	MetalLB Source = "metallb"
	OpenELB Source = "openelb"
	PureLB  Source = "purelb"
)

// Sources lists the supported sources, for usage messages.
var Sources = []Source{MetalLB, OpenELB, PureLB}

// Title is the source's name as its project writes it.
func (s Source) Title() string {
	switch s {
	case MetalLB:
		return "MetalLB"
	case OpenELB:
		return "OpenELB"
	case PureLB:
		return "PureLB"
	}
	return string(s)
}

// ParseSource returns the Source called name.
func ParseSource(name string) (Source, error) {
	for _, s := range Sources {
		if string(s) == strings.ToLower(name) {
			return s, nil
		}
	}
	return "", fmt.Errorf("unknown load balancer %q: one of %s, %s, %s", name, MetalLB, OpenELB, PureLB)
}

// Result is the outcome of an import.
type Result struct {
	Source Source
	// File is the config as emitted; nil when nothing usable was found.
	File *config.File
	// YAML is File as config.yaml.
	YAML []byte
	// Config is YAML parsed back; nil when File is nil or Errors is set.
	Config *config.Config
	// Errors are config.Parse's when it refuses YAML. The importer checks
	// every piece before emitting it, so this means a case it does not
	// handle: a bug worth reporting.
	Errors field.ErrorList
	// Findings is what was not carried over, or carried over changed.
	Findings []Finding
	// Services says what changes, or does not, on the user's Services.
	Services []string
}

// Import converts the resources in inputs, written for src.
func Import(src Source, inputs []Input) *Result {
	r := &report{}
	objs := decodeAll(inputs, r)
	var d *drafts
	switch src {
	case MetalLB:
		d = readMetalLB(objs, r)
	case OpenELB:
		d = readOpenELB(objs, r)
	case PureLB:
		d = readPureLB(objs, r)
	default:
		d = &drafts{}
	}
	file, renamed := build(d, r)
	res := &Result{Source: src, File: file}
	if file != nil {
		res.YAML, res.Config, res.Errors = finish(file)
	}
	res.Findings = r.findings
	res.Services = serviceAdvice(src, renamed)
	return res
}

// finish marshals file and parses it back, as ironlb will.
func finish(file *config.File) ([]byte, *config.Config, field.ErrorList) {
	data, err := marshal(file)
	if err != nil {
		return nil, nil, field.ErrorList{field.InternalError(field.NewPath(config.ConfigMapKey), err)}
	}
	cfg, errs := config.Parse(data)
	return data, cfg, errs
}
