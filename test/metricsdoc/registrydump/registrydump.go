// Package registrydump lists every metric registered in component-base's
// legacyregistry, the registry both ironlb binaries serve on /metrics.
//
// A vector with no children yet (ironlb_allocations_total before the first
// allocation) is absent from Gather, so the registry's collectors are read
// and asked to Describe themselves instead. client_golang has no public way
// to list a Registry's collectors; this reads its collectorsByID field and
// fails with a clear message if a client_golang release renames it.
//
// test/metricsdoc builds a program that imports exactly what an ironlb
// binary imports plus this package, and calls Main: the listing is then the
// binary's registry after init, with nothing of the other binary mixed in.
package registrydump

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/component-base/metrics/legacyregistry"
)

// Metric is one registered metric family.
type Metric struct {
	Name string `json:"name"`
	Help string `json:"help"`
	// Type is counter, gauge, histogram, summary or untyped; empty when
	// neither a collected sample nor the collector's Go type tells.
	Type string `json:"type"`
	// Labels are the variable and constant label names, sorted.
	Labels []string `json:"labels"`
}

// Main prints Metrics as JSON on stdout, or the error on stderr (exit 1).
func Main() {
	ms, err := Metrics()
	if err != nil {
		fmt.Fprintln(os.Stderr, "registrydump:", err)
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(ms); err != nil {
		fmt.Fprintln(os.Stderr, "registrydump:", err)
		os.Exit(1)
	}
}

// Metrics returns every metric family registered in legacyregistry, sorted
// by name.
func Metrics() ([]Metric, error) {
	collectors, err := registered(legacyregistry.Registerer())
	if err != nil {
		return nil, err
	}
	byName := map[string]Metric{}
	for _, c := range collectors {
		descs := describe(c)
		collected := collectTypes(c)
		for _, d := range descs {
			m, err := parseDesc(d.String())
			if err != nil {
				return nil, err
			}
			m.Type = collected[m.Name]
			if m.Type == "" && len(descs) == 1 {
				m.Type = typeOfCollector(c)
			}
			if prev, ok := byName[m.Name]; ok && prev.Type != "" && m.Type == "" {
				m.Type = prev.Type
			}
			byName[m.Name] = m
		}
		// Unchecked collectors describe nothing: what they collect is all
		// there is to know.
		if len(descs) == 0 {
			for name, typ := range collected {
				if _, ok := byName[name]; !ok {
					byName[name] = Metric{Name: name, Type: typ, Labels: []string{}}
				}
			}
		}
	}
	out := make([]Metric, 0, len(byName))
	for _, m := range byName {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Metric) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// registered returns the collectors of a *prometheus.Registry.
func registered(r prometheus.Registerer) ([]prometheus.Collector, error) {
	reg, ok := r.(*prometheus.Registry)
	if !ok {
		return nil, fmt.Errorf("legacyregistry's registerer is a %T, not a *prometheus.Registry", r)
	}
	v := reflect.ValueOf(reg).Elem()
	var out []prometheus.Collector
	byID := v.FieldByName("collectorsByID")
	if !byID.IsValid() || byID.Type() != reflect.TypeFor[map[uint64]prometheus.Collector]() {
		return nil, fmt.Errorf("prometheus.Registry has no field collectorsByID of type map[uint64]Collector any more: adapt registrydump to this client_golang")
	}
	for _, c := range reflect.NewAt(byID.Type(), unsafe.Pointer(byID.UnsafeAddr())).Elem().Interface().(map[uint64]prometheus.Collector) {
		out = append(out, c)
	}
	if unchecked := v.FieldByName("uncheckedCollectors"); unchecked.IsValid() && unchecked.Type() == reflect.TypeFor[[]prometheus.Collector]() {
		out = append(out, reflect.NewAt(unchecked.Type(), unsafe.Pointer(unchecked.UnsafeAddr())).Elem().Interface().([]prometheus.Collector)...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no collector found in legacyregistry: adapt registrydump to this client_golang")
	}
	return out, nil
}

func describe(c prometheus.Collector) []*prometheus.Desc {
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	var out []*prometheus.Desc
	for d := range ch {
		out = append(out, d)
	}
	return out
}

// collectTypes returns the type of every family c collects right now.
func collectTypes(c prometheus.Collector) map[string]string {
	ch := make(chan prometheus.Metric)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	out := map[string]string{}
	for m := range ch {
		var pb dto.Metric
		if m.Write(&pb) != nil {
			continue
		}
		d, err := parseDesc(m.Desc().String())
		if err != nil {
			continue
		}
		switch {
		case pb.Counter != nil:
			out[d.Name] = "counter"
		case pb.Gauge != nil:
			out[d.Name] = "gauge"
		case pb.Histogram != nil:
			out[d.Name] = "histogram"
		case pb.Summary != nil:
			out[d.Name] = "summary"
		case pb.Untyped != nil:
			out[d.Name] = "untyped"
		}
	}
	return out
}

// typeOfCollector tells a vector's type from its Go type
// (*metrics.CounterVec, *prometheus.GaugeVec, *metrics.TimingHistogramVec...).
func typeOfCollector(c prometheus.Collector) string {
	name := strings.ToLower(fmt.Sprintf("%T", c))
	for _, t := range []string{"counter", "gauge", "histogram", "summary"} {
		if strings.Contains(name, t) {
			return t
		}
	}
	return ""
}

// parseDesc reads a Desc's String():
//
//	Desc{fqName: "a", help: "b", unit: "", constLabels: {k="v"}, variableLabels: {x,c(y)}}
func parseDesc(s string) (Metric, error) {
	bad := func(why string) (Metric, error) {
		return Metric{}, fmt.Errorf("cannot read descriptor %s (%s): adapt registrydump to this client_golang", s, why)
	}
	var m Metric
	rest, ok := strings.CutPrefix(s, `Desc{fqName: `)
	if !ok {
		return bad("no fqName")
	}
	q, err := strconv.QuotedPrefix(rest)
	if err != nil {
		return bad("fqName")
	}
	m.Name, _ = strconv.Unquote(q)
	if rest, ok = strings.CutPrefix(rest[len(q):], `, help: `); !ok {
		return bad("no help")
	}
	if q, err = strconv.QuotedPrefix(rest); err != nil {
		return bad("help")
	}
	m.Help, _ = strconv.Unquote(q)
	rest = rest[len(q):]

	m.Labels = []string{}
	if i := strings.LastIndex(rest, "variableLabels: {"); i >= 0 {
		vl := strings.TrimSuffix(rest[i+len("variableLabels: {"):], "}}")
		for _, l := range strings.Split(vl, ",") {
			l = strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")")
			if l != "" {
				m.Labels = append(m.Labels, l)
			}
		}
		rest = rest[:i]
	} else {
		return bad("no variableLabels")
	}
	if _, cl, ok := strings.Cut(rest, "constLabels: {"); ok {
		for cl != "" && !strings.HasPrefix(cl, "}") {
			name, after, ok := strings.Cut(cl, "=")
			if !ok {
				return bad("constLabels")
			}
			q, err := strconv.QuotedPrefix(after)
			if err != nil {
				return bad("constLabels")
			}
			m.Labels = append(m.Labels, name)
			cl = strings.TrimPrefix(after[len(q):], ",")
		}
	}
	slices.Sort(m.Labels)
	return m, nil
}
