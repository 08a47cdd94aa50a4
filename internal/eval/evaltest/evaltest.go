// Package evaltest holds test helpers shared by the eval packages: where the
// shared fixtures are, and a sandbox to run HumanEval programs in.
package evaltest

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ptb-dev/ptb/internal/sharedtest"

	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/bwrap"
	"github.com/ptb-dev/ptb/internal/sandbox/none"
)

// Shared returns the shared fixture directory (see sharedtest).
func Shared(t testing.TB) string { return sharedtest.Dir(t) }

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
