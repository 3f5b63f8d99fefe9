package config

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/ipam"
)

// maxInterfaceNameLength is IFNAMSIZ minus the terminating NUL.
const maxInterfaceNameLength = 15

// Parse decodes and validates a config.yaml document. Unknown fields are
// errors, so a typo never silently drops a setting. On failure it returns every
// problem found, each naming the field path and the offending value.
func Parse(data []byte) (*Config, field.ErrorList) {
	path := field.NewPath(ConfigMapKey)
	jsonData, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, field.ErrorList{field.Invalid(path, field.OmitValueType{}, "is not valid YAML: "+err.Error())}
	}
	var f File
	strictErrs, err := sigsjson.UnmarshalStrict(jsonData, &f, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return nil, field.ErrorList{field.Invalid(path, field.OmitValueType{}, err.Error())}
	}
	if len(strictErrs) > 0 {
		// Each names the full path, e.g. unknown field "pools[0].adresses".
		errs := make(field.ErrorList, 0, len(strictErrs))
		for _, e := range strictErrs {
			errs = append(errs, field.Forbidden(path, e.Error()))
		}
		return nil, errs
	}
	return f.Validate()
}

// Validate checks the operator's file and builds the Config from it.
func (f *File) Validate() (*Config, field.ErrorList) {
	var errs field.ErrorList
	cfg := &Config{bgpRaw: f.BGP, byName: make(map[string]*Pool, len(f.Pools))}
	var ranges []placedRange
	poolsPath := field.NewPath("pools")
	for i := range f.Pools {
		path := poolsPath.Index(i)
		pool, poolRanges, poolErrs := f.Pools[i].validate(path)
		errs = append(errs, poolErrs...)
		if pool.Name != "" {
			if _, dup := cfg.byName[pool.Name]; dup {
				errs = append(errs, field.Duplicate(path.Child("name"), pool.Name))
			} else {
				cfg.byName[pool.Name] = pool
			}
		}
		for k := range poolRanges {
			poolRanges[k].order = len(ranges) + k
		}
		ranges = append(ranges, poolRanges...)
		cfg.Pools = append(cfg.Pools, pool)
	}
	errs = append(errs, overlapErrors(ranges)...)
	if len(errs) > 0 {
		return nil, errs
	}
	// The bgp section is checked against valid pools only, so its messages
	// never repeat a pool's own problem.
	if cfg.BGP, errs = cfg.ParseBGP(); len(errs) > 0 {
		return nil, errs
	}
	cfg.autoAssign = autoAssignOrder(cfg.Pools)
	return cfg, nil
}

// placedRange remembers where in the file a range was written, for messages.
type placedRange struct {
	ipam.Range
	path *field.Path
	text string
	pool string
	// order is the position in the file, so a message lands on the later range.
	order int
}

func (p *PoolFile) validate(path *field.Path) (*Pool, []placedRange, field.ErrorList) {
	var errs field.ErrorList
	pool := &Pool{
		Name:          p.Name,
		Mode:          p.Mode,
		AutoAssign:    p.AutoAssign == nil || *p.AutoAssign,
		AvoidBuggyIPs: p.AvoidBuggyIPs,
		Priority:      p.Priority,
		Interfaces:    p.Interfaces,
	}
	errs = append(errs, validateName(path.Child("name"), p.Name, "every pool needs a name")...)

	if pool.Mode == "" {
		pool.Mode = ModeLayer2
	} else if !slices.Contains(Modes, pool.Mode) {
		errs = append(errs, field.NotSupported(path.Child("mode"), p.Mode, Modes))
	}

	var ranges []placedRange
	addrPath := path.Child("addresses")
	if len(p.Addresses) == 0 {
		errs = append(errs, field.Required(addrPath, "a pool needs at least one address, range or CIDR"))
	}
	for j, text := range p.Addresses {
		r, err := ipam.ParseRange(text)
		if err != nil {
			errs = append(errs, field.Invalid(addrPath.Index(j), text, err.Error()))
			continue
		}
		pool.Ranges = append(pool.Ranges, r)
		ranges = append(ranges, placedRange{Range: r, path: addrPath.Index(j), text: text, pool: p.Name})
	}

	if len(p.Namespaces) > 0 {
		pool.Namespaces = make(map[string]bool, len(p.Namespaces))
		for j, ns := range p.Namespaces {
			if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
				errs = append(errs, field.Invalid(path.Child("namespaces").Index(j), ns, strings.Join(msgs, "; ")))
			}
			pool.Namespaces[ns] = true
		}
	}
	var selErrs field.ErrorList
	pool.NamespaceSelector, selErrs = selector(p.NamespaceSelector, path.Child("namespaceSelector"))
	errs = append(errs, selErrs...)
	pool.ServiceSelector, selErrs = selector(p.ServiceSelector, path.Child("serviceSelector"))
	errs = append(errs, selErrs...)
	pool.NodeSelector, selErrs = selector(p.NodeSelector, path.Child("nodeSelector"))
	errs = append(errs, selErrs...)

	for j, name := range p.Interfaces {
		if name == "" || len(name) > maxInterfaceNameLength || strings.ContainsAny(name, "/ \t\n:") {
			errs = append(errs, field.Invalid(path.Child("interfaces").Index(j), name,
				fmt.Sprintf("is not a Linux interface name (1-%d characters, no '/', ':' or spaces)", maxInterfaceNameLength)))
		}
	}
	return pool, ranges, errs
}

// validateName checks a required name that must be a DNS label; whyRequired
// is the message when it is missing.
func validateName(path *field.Path, name, whyRequired string) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(path, whyRequired)}
	}
	if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 {
		return field.ErrorList{field.Invalid(path, name, strings.Join(msgs, "; "))}
	}
	return nil
}

// selector compiles a label selector; an absent selector selects everything.
func selector(s *metav1.LabelSelector, path *field.Path) (labels.Selector, field.ErrorList) {
	if s == nil {
		return labels.Everything(), nil
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return labels.Nothing(), field.ErrorList{field.Invalid(path, metav1.FormatLabelSelector(s), err.Error())}
	}
	return sel, nil
}

// overlapErrors reports every range that overlaps one written before it,
// within a pool or across pools, in O(n log n).
func overlapErrors(ranges []placedRange) field.ErrorList {
	slices.SortStableFunc(ranges, func(a, b placedRange) int { return a.First.Compare(b.First) })
	var errs field.ErrorList
	var widest *placedRange // the range seen so far that reaches furthest
	for i := range ranges {
		cur := &ranges[i]
		if widest != nil && widest.Overlaps(cur.Range) {
			first, second := orderByPath(widest, cur)
			errs = append(errs, field.Invalid(second.path, second.text,
				fmt.Sprintf("overlaps %s (%q) of pool %q; pools and their ranges must not overlap", first.path, first.text, first.pool)))
		}
		if widest == nil || widest.Family() != cur.Family() || widest.Last.Less(cur.Last) {
			widest = cur
		}
	}
	return errs
}

// orderByPath returns the two ranges in the order the operator wrote them, so
// the message is attached to the later one.
func orderByPath(a, b *placedRange) (*placedRange, *placedRange) {
	if a.order > b.order {
		return b, a
	}
	return a, b
}
