package archtest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// envFuncs are the os functions that read the process environment.
var envFuncs = map[string]bool{"Getenv": true, "LookupEnv": true, "Environ": true, "ExpandEnv": true}

// envReads returns "file:line: os.Name" for every use (call or function
// value) of an environment-reading os function in src.
func envReads(fset *token.FileSet, name string, src any) ([]string, error) {
	f, err := parser.ParseFile(fset, name, src, 0)
	if err != nil {
		return nil, err
	}
	osName := ""
	for _, im := range f.Imports {
		if p, _ := strconv.Unquote(im.Path.Value); p == "os" {
			osName = "os"
			if im.Name != nil {
				osName = im.Name.Name
			}
		}
	}
	if osName == "" || osName == "_" {
		return nil, nil
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if id, ok := sel.X.(*ast.Ident); ok && id.Name == osName && envFuncs[sel.Sel.Name] {
			out = append(out, fmt.Sprintf("%s: os.%s", fset.Position(sel.Pos()), sel.Sel.Name))
		}
		return true
	})
	return out, nil
}

// Only package cli reads the environment: the run's wiring (jobrun) and the
// pipeline get what they need from their caller (jobrun.Config, an
// injected lookup), so a test or an executor can run a job with an
// environment of its own choosing.
func TestEnvReadOnlyAtTheEdge(t *testing.T) {
	root := moduleRoot(t)
	fset := token.NewFileSet()
	for _, pkg := range []string{"internal/jobrun", "internal/pipeline"} {
		files, err := filepath.Glob(filepath.Join(root, pkg, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no Go files (%v)", pkg, err)
		}
		for _, p := range files {
			if strings.HasSuffix(p, "_test.go") {
				continue
			}
			reads, err := envReads(fset, p, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range reads {
				rel, _ := filepath.Rel(root, r)
				t.Errorf("%s reads the environment: only internal/cli may; take the value or a lookup function from the caller (jobrun.Config)", rel)
			}
		}
	}
}

// The scan must bite: calls, function values and a renamed import are
// found; a method of another package named Getenv is not.
func TestEnvReadsFinds(t *testing.T) {
	for _, c := range []struct {
		name, src string
		want      int
	}{
		{"call", "package p\nimport \"os\"\nvar v = os.Getenv(\"X\")", 1},
		{"lookup and environ", "package p\nimport \"os\"\nfunc f() { os.LookupEnv(\"X\"); _ = os.Environ() }", 2},
		{"function value", "package p\nimport \"os\"\nvar g = os.LookupEnv", 1},
		{"renamed import", "package p\nimport sys \"os\"\nvar v = sys.ExpandEnv(\"$X\")", 1},
		{"other package", "package p\nimport \"x/cfg\"\nvar v = cfg.Getenv(\"X\")", 0},
		{"other os function", "package p\nimport \"os\"\nvar v, _ = os.Executable()", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := envReads(token.NewFileSet(), "p.go", c.src)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != c.want {
				t.Errorf("found %q, want %d", got, c.want)
			}
		})
	}
}
