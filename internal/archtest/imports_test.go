// Package archtest checks the import rules stated as invariants in
// docs/ARCHITECTURE.md: which packages must never depend on which.
package archtest

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/ptb-dev/ptb/"

// rules: a package (by path prefix under the module) must not import any
// of the listed prefixes, in non-test files.
var rules = []struct {
	pkg    string
	forbid []string
	why    string
}{
	{"internal/result", []string{"internal/"}, "the record format depends on nothing"},
	{"internal/sandbox", []string{"internal/pipeline", "internal/cli", "internal/agent", "internal/eval", "internal/audit", "internal/report", "internal/trace", "internal/job"}, "sandboxes know nothing of jobs or agents"},
	{"internal/pipeline", []string{"internal/cli", "internal/eval", "internal/audit", "internal/report", "internal/trace", "internal/sandbox/bwrap", "internal/sandbox/none", "internal/agent/claude", "internal/agent/codex", "internal/agent/gemini", "internal/agent/opencode"}, "the pipeline sees its seams only as interfaces"},
	{"internal/eval", []string{"internal/pipeline", "internal/cli", "internal/audit", "internal/report", "internal/job"}, "the evaluator runs without the job pipeline"},
	{"internal/report", []string{"internal/pipeline", "internal/cli", "internal/sandbox", "internal/eval", "internal/audit", "internal/agent"}, "reports read run directories only"},
	{"internal/audit", []string{"internal/pipeline", "internal/cli", "internal/report"}, "the audit reads run directories, it does not run jobs"},
	{"internal/trace", []string{"internal/sandbox", "internal/pipeline", "internal/cli", "internal/eval", "internal/audit", "internal/report"}, "trace decoding is pure parsing"},
	{"internal/agent", []string{"internal/pipeline", "internal/cli", "internal/eval", "internal/audit", "internal/report"}, "scaffolds build commands, they do not run jobs"},
	{"internal/registry", []string{"internal/"}, "the registry is data"},
	{"internal/monitor", []string{"internal/pipeline", "internal/cli", "internal/job", "internal/sandbox", "internal/agent", "internal/eval", "internal/audit", "internal/report", "internal/trace"}, "the monitor samples the machine, it knows nothing of jobs"},
	{"internal/gateway", []string{"internal/pipeline", "internal/cli", "internal/sandbox", "internal/agent", "internal/eval", "internal/audit", "internal/report", "internal/job"}, "the gateway is a library of routes and logs: it knows no jobs, sandboxes or agents (the audit imports it to read its logs)"},
	{"internal/safeio", []string{"internal/"}, "safe opening of untrusted files depends on nothing"},
	{"internal/jsonpos", []string{"internal/"}, "JSON error positions depend on nothing"},
	{"internal/pinned", []string{"internal/"}, "pinned upstream files are fetched and verified without the rest of ptb"},
	{"internal/sandbox/relay", []string{"internal/"}, "the relay is the only channel out of a sandbox and trusts nothing"},
	{"internal/campaign", []string{"internal/cli", "internal/pipeline", "internal/sandbox", "internal/agent", "internal/eval", "internal/audit"}, "a campaign submits and watches `ptb run` jobs and reads their run directories; it never runs a stage itself"},
	{"internal/fsutil", []string{"internal/"}, "atomic writes and hashing depend on nothing"},
	{"internal/eval", []string{"internal/rundir"}, "the evaluator writes its own output directory (ptb eval --out), not a run directory; atomic writes come from internal/fsutil"},
	{"internal/agent/session", []string{"internal/job", "internal/rundir", "internal/trace", "internal/gateway", "internal/sandbox/bwrap", "internal/sandbox/none", "internal/agent/claude", "internal/agent/codex", "internal/agent/gemini", "internal/agent/opencode", "internal/agent/scripted"}, "the session launcher sees backends, scaffolds and gateways only as interfaces, and knows nothing of jobs, run directories or traces"},
	{"internal/agentinfo", []string{"internal/"}, "what ptb knows about agents by name is data the adapters register; job, trace, report and campaign read it without importing an adapter"},
	{"internal/runevents", []string{"internal/"}, "the run event format depends on nothing"},
	{"internal/jobrun", []string{"internal/cli"}, "the run's wiring is a library the commands call; it reads no flags and no environment"},
	{"internal/sandbox/sandboxtest", []string{"internal/sandbox/bwrap", "internal/sandbox/none", "internal/sandbox/sandboxfake"}, "the contract suite takes a backend constructor: it imports no backend"},
}

func moduleRoot(t *testing.T) string {
	d, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		p := filepath.Dir(d)
		if p == d {
			t.Fatal("go.mod not found")
		}
		d = p
	}
}

// imports maps each package directory (relative to the root) to the module
// packages its non-test files import.
func imports(t *testing.T, root string) map[string][]string {
	out := map[string][]string{}
	fset := token.NewFileSet()
	goFiles(root, func(p, rel string) {
		if strings.HasSuffix(p, "_test.go") {
			return
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			return
		}
		for _, im := range f.Imports {
			path := strings.Trim(im.Path.Value, `"`)
			if strings.HasPrefix(path, module) {
				out[rel] = append(out[rel], strings.TrimPrefix(path, module))
			}
		}
	})
	return out
}

// goFiles calls fn for each Go file under root (hidden directories,
// testdata and node_modules left out) with its path and its package
// directory relative to root, slash-separated.
func goFiles(root string, fn func(p, rel string)) {
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") && p != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(p))
		fn(p, filepath.ToSlash(rel))
		return nil
	})
}

func under(pkg, prefix string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	return pkg == prefix || strings.HasPrefix(pkg, prefix+"/")
}

func TestImportRules(t *testing.T) {
	all := imports(t, moduleRoot(t))
	if len(all) < 10 {
		t.Fatalf("found only %d packages; is the walk broken?", len(all))
	}
	var pkgs []string
	for p := range all {
		pkgs = append(pkgs, p)
	}
	slices.Sort(pkgs)
	for _, pkg := range pkgs {
		for _, r := range rules {
			if !under(pkg, r.pkg) {
				continue
			}
			for _, im := range all[pkg] {
				for _, f := range r.forbid {
					if under(im, f) && !under(im, pkg) {
						t.Errorf("%s imports %s: %s (docs/ARCHITECTURE.md)", pkg, im, r.why)
					}
				}
			}
		}
		// Only cmd/ptb imports the command tree.
		for _, im := range all[pkg] {
			if under(im, "internal/cli") && pkg != "cmd/ptb" && !under(pkg, "internal/cli") {
				t.Errorf("%s imports internal/cli: only cmd/ptb may", pkg)
			}
		}
	}
}

// The rules must bite: a forbidden edge is reported.
func TestUnderMatchesPrefixesOnly(t *testing.T) {
	cases := []struct {
		pkg, prefix string
		want        bool
	}{
		{"internal/sandbox/bwrap", "internal/sandbox", true},
		{"internal/sandbox", "internal/sandbox", true},
		{"internal/sandboxes", "internal/sandbox", false},
		{"internal/evaluation", "internal/eval", false},
		{"internal/result", "internal/", true},
	}
	for _, c := range cases {
		if got := under(c.pkg, c.prefix); got != c.want {
			t.Errorf("under(%q, %q) = %v, want %v", c.pkg, c.prefix, got, c.want)
		}
	}
}

// rundirMayImport is all internal/rundir may import: it describes the run
// directory's files with the record's own types (result), the sandbox's
// handle (sandbox, the interface package only) and writes them with fsutil.
var rundirMayImport = []string{"internal/fsutil", "internal/result", "internal/sandbox"}

func TestRundirImports(t *testing.T) {
	all := imports(t, moduleRoot(t))
	for pkg, ims := range all {
		if !under(pkg, "internal/rundir") {
			continue
		}
		for _, im := range ims {
			if !slices.Contains(rundirMayImport, im) && !under(im, pkg) {
				t.Errorf("%s imports %s: the run directory layout depends only on %v (docs/ARCHITECTURE.md)", pkg, im, rundirMayImport)
			}
		}
	}
}

// adapterPackages are the concrete agent CLI adapters: each registers
// itself (agent.Register) and is found by name.
var adapterPackages = []string{"internal/agent/claude", "internal/agent/codex", "internal/agent/gemini", "internal/agent/opencode"}

// Only internal/agent/agents links the CLI adapters: everything else finds
// an agent by name (agent.New, agentinfo.Lookup), so that adding a CLI
// touches its own package, one line in agents and one registry entry.
func TestAdaptersFoundByName(t *testing.T) {
	all := imports(t, moduleRoot(t))
	for pkg, ims := range all {
		for _, im := range ims {
			for _, a := range adapterPackages {
				if under(im, a) && pkg != "internal/agent/agents" && !under(pkg, a) {
					t.Errorf("%s imports %s: adapters register themselves and are found by name (agent.New, agentinfo.Lookup); only internal/agent/agents imports them (docs/ARCHITECTURE.md)", pkg, im)
				}
			}
		}
	}
}

// The fake sandbox backend is for tests only: no command, job file or
// library code can reach it.
func TestSandboxFakeOnlyInTests(t *testing.T) {
	for pkg, ims := range imports(t, moduleRoot(t)) {
		for _, im := range ims {
			if under(im, "internal/sandbox/sandboxfake") && !under(pkg, "internal/sandbox/sandboxfake") {
				t.Errorf("%s imports %s outside its tests: the fake backend is never selectable (docs/ARCHITECTURE.md)", pkg, im)
			}
		}
	}
}
