package metricsdoc

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ironlb/ironlb/test/metricsdoc/registrydump"
)

const docPath = "docs/metrics.md"

// row is one metric's table row in docs/metrics.md.
type row struct {
	name   string
	typ    string
	labels []string
	// binary is the binary named by the nearest enclosing heading that
	// names one ("" if none does).
	binary string
	line   int
}

// page is what the checks read from docs/metrics.md.
type page struct {
	rows []row
	// mentions are the lines of every ironlb_ name anywhere on the page
	// (tables, prose, PromQL, YAML). A name ending in "_" is a prefix.
	mentions map[string][]int
}

var (
	metricName  = regexp.MustCompile(`\bironlb_[a-z0-9_:]*[a-z0-9_]`)
	metricCell  = regexp.MustCompile("^`(ironlb_[a-zA-Z0-9_:]+)`$")
	backticked  = regexp.MustCompile("`([^`]+)`")
	headingLine = regexp.MustCompile(`^(#{1,6})\s+(.*?)\s*#*\s*$`)
)

// parsePage reads the metric rows (a table row whose first cell is a
// backticked ironlb_ name; then type, labels, meaning), the headings they
// sit under, and every ironlb_ name the page mentions.
func parsePage(text string) (*page, error) {
	p := &page{mentions: map[string][]int{}}
	var headings [7]string
	fenced := false
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		for _, m := range metricName.FindAllString(line, -1) {
			p.mentions[m] = append(p.mentions[m], n)
		}
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fenced = !fenced
			continue
		}
		if fenced {
			continue
		}
		if h := headingLine.FindStringSubmatch(line); h != nil {
			level := len(h[1])
			headings[level] = h[2]
			for l := level + 1; l < len(headings); l++ {
				headings[l] = ""
			}
			continue
		}
		if !strings.HasPrefix(trimmed, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(trimmed, "|"), "|")
		for j := range cells {
			cells[j] = strings.TrimSpace(cells[j])
		}
		m := metricCell.FindStringSubmatch(cells[0])
		if m == nil {
			continue
		}
		if len(cells) < 4 {
			return nil, fmt.Errorf("%s:%d: a metric row needs four cells (metric | type | labels | meaning), has %d", docPath, n, len(cells))
		}
		r := row{name: m[1], typ: strings.ToLower(cells[1]), labels: []string{}, line: n}
		for _, l := range backticked.FindAllStringSubmatch(cells[2], -1) {
			r.labels = append(r.labels, l[1])
		}
		slices.Sort(r.labels)
		for l := len(headings) - 1; l > 0 && r.binary == ""; l-- {
			for _, bin := range binaries {
				if strings.Contains(headings[l], bin) {
					r.binary = bin
				}
			}
		}
		p.rows = append(p.rows, r)
	}
	return p, nil
}

// check returns every way the page and the registered metrics disagree.
func check(p *page, exp map[string][]registrydump.Metric) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	metrics := ironlbMetrics(exp)

	byName := map[string][]row{}
	for _, r := range p.rows {
		byName[r.name] = append(byName[r.name], r)
	}
	for _, name := range sortedKeys(metrics) {
		m := metrics[name]
		rows := byName[name]
		switch {
		case len(rows) == 0:
			add("%s registers %s (%s, labels %s) but %s has no row for it: add `| `%s` | %s | %s | meaning |` under ## %s",
				strings.Join(m.binaries, " and "), name, orUnknown(m.Type), labelList(m.Labels), docPath, name, orUnknown(m.Type), labelCell(m.Labels), m.binaries[0])
			continue
		case len(rows) > 1:
			add("%s has %d rows for %s (lines %v); keep one", docPath, len(rows), name, lines(rows))
		}
		r := rows[0]
		if m.Type != "" && r.typ != m.Type {
			add("%s:%d: %s is a %s, the row says %q", docPath, r.line, name, m.Type, r.typ)
		}
		if !slices.Equal(r.labels, m.Labels) {
			add("%s:%d: %s has labels %s, the row says %s", docPath, r.line, name, labelList(m.Labels), labelList(r.labels))
		}
		if r.binary != "" && !slices.Contains(m.binaries, r.binary) {
			add("%s:%d: %s is documented under %s, but %s serves it", docPath, r.line, name, r.binary, strings.Join(m.binaries, " and "))
		}
	}
	for _, r := range p.rows {
		if _, ok := metrics[r.name]; !ok {
			add("%s:%d: a row documents %s, which neither %s registers", docPath, r.line, r.name, strings.Join(binaries, " nor "))
		}
	}
	for _, name := range sortedKeys(p.mentions) {
		if !knownName(name, metrics) {
			add("%s:%v: %s is not a metric ironlb serves", docPath, p.mentions[name], name)
		}
	}
	return problems
}

// knownName: name is a served metric, a histogram's or summary's derived
// series, or (ending in "_") a prefix of one.
func knownName(name string, metrics map[string]served) bool {
	if strings.HasSuffix(name, "_") {
		for m := range metrics {
			if strings.HasPrefix(m, name) {
				return true
			}
		}
		return false
	}
	if _, ok := metrics[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if m, ok := metrics[strings.TrimSuffix(name, suffix)]; ok && name != m.Name && (m.Type == "histogram" || m.Type == "summary") {
			return true
		}
	}
	return false
}

func readPage(t *testing.T) *page {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), docPath))
	if err != nil {
		t.Fatal(err)
	}
	p, err := parsePage(string(data))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDocsMatchRegistries: docs/metrics.md documents exactly the ironlb_
// metrics the binaries register, each under its binary with its type and
// labels, and mentions no other ironlb_ name.
func TestDocsMatchRegistries(t *testing.T) {
	p := readPage(t)
	if len(p.rows) == 0 {
		t.Fatalf("%s has no metric rows", docPath)
	}
	for _, problem := range check(p, exposed(t)) {
		t.Error(problem)
	}
}

// TestCheckCatchesDrift: the check fails for a metric without a row, a row
// or a mention of a metric that does not exist, a wrong type or labels, and
// a row under the wrong binary.
func TestCheckCatchesDrift(t *testing.T) {
	exp := map[string][]registrydump.Metric{
		"ironlb-ccm": {
			{Name: "ironlb_a_total", Type: "counter", Labels: []string{"result"}},
			{Name: "ironlb_b", Type: "gauge", Labels: []string{}},
			{Name: "ironlb_h_seconds", Type: "histogram", Labels: []string{}},
			{Name: "process_cpu_seconds_total", Type: "counter", Labels: []string{}},
		},
		"ironlb-speaker": {
			{Name: "ironlb_speaker_c", Type: "gauge", Labels: []string{"mode", "node"}},
		},
	}
	good := strings.Join([]string{
		"# Metrics",
		"## ironlb-ccm",
		"| metric | type | labels | meaning |",
		"|---|---|---|---|",
		"| `ironlb_a_total` | counter | `result` | `allocated` or `failed` |",
		"| `ironlb_b` | gauge | — | b |",
		"| `ironlb_h_seconds` | histogram | — | h |",
		"## ironlb-speaker",
		"### Some feature",
		"| `ironlb_speaker_c` | gauge | `node`, `mode` | c |",
		"## Queries",
		"```promql",
		"rate(ironlb_h_seconds_sum[5m]) / rate(ironlb_h_seconds_count[5m]) and ironlb_b",
		"| `ironlb_b` | counter | `not`, `a row` | in a code block |",
		"```",
		"The ironlb_speaker_ metrics.",
	}, "\n")
	for _, tc := range []struct {
		name string
		edit func(string) string
		exp  func()
		want []string // one substring per problem expected
	}{
		{name: "in sync"},
		{name: "metric without a row", exp: func() {
			exp["ironlb-speaker"] = append(exp["ironlb-speaker"], registrydump.Metric{Name: "ironlb_speaker_new_total", Type: "counter", Labels: []string{}})
		}, want: []string{"ironlb-speaker registers ironlb_speaker_new_total (counter, labels none) but docs/metrics.md has no row"}},
		{name: "row for no metric", edit: func(s string) string {
			return s + "\n| `ironlb_gone` | gauge | — | gone |"
		}, want: []string{"a row documents ironlb_gone, which neither", "ironlb_gone is not a metric"}},
		{name: "mention of no metric", edit: func(s string) string {
			return s + "\nAlert on ironlb_typo_total."
		}, want: []string{"ironlb_typo_total is not a metric"}},
		{name: "prefix of no metric", edit: func(s string) string {
			return s + "\nThe ironlb_nothing_ metrics."
		}, want: []string{"ironlb_nothing_ is not a metric"}},
		{name: "sum of a gauge", edit: func(s string) string {
			return s + "\nironlb_b_sum"
		}, want: []string{"ironlb_b_sum is not a metric"}},
		{name: "wrong type", edit: func(s string) string {
			return strings.Replace(s, "| `ironlb_b` | gauge |", "| `ironlb_b` | counter |", 1)
		}, want: []string{`ironlb_b is a gauge, the row says "counter"`}},
		{name: "wrong labels", edit: func(s string) string {
			return strings.Replace(s, "`node`, `mode`", "`node`", 1)
		}, want: []string{"ironlb_speaker_c has labels mode, node, the row says node"}},
		{name: "row under no binary heading", edit: func(s string) string {
			return strings.Replace(s, "| `ironlb_b` | gauge | — | b |\n", "", 1) + "\n| `ironlb_b` | gauge | — | b |"
		}},
		{name: "under the other binary", edit: func(s string) string {
			return strings.Replace(s, "| `ironlb_b` | gauge | — | b |\n", "", 1) + "\n## ironlb-speaker again\n| `ironlb_b` | gauge | — | b |"
		}, want: []string{"ironlb_b is documented under ironlb-speaker, but ironlb-ccm serves it"}},
		{name: "two rows", edit: func(s string) string {
			return s + "\n| `ironlb_b` | gauge | — | b again |"
		}, want: []string{"has 2 rows for ironlb_b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			saved := exp["ironlb-speaker"]
			defer func() { exp["ironlb-speaker"] = saved }()
			if tc.exp != nil {
				tc.exp()
			}
			text := good
			if tc.edit != nil {
				text = tc.edit(text)
			}
			p, err := parsePage(text)
			if err != nil {
				t.Fatal(err)
			}
			problems := check(p, exp)
			ok := len(problems) == len(tc.want)
			for i := 0; ok && i < len(problems); i++ {
				ok = strings.Contains(problems[i], tc.want[i])
			}
			if !ok {
				t.Errorf("want problems containing %q, got %q", tc.want, problems)
			}
		})
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func lines(rows []row) []int {
	var out []int
	for _, r := range rows {
		out = append(out, r.line)
	}
	return out
}

func labelList(labels []string) string {
	if len(labels) == 0 {
		return "none"
	}
	return strings.Join(labels, ", ")
}

func labelCell(labels []string) string {
	if len(labels) == 0 {
		return "—"
	}
	return "`" + strings.Join(labels, "`, `") + "`"
}

func orUnknown(typ string) string {
	if typ == "" {
		return "type?"
	}
	return typ
}
