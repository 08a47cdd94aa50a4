// Package evaltest holds test helpers shared by the eval packages: where the
// shared fixtures are, and a sandbox to run HumanEval programs in.
package evaltest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/bwrap"
	"github.com/ptb-dev/ptb/internal/sandbox/none"
)

// Shared returns the shared fixture directory (PTB_SHARED, else ../shared
// beside the module root), skipping the test when it is absent.
func Shared(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("PTB_SHARED"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("module root not found")
		}
		dir = parent
	}
	s := filepath.Join(dir, "..", "shared")
	if _, err := os.Stat(filepath.Join(s, "spec", "EVAL_SPEC.md")); err != nil {
		t.Skipf("shared fixtures not found at %s (set PTB_SHARED): %v", s, err)
	}
	return s
}

// Datasets returns the shared datasets directory.
func Datasets(t testing.TB) string { return filepath.Join(Shared(t), "datasets") }

// Sandbox returns bubblewrap when it works here, else the unisolated `none`
// backend (logged). It skips when python3 is missing.
func Sandbox(t testing.TB) sandbox.Backend {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	b := bwrap.New()
	if err := b.Check(context.Background()); err == nil {
		return b
	} else {
		t.Logf("bubblewrap unavailable (%v); running programs with the none backend", err)
	}
	return none.New()
}
