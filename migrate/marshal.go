package migrate

import (
	"bytes"
	"encoding/json"
	"fmt"

	// The YAML library config.Parse reads with (through sigs.k8s.io/yaml),
	// so whatever it quotes or not reads back the same.
	yaml "go.yaml.in/yaml/v2"

	"github.com/ironlb/ironlb/config"
)

// marshal writes v as YAML by way of its JSON form, like sigs.k8s.io/yaml,
// but keeps the fields in struct order (a pool's name first), which reads
// far better than sorted keys.
func marshal(v any) ([]byte, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	ordered, err := readValue(dec)
	if err != nil {
		return nil, err
	}
	return yaml.Marshal(ordered)
}

// readValue reads the next JSON value as a YAML value in the same order.
func readValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			m := yaml.MapSlice{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := readValue(dec)
				if err != nil {
					return nil, err
				}
				m = append(m, yaml.MapItem{Key: k, Value: v})
			}
			_, err := dec.Token()
			return m, err
		}
		l := []any{}
		for dec.More() {
			v, err := readValue(dec)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		_, err := dec.Token()
		return l, err
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i, nil
		}
		return t.Float64()
	default:
		return t, nil
	}
}

// ConfigMap returns the ready-to-apply manifest of the ConfigMap ironlb
// reads, holding the config.
func (r *Result) ConfigMap() ([]byte, error) {
	if r.File == nil {
		return nil, fmt.Errorf("nothing to put in the ConfigMap")
	}
	cm := yaml.MapSlice{
		{Key: "apiVersion", Value: "v1"},
		{Key: "kind", Value: "ConfigMap"},
		{Key: "metadata", Value: yaml.MapSlice{
			{Key: "name", Value: config.DefaultConfigMapName},
			{Key: "namespace", Value: config.DefaultNamespace},
		}},
		{Key: "data", Value: yaml.MapSlice{{Key: config.ConfigMapKey, Value: string(r.YAML)}}},
	}
	out, err := yaml.Marshal(cm)
	if err != nil {
		return nil, err
	}
	header := fmt.Sprintf("# Written by kubectl ironlb import %s: read its report before applying.\n", r.Source)
	return append([]byte(header), out...), nil
}
