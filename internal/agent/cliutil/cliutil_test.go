package cliutil

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInstallPaths(t *testing.T) {
	got := InstallPaths("/opt/npm/node_modules/.bin/gemini")
	want := []string{"/opt/npm/node_modules/.bin", "/opt/npm/node_modules"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("InstallPaths = %v, want %v", got, want)
	}
	// A link into a package: both the link's and the target's directories.
	dir := t.TempDir()
	pkg := filepath.Join(dir, "node_modules", "pkg", "bin")
	os.MkdirAll(pkg, 0o755)
	os.WriteFile(filepath.Join(pkg, "cli.js"), []byte("#!/bin/sh\n"), 0o755)
	os.MkdirAll(filepath.Join(dir, "node_modules", ".bin"), 0o755)
	link := filepath.Join(dir, "node_modules", ".bin", "cli")
	os.Symlink(filepath.Join(pkg, "cli.js"), link)
	got = InstallPaths(link)
	for _, w := range []string{filepath.Join(dir, "node_modules", ".bin"), pkg, filepath.Join(dir, "node_modules")} {
		if !strings.Contains(","+strings.Join(got, ",")+",", ","+w+",") {
			t.Errorf("InstallPaths(%s) = %v, lacks %s", link, got, w)
		}
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tool"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "data"), []byte("x"), 0o644)
	if got, err := LookPath("tool", "relative:"+dir); err != nil || got != filepath.Join(dir, "tool") {
		t.Errorf("LookPath(tool) = %q, %v", got, err)
	}
	if _, err := LookPath("data", dir); err == nil {
		t.Error("a file without the executable bit was found")
	}
	if _, err := LookPath("missing", dir); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("LookPath(missing) error = %v", err)
	}
}

// A CLI slow to print its version (gemini's bundle load on a busy machine
// took over 5 s) still gets its version read.
func TestVersionSlowCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 6 s")
	}
	bin := filepath.Join(t.TempDir(), "gemini")
	os.WriteFile(bin, []byte("#!/bin/sh\nsleep 6\necho 0.61.0\n"), 0o755)
	if got := Version(context.Background(), bin); got != "0.61.0" {
		t.Errorf("Version = %q, want 0.61.0", got)
	}
}
