package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// otherLayouts are string literals equal to a run-directory file name that
// name a file of another layout, not of the run directory, by the package
// (directory, relative to the module root) that uses them.
var otherLayouts = map[string]struct {
	names []string
	why   string
}{
	"internal/eval":                {[]string{"metrics.json", "samples.jsonl", "server.log"}, "the evaluator's own output directory (ptb eval --out), which RUN_DIR/eval is one of"},
	"internal/campaign":            {[]string{"metrics.json", "server.log"}, "a baseline's run directory is ptb eval's output directory, and campaign may not import eval"},
	"internal/gateway":             {[]string{"llm.jsonl", "hub.jsonl", "egress.jsonl", "grade.jsonl"}, "a gateway's log directory: the run's gateway/ and each judge's audit/judge-N-gateway/"},
	"internal/report/ptbimport":    {[]string{"metrics.json"}, "the original PostTrainBench's results layout"},
	"internal/sandbox/bwrap":       {[]string{".lock"}, "the suffix of its slot lock files (slot-N.lock)"},
	"internal/sandbox/sandboxtest": {[]string{"samples.jsonl"}, "the contract suite's stand-in for another run's files: sandboxes know nothing of run directories"},
}

// rundirNames maps each file name of the run directory to the rundir
// constant that holds it: the constants' values that name files or paths
// (a '.' or a '/': "job.json", "trace/solve.json"), and the last element
// of a path when it is a file name ("solve.json"). Bare directory names
// ("workspace", "home", "eval") are ordinary words elsewhere and are left
// out.
func rundirNames(t *testing.T, root string) map[string]string {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, filepath.Join(root, "internal", "rundir"), func(fi os.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range pkgs {
		for _, f := range p.Files {
			for _, d := range f.Decls {
				g, ok := d.(*ast.GenDecl)
				if !ok || g.Tok != token.CONST {
					continue
				}
				for _, s := range g.Specs {
					vs := s.(*ast.ValueSpec)
					for i, v := range vs.Values {
						lit, ok := v.(*ast.BasicLit)
						if !ok || lit.Kind != token.STRING {
							continue
						}
						val, _ := strconv.Unquote(lit.Value)
						if !strings.ContainsAny(val, "./") {
							continue
						}
						name := "rundir." + vs.Names[i].Name
						out[val] = name
						if b := path.Base(val); b != val && strings.Contains(b, ".") {
							out[b] = name
						}
					}
				}
			}
		}
	}
	return out
}

// Only internal/rundir names run-directory files: a string literal equal
// to one of its file names in a non-test file of any other package is a
// second copy of the layout (docs/RUN_DIR.md) that can drift.
func TestOnlyRundirNamesRunDirFiles(t *testing.T) {
	root := moduleRoot(t)
	names := rundirNames(t, root)
	for _, want := range []string{"job.json", "trace/solve.json", "solve.json", ".lock"} {
		if names[want] == "" {
			t.Fatalf("rundir constants hold no %q: is the scan of internal/rundir broken? (found %d names)", want, len(names))
		}
	}
	var bad []string
	fset := token.NewFileSet()
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") && p != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(p))
		pkg := filepath.ToSlash(rel)
		if under(pkg, "internal/rundir") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			return nil
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			val, err := strconv.Unquote(lit.Value)
			if err != nil {
				return true
			}
			c, ok := names[val]
			if !ok {
				return true
			}
			for _, allowed := range otherLayouts[pkg].names {
				if allowed == val {
					return true
				}
			}
			pos := fset.Position(lit.Pos())
			r, _ := filepath.Rel(root, pos.Filename)
			bad = append(bad, r+":"+strconv.Itoa(pos.Line)+": "+strconv.Quote(val)+": use "+c)
			return true
		})
		return nil
	})
	sort.Strings(bad)
	for _, b := range bad {
		t.Errorf("%s (only internal/rundir names run-directory files; docs/RUN_DIR.md)", b)
	}
}
