package archtest

import (
	"os"
	"path/filepath"
	"testing"
)

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
	{"internal/eval/chat", "internal/", nil,
		"the chat-completions client of the eval client and the judge depends on nothing"},
}

func TestNarrowImports(t *testing.T) {
	root := moduleRoot(t)
	all := imports(t, root)
	for _, r := range narrow {
		if _, err := os.Stat(filepath.Join(root, r.pkg)); err != nil {
			t.Errorf("rule for %s: %v: is the rule stale?", r.pkg, err)
		}
		for pkg, ims := range all {
			if !under(pkg, r.pkg) {
				continue
			}
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
	}
}
