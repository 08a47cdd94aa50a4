package audit

import (
	"os"
	"path/filepath"
	"testing"
)

// sharedDatasets returns the shared datasets directory (../shared/datasets
// from the module root, or $PTB_SHARED/datasets), skipping the test if absent.
func sharedDatasets(t testing.TB) string {
	t.Helper()
	root := os.Getenv("PTB_SHARED")
	if root == "" {
		root = filepath.Join("..", "..", "..", "shared")
	}
	d := filepath.Join(root, "datasets")
	if _, err := os.Stat(filepath.Join(d, "gsm8k", "test.jsonl")); err != nil {
		t.Skipf("shared datasets not found at %s (set PTB_SHARED): %v", d, err)
	}
	return d
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fix != nil {
		os.RemoveAll(filepath.Dir(fix.cache))
	}
	os.Exit(code)
}
