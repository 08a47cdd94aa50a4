// Package sharedtest finds the project's shared fixtures for tests: the
// shared/ directory beside the module root (where CI checks it out), or
// $PTB_SHARED. Tests that need it skip, with a message, when it is absent.
package sharedtest

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the shared directory, skipping t when it cannot be found.
func Dir(t testing.TB) string {
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
	if _, err := os.Stat(s); err != nil {
		t.Skipf("shared fixtures not found at %s (set PTB_SHARED): %v", s, err)
	}
	abs, err := filepath.Abs(s)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// Path returns Dir joined with elem, skipping t when that path is absent.
func Path(t testing.TB, elem ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{Dir(t)}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s not found (set PTB_SHARED to the shared/ directory): %v", p, err)
	}
	return p
}
