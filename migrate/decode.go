package migrate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	yamlutil "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Input is one file given to Import.
type Input struct {
	// Name is how messages refer to the file: its path, or "-" for stdin.
	Name string
	Data []byte
}

// object is any Kubernetes resource, with the few fields every source
// shares; each source reads its spec with fields.
type object struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Metadata   metadata        `json:"metadata"`
	Spec       json.RawMessage `json:"spec"`
	// Items holds the members of a List.
	Items []json.RawMessage `json:"items"`
}

type metadata struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// group returns the API group: "metallb.io" of "metallb.io/v1beta1", "" for
// the core group.
func (o *object) group() string {
	g, _, found := strings.Cut(o.APIVersion, "/")
	if !found {
		return ""
	}
	return g
}

func (o *object) version() string {
	_, v, found := strings.Cut(o.APIVersion, "/")
	if !found {
		return o.APIVersion
	}
	return v
}

func (o *object) ref() Ref {
	return Ref{Kind: o.Kind, Namespace: o.Metadata.Namespace, Name: o.Metadata.Name}
}

// maxListDepth bounds Lists within Lists: kubectl never nests them, and a
// hostile input must not exhaust the stack.
const maxListDepth = 8

// decodeAll reads every resource of every input, in order: multi-document
// YAML or JSON, with Lists expanded. What cannot be read is reported and
// skipped.
func decodeAll(inputs []Input, r *report) []*object {
	var objs []*object
	for _, in := range inputs {
		reader := yamlutil.NewYAMLReader(bufio.NewReader(bytes.NewReader(in.Data)))
		for n := 1; ; n++ {
			doc, err := reader.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			where := Ref{Name: fmt.Sprintf("%s document %d", in.Name, n)}
			if err != nil {
				r.drop(where, "", "cannot be read: %v", err)
				break
			}
			objs = appendObjects(objs, doc, where, 0, r)
		}
	}
	return objs
}

func appendObjects(objs []*object, doc []byte, where Ref, depth int, r *report) []*object {
	data, err := yaml.YAMLToJSON(doc)
	if err != nil {
		r.drop(where, "", "is not valid YAML: %v", err)
		return objs
	}
	if t := bytes.TrimSpace(data); len(t) == 0 || string(t) == "null" {
		return objs // an empty document, e.g. after a trailing ---
	}
	var o object
	if err := json.Unmarshal(data, &o); err != nil {
		r.drop(where, "", "is not a Kubernetes resource: %v", readError(err))
		return objs
	}
	if o.Kind == "List" || (strings.HasSuffix(o.Kind, "List") && o.Items != nil) {
		if depth >= maxListDepth {
			r.drop(where, "", "Lists nested deeper than %d are not read", maxListDepth)
			return objs
		}
		for i, item := range o.Items {
			objs = appendObjects(objs, item, Ref{Name: fmt.Sprintf("%s items[%d]", where.Name, i)}, depth+1, r)
		}
		return objs
	}
	if o.Kind == "" {
		r.drop(where, "", "has no kind; skipped")
		return objs
	}
	return append(objs, &o)
}

// readError words a JSON decoding error for users, who wrote YAML: the
// field and the type expected rather than Go's names.
func readError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		what := "a " + te.Type.Kind().String()
		switch te.Type.Kind().String() {
		case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
			what = "a number in range"
		case "slice", "array":
			what = "a list"
		case "map", "struct", "ptr":
			what = "an object"
		}
		if te.Field != "" {
			return fmt.Sprintf("%s is %s where %s is expected", te.Field, te.Value, what)
		}
		return fmt.Sprintf("is %s where %s is expected", te.Value, what)
	}
	return err.Error()
}
