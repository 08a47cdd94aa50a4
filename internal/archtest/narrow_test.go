package archtest

import "testing"

// narrow: where a package may import from under a prefix at all, only the
// listed packages are allowed (in non-test files), so a seam stays narrow.
var narrow = []struct {
	pkg, prefix string
	allow       []string
	why         string
}{
	{"internal/audit", "internal/eval", []string{"internal/eval/task", "internal/eval/dataset"},
		"the audit takes test items from the tasks and reads data as evaluate does; it never imports the evaluator (model facts come from internal/modelinfo)"},
	{"internal/modelinfo", "internal/", []string{"internal/safeio", "internal/jsonpos"},
		"model facts are read from a model directory alone"},
}

func TestNarrowImports(t *testing.T) {
	all := imports(t, moduleRoot(t))
	for _, r := range narrow {
		found := false
		for pkg, ims := range all {
			if !under(pkg, r.pkg) {
				continue
			}
			found = true
			for _, im := range ims {
				if !under(im, r.prefix) || under(im, pkg) {
					continue
				}
				ok := false
				for _, a := range r.allow {
					ok = ok || im == a
				}
				if !ok {
					t.Errorf("%s imports %s: %s (docs/ARCHITECTURE.md)", pkg, im, r.why)
				}
			}
		}
		if !found {
			t.Errorf("no package %s: is the rule stale?", r.pkg)
		}
	}
}
