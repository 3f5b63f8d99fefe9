package metricsdoc

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// definedMetrics finds the ironlb_ metrics the source of a binary's own
// packages defines: metric options literals (metrics.GaugeOpts{Namespace:
// "ironlb", Subsystem: ..., Name: ...}, prometheus.CounterOpts...) and
// NewDesc("ironlb_...") calls. It returns their names with where they are
// defined; unreadable ones (a name that is not a string literal) are
// returned as problems.
func definedMetrics(t *testing.T, root, bin string) (map[string]string, []string) {
	t.Helper()
	out, err := goCmd(root, "list", "-deps", "-tags", buildTags,
		"-f", `{{if .Module}}{{if .Module.Main}}{{.Dir}}{{"\t"}}{{join .GoFiles " "}}{{"\n"}}{{end}}{{end}}`, "./cmd/"+bin)
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]string{}
	var problems []string
	fset := token.NewFileSet()
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		dir, files, _ := strings.Cut(line, "\t")
		for _, name := range strings.Fields(files) {
			path := filepath.Join(dir, name)
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(root, path)
			ast.Inspect(f, func(n ast.Node) bool {
				pos := func() string { return rel + ":" + strconv.Itoa(fset.Position(n.Pos()).Line) }
				switch n := n.(type) {
				case *ast.CompositeLit:
					if !strings.HasSuffix(typeName(n.Type), "Opts") {
						return true
					}
					parts := map[string]string{}
					readable := true
					for _, e := range n.Elts {
						kv, ok := e.(*ast.KeyValueExpr)
						if !ok {
							continue
						}
						k, ok := kv.Key.(*ast.Ident)
						if !ok || (k.Name != "Namespace" && k.Name != "Subsystem" && k.Name != "Name") {
							continue
						}
						if s, ok := stringLit(kv.Value); ok {
							parts[k.Name] = s
						} else {
							readable = false
						}
					}
					var fq []string
					for _, k := range []string{"Namespace", "Subsystem", "Name"} {
						if parts[k] != "" {
							fq = append(fq, parts[k])
						}
					}
					name := strings.Join(fq, "_")
					switch {
					case !strings.HasPrefix(name, "ironlb_") && parts["Namespace"] != "ironlb":
					case !readable:
						problems = append(problems, pos()+": an ironlb metric whose Namespace, Subsystem and Name are not all string literals; this test cannot read its name")
					default:
						defined[name] = pos()
					}
				case *ast.CallExpr:
					if typeName(n.Fun) == "NewDesc" && len(n.Args) > 0 {
						if s, ok := stringLit(n.Args[0]); ok && strings.HasPrefix(s, "ironlb_") {
							defined[s] = pos()
						}
					}
				}
				return true
			})
		}
	}
	return defined, problems
}

// typeName is the last identifier of X, pkg.X or *pkg.X.
func typeName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return e.Sel.Name
	case *ast.StarExpr:
		return typeName(e.X)
	}
	return ""
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// TestDefinedMetricsAreRegisteredAtInit: the listing only sees what a
// binary registers by the end of its init functions. Every ironlb_ metric
// the binary's own source defines must be among them, or it could ship
// undocumented: register it in an init function, as provider/metrics.go
// and announcer/metrics.go do.
func TestDefinedMetricsAreRegisteredAtInit(t *testing.T) {
	root := repoRoot(t)
	exp := exposed(t)
	for _, bin := range binaries {
		listed := map[string]bool{}
		for _, m := range exp[bin] {
			listed[m.Name] = true
		}
		defined, problems := definedMetrics(t, root, bin)
		for _, p := range problems {
			t.Error(p)
		}
		if len(defined) == 0 {
			t.Errorf("found no ironlb_ metric defined in the source of %s: the search is broken", bin)
		}
		for _, name := range sortedKeys(defined) {
			if !listed[name] {
				t.Errorf("%s: %s defines %s, but %s has not registered it once initialized: register it in an init function so the docs check sees it", defined[name], bin, name, bin)
			}
		}
	}
}
