package fsutil

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestWriteAtomic: the content lands whole with the mode asked for; a write
// that fails leaves the old file as it was and no temporary file behind.
func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "report.html")
	big := strings.Repeat("0123456789abcdef", 20000) // past the 64 KiB buffer
	if err := WriteAtomic(path, 0o640, func(w io.Writer) error {
		_, err := io.WriteString(w, big)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != big {
		t.Fatalf("read %d bytes (%v), want %d", len(got), err, len(big))
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	boom := errors.New("render failed")
	err = WriteAtomic(path, 0o644, func(w io.Writer) error {
		io.WriteString(w, "partial")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("error %v, want the writer's", err)
	}
	if got, _ := os.ReadFile(path); string(got) != big {
		t.Errorf("a failed write changed the file (%d bytes)", len(got))
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only report.html", len(entries))
	}
}

// TestHashFile: a regular file is hashed; anything an agent could plant in
// its place (symlink, FIFO, directory) is refused with ErrNotRegular
// without being followed or opened for reading (a FIFO would block).
func TestHashFile(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "evaluate.py")
	if err := os.WriteFile(reg, []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(reg, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, path, want string
		err              error
	}{
		{"regular", reg, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", nil},
		{"symlink to a regular file", link, "", ErrNotRegular},
		{"fifo", fifo, "", ErrNotRegular},
		{"directory", dir, "", ErrNotRegular},
		{"absent", filepath.Join(dir, "none"), "", os.ErrNotExist},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := HashFile(c.path)
			if got != c.want || !errors.Is(err, c.err) {
				t.Errorf("HashFile = %q, %v; want %q, %v", got, err, c.want, c.err)
			}
		})
	}
}

// TestWriteJSON: indented, newline-terminated, with the mode asked for; a
// value that cannot be encoded leaves the old file and names the path.
func TestWriteJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "manifest.json")
	if err := WriteJSON(path, map[string]int{"n": 1}, 0o600); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if want := "{\n  \"n\": 1\n}\n"; string(got) != want {
		t.Errorf("wrote %q, want %q", got, want)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	err := WriteJSON(path, map[string]any{"f": func() {}}, 0o600)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("error %v, want one naming %s", err, path)
	}
	if again, _ := os.ReadFile(path); string(again) != string(got) {
		t.Errorf("a failed encode changed the file to %q", again)
	}
}
