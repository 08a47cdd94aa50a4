package audit

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ptb-dev/ptb/internal/sharedtest"
)

// sharedDatasets returns shared/datasets, skipping the test if absent.
func sharedDatasets(t testing.TB) string {
	t.Helper()
	sharedtest.Path(t, "datasets", "gsm8k", "test.jsonl")
	return filepath.Join(sharedtest.Dir(t), "datasets")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fix != nil {
		os.RemoveAll(filepath.Dir(fix.cache))
	}
	os.Exit(code)
}
