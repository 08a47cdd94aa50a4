package archtest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// initCompiles are the calls that compile something (a regexp, a template)
// and so cost CPU and allocations where they run, by import path.
var initCompiles = map[string]map[string]bool{
	"regexp":                        {"MustCompile": true, "Compile": true, "MustCompilePOSIX": true, "CompilePOSIX": true},
	"github.com/dlclark/regexp2/v2": {"MustCompile": true, "Compile": true},
	"text/template":                 {"Must": true, "New": true},
	"html/template":                 {"Must": true, "New": true},
}

// initWork returns "file:line: pkg.Func" for every compiling call in a
// package-level var's initializer of src, outside function literals (a
// sync.OnceValue's function runs on first use, not at init).
func initWork(fset *token.FileSet, name string, src any) ([]string, error) {
	f, err := parser.ParseFile(fset, name, src, 0)
	if err != nil {
		return nil, err
	}
	names := map[string]string{} // local name -> import path
	for _, im := range f.Imports {
		p, _ := strconv.Unquote(im.Path.Value)
		if initCompiles[p] == nil {
			continue
		}
		local := p[strings.LastIndex(p, "/")+1:]
		if p == "github.com/dlclark/regexp2/v2" {
			local = "regexp2"
		}
		if im.Name != nil {
			local = im.Name.Name
		}
		names[local] = p
	}
	if len(names) == 0 {
		return nil, nil
	}
	var out []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.VAR {
			continue
		}
		for _, spec := range g.Specs {
			for _, v := range spec.(*ast.ValueSpec).Values {
				ast.Inspect(v, func(n ast.Node) bool {
					if _, ok := n.(*ast.FuncLit); ok {
						return false
					}
					call, ok := n.(*ast.CallExpr)
					if !ok {
						return true
					}
					sel, ok := call.Fun.(*ast.SelectorExpr)
					if !ok {
						return true
					}
					if id, ok := sel.X.(*ast.Ident); ok && initCompiles[names[id.Name]][sel.Sel.Name] {
						out = append(out, fmt.Sprintf("%s: %s.%s", fset.Position(call.Pos()), id.Name, sel.Sel.Name))
					}
					return true
				})
			}
		}
	}
	return out, nil
}

// Every ptb command runs every linked package's initializers before main:
// a regexp or template compiled in a package-level var is paid for by
// `ptb version` and `ptb trace render` alike. Build them on first use
// (sync.OnceValue); docs/PERFORMANCE.md, "Start-up".
func TestNoCompileAtInit(t *testing.T) {
	root := moduleRoot(t)
	fset := token.NewFileSet()
	n := 0
	for _, dir := range []string{"internal", "cmd"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "testdata" {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return nil
			}
			n++
			found, err := initWork(fset, p, nil)
			if err != nil {
				return err
			}
			for _, w := range found {
				rel, _ := filepath.Rel(root, w)
				t.Errorf("%s in a package-level var runs at the start of every ptb command: build it on first use (sync.OnceValue)", rel)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n < 100 {
		t.Fatalf("only %d Go files under internal/ and cmd/: wrong root?", n)
	}
}

// The scan must bite: compiles in var initializers are found, also nested
// in a composite literal and under a renamed import; those inside a
// function literal or a function are not.
func TestInitWorkFinds(t *testing.T) {
	for _, c := range []struct {
		name, src string
		want      int
	}{
		{"var", "package p\nimport \"regexp\"\nvar re = regexp.MustCompile(`a`)", 1},
		{"grouped", "package p\nimport \"regexp\"\nvar (\n\ta = regexp.MustCompile(`a`)\n\tb, _ = regexp.Compile(`b`)\n)", 2},
		{"in a table", "package p\nimport \"regexp\"\nvar m = map[string][]*regexp.Regexp{\"x\": {regexp.MustCompile(`a`)}}", 1},
		{"renamed", "package p\nimport re \"regexp\"\nvar x = re.MustCompile(`a`)", 1},
		{"template", "package p\nimport \"text/template\"\nvar t = template.Must(template.New(\"x\").Parse(\"y\"))", 2},
		{"regexp2", "package p\nimport \"github.com/dlclark/regexp2/v2\"\nvar r = regexp2.MustCompile(`a`, 0)", 1},
		{"lazy", "package p\nimport (\n\t\"regexp\"\n\t\"sync\"\n)\nvar re = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`a`) })", 0},
		{"in a function", "package p\nimport \"regexp\"\nfunc f() { _ = regexp.MustCompile(`a`) }", 0},
		{"other package", "package p\nimport \"x/regexp\"\nvar re = regexp.MustCompile(`a`)", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := initWork(token.NewFileSet(), "p.go", c.src)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != c.want {
				t.Errorf("found %q, want %d", got, c.want)
			}
		})
	}
}
