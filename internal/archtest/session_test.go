package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// launcher is the one package that starts agent sessions: it builds the
// scaffold's command and starts it in a sandbox backend.
const launcher = "internal/agent/session"

// launches reports, for each package (directory and package name) under
// root, where it both builds an agent command (a method call
// X.Command(ctx, launch), as agent.Scaffold has it) and starts a sandboxed
// process (a method call X.Start(ctx, spec), as sandbox.Backend has it):
// a package that does both launches an agent session itself. Calls on an
// imported package (exec.Command("sh", "-c")) are not method calls and do
// not count. Test files count too, except the sandbox backends' own and
// the launcher's.
func launches(t *testing.T, root string) map[string][]string {
	type pkgKey struct{ dir, name string }
	command, start := map[pkgKey]string{}, map[pkgKey]string{}
	fset := token.NewFileSet()
	goFiles(root, func(p, rel string) {
		if under(rel, launcher) || (strings.HasSuffix(p, "_test.go") && under(rel, "internal/sandbox")) {
			return
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			return
		}
		imported := map[string]bool{}
		for _, im := range f.Imports {
			path, _ := strconv.Unquote(im.Path.Value)
			name := path[strings.LastIndex(path, "/")+1:]
			if im.Name != nil {
				name = im.Name.Name
			}
			imported[name] = true
		}
		key := pkgKey{rel, f.Name.Name}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 2 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); ok && imported[id.Name] {
				return true // a package's function, not a method
			}
			at := fset.Position(call.Pos())
			where := filepath.ToSlash(strings.TrimPrefix(at.Filename, root+string(filepath.Separator))) + ":" + strconv.Itoa(at.Line)
			switch sel.Sel.Name {
			case "Command":
				if _, ok := command[key]; !ok {
					command[key] = where
				}
			case "Start":
				if _, ok := start[key]; !ok {
					start[key] = where
				}
			}
			return true
		})
	})
	out := map[string][]string{}
	for k, c := range command {
		if s, ok := start[k]; ok {
			out[k.dir+" ("+k.name+")"] = []string{c, s}
		}
	}
	return out
}

// Only the launcher starts agent sessions: no other package builds a
// scaffold's command and starts a sandbox itself (docs/ARCHITECTURE.md).
func TestOnlyTheLauncherStartsAgentSessions(t *testing.T) {
	got := launches(t, moduleRoot(t))
	var pkgs []string
	for p := range got {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	for _, p := range pkgs {
		t.Errorf("%s builds an agent command (%s) and starts a sandbox (%s): launch agent sessions through %s", p, got[p][0], got[p][1], launcher)
	}
}

// The rule bites: a package that launches an agent itself is reported,
// wherever in the package the two calls are, and exec.Command is not
// taken for a scaffold.
func TestLauncherRuleBites(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string // path -> source
		want  []string          // reported packages
	}{
		{"one file launches", map[string]string{
			"internal/judge/judge.go": `package judge
func run(ctx any, sc scaffold, sb backend) { cmd, _ := sc.Command(ctx, launch{}); sb.Start(ctx, spec{Argv: cmd.Argv}) }`,
		}, []string{"internal/judge (judge)"}},
		{"split over two files", map[string]string{
			"internal/x/a.go": `package x
func build(ctx any, sc scaffold) { sc.Command(ctx, launch{}) }`,
			"internal/x/b.go": `package x
func start(ctx any, sb backend) { sb.Start(ctx, spec{}) }`,
		}, []string{"internal/x (x)"}},
		{"exec.Command and a backend: no agent", map[string]string{
			"internal/eval/server.go": `package eval
import "os/exec"
func run(ctx any, sb backend) { exec.Command("sh", "-c"); sb.Start(ctx, spec{}) }`,
		}, nil},
		{"the launcher itself", map[string]string{
			"internal/agent/session/session.go": `package session
func run(ctx any, sc scaffold, sb backend) { sc.Command(ctx, launch{}); sb.Start(ctx, spec{}) }`,
		}, nil},
		{"a backend's own test", map[string]string{
			"internal/sandbox/bwrap/bwrap_test.go": `package bwrap
func run(ctx any, sc scaffold, sb backend) { sc.Command(ctx, launch{}); sb.Start(ctx, spec{}) }`,
		}, nil},
		{"another package's test launches", map[string]string{
			"internal/agent/e2e/e2e_test.go": `package e2e
func run(ctx any, sc scaffold, sb backend) { sc.Command(ctx, launch{}); sb.Start(ctx, spec{}) }`,
		}, []string{"internal/agent/e2e (e2e)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for p, src := range tc.files {
				full := filepath.Join(root, p)
				os.MkdirAll(filepath.Dir(full), 0o755)
				if err := os.WriteFile(full, []byte(src), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			for p := range launches(t, root) {
				got = append(got, p)
			}
			sort.Strings(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("reported %q, want %q", got, tc.want)
			}
		})
	}
}
