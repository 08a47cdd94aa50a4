package archtest

import (
	"slices"
	"sort"
	"testing"
)

// importers: a package (by path prefix) that only the listed packages may
// import, in non-test files.
var importers = []struct {
	pkg     string
	allowed []string
	why     string
}{
	{"internal/jobrun", []string{"internal/cli"}, "the run's wiring is called by the commands only; the engine below it sees its seams as interfaces"},
}

func TestOnlyAllowedImporters(t *testing.T) {
	all := imports(t, moduleRoot(t))
	var pkgs []string
	for p := range all {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	for _, r := range importers {
		n := 0
		for _, pkg := range pkgs {
			for _, im := range all[pkg] {
				if !under(im, r.pkg) || under(pkg, r.pkg) {
					continue
				}
				n++
				if !slices.ContainsFunc(r.allowed, func(a string) bool { return under(pkg, a) }) {
					t.Errorf("%s imports %s: only %v may; %s (docs/ARCHITECTURE.md)", pkg, im, r.allowed, r.why)
				}
			}
		}
		if n == 0 {
			t.Errorf("nothing imports %s: is the walk broken, or the rule stale?", r.pkg)
		}
	}
}
