package metricsdoc

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const (
	dashboardPath      = "manifests/grafana/ironlb-dashboard.json"
	chartDashboardPath = "charts/ironlb/files/ironlb-dashboard.json"
)

// panel is what the checks read of a Grafana panel.
type panel struct {
	ID         *int           `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *datasourceRef `json:"datasource"`
	GridPos    *gridPos       `json:"gridPos"`
	Targets    []panelTarget  `json:"targets"`
	Panels     []panel        `json:"panels"` // a collapsed row's
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type gridPos struct {
	H, W, X, Y int
}

type panelTarget struct {
	Datasource *datasourceRef `json:"datasource"`
	Expr       string         `json:"expr"`
	RefID      string         `json:"refId"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	Datasource *datasourceRef  `json:"datasource"`
}

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

// ownDatasource is how every panel, target and query variable must name
// its data source: through the dashboard's variable, never a fixed uid.
var ownDatasource = datasourceRef{Type: "prometheus", UID: "${datasource}"}

// TestDashboard: the dashboard parses, picks its Prometheus through a
// datasource variable, has unique panel ids and a query in every panel, and
// queries only metrics that exist: every ironlb_ name it uses has a row in
// docs/metrics.md, every other metric is served by a binary.
func TestDashboard(t *testing.T) {
	root := repoRoot(t)
	data, err := os.ReadFile(filepath.Join(root, dashboardPath))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("%s: uid %q, title %q: both are needed for provisioning", dashboardPath, d.UID, d.Title)
	}
	if d.SchemaVersion < 38 {
		t.Errorf("%s: schemaVersion %d, want 38 or later (Grafana 10)", dashboardPath, d.SchemaVersion)
	}

	var exprs []string
	var dsVar bool
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			var q string
			_ = json.Unmarshal(v.Query, &q)
			dsVar = dsVar || (v.Name == "datasource" && q == "prometheus")
		case "query":
			if v.Datasource == nil || *v.Datasource != ownDatasource {
				t.Errorf("variable %s: datasource %+v, want %+v", v.Name, v.Datasource, ownDatasource)
			}
			exprs = append(exprs, v.Definition, string(v.Query))
		}
	}
	if !dsVar {
		t.Error(`no template variable "datasource" of type datasource for Prometheus`)
	}

	ids := map[int]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			switch {
			case p.ID == nil || *p.ID <= 0:
				t.Errorf("panel %q has no positive id", p.Title)
			case ids[*p.ID] != "":
				t.Errorf("panels %q and %q share id %d", ids[*p.ID], p.Title, *p.ID)
			default:
				ids[*p.ID] = p.Title
			}
			if p.Title == "" {
				t.Errorf("panel %v has no title", p.ID)
			}
			if g := p.GridPos; g == nil || g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
				t.Errorf("panel %q: gridPos %+v is not within Grafana's 24 columns", p.Title, g)
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || *p.Datasource != ownDatasource {
				t.Errorf("panel %q: datasource %+v, want %+v", p.Title, p.Datasource, ownDatasource)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			refIDs := map[string]bool{}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" || tg.RefID == "" || refIDs[tg.RefID] {
					t.Errorf("panel %q: a query without an expression or with a missing or repeated refId %q", p.Title, tg.RefID)
				}
				refIDs[tg.RefID] = true
				if tg.Datasource != nil && *tg.Datasource != ownDatasource {
					t.Errorf("panel %q query %s: datasource %+v, want %+v", p.Title, tg.RefID, tg.Datasource, ownDatasource)
				}
				if strings.Count(tg.Expr, "(") != strings.Count(tg.Expr, ")") || strings.Count(tg.Expr, "{") != strings.Count(tg.Expr, "}") {
					t.Errorf("panel %q query %s: unbalanced brackets in %s", p.Title, tg.RefID, tg.Expr)
				}
				exprs = append(exprs, tg.Expr)
			}
		}
	}
	walk(d.Panels)

	// Every metric a query names exists.
	p := readPage(t)
	documented := map[string]bool{}
	for _, r := range p.rows {
		documented[r.name] = true
	}
	exp := exposed(t)
	other := map[string]bool{}
	for _, ms := range exp {
		for _, m := range ms {
			other[m.Name] = true
		}
	}
	otherMetric := regexp.MustCompile(`\b(?:process|go|leader_election|workqueue|rest_client|kubernetes)_[a-z0-9_]+\b`)
	for _, e := range exprs {
		for _, name := range metricName.FindAllString(e, -1) {
			if !documented[name] {
				t.Errorf("%s queries %s, which %s does not document", dashboardPath, name, docPath)
			}
		}
		for _, name := range otherMetric.FindAllString(e, -1) {
			if !other[name] {
				t.Errorf("%s queries %s, which neither binary serves", dashboardPath, name)
			}
		}
	}
	// ...and nothing else in the file names an ironlb_ metric that is not.
	for _, name := range metricName.FindAllString(string(data), -1) {
		if !documented[name] {
			t.Errorf("%s mentions %s, which %s does not document", dashboardPath, name, docPath)
		}
	}
}

// TestChartDashboardCopy: the chart ships the dashboard unchanged (a chart
// cannot read files outside its folder, so it keeps a copy).
func TestChartDashboardCopy(t *testing.T) {
	root := repoRoot(t)
	want, err := os.ReadFile(filepath.Join(root, dashboardPath))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, chartDashboardPath))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s: copy it over (cp %[2]s %[1]s)", chartDashboardPath, dashboardPath)
	}
}
