package safeio

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestOpenRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "reg")
	if err := os.WriteFile(reg, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "model.safetensors")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(reg, link); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	tests := []struct {
		name, path, want string
	}{
		{"fifo", fifo, "FIFO"},
		{"symlink", link, "symlink"},
		{"socket", sock, ""}, // open(2) on a socket fails with ENXIO: refused either way
		{"char device", "/dev/null", "character device"},
		{"directory", dir, "directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				f, _, err := Open(tt.path)
				if f != nil {
					f.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil {
					t.Fatalf("Open(%s) = nil error, want refusal", tt.path)
				}
				if !strings.Contains(err.Error(), tt.path) {
					t.Errorf("error %q does not name the path", err)
				}
				if tt.want != "" {
					if !errors.Is(err, ErrNotRegular) {
						t.Errorf("error %q does not wrap ErrNotRegular", err)
					}
					if !strings.Contains(err.Error(), tt.want) {
						t.Errorf("error %q does not name the type %q", err, tt.want)
					}
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("Open(%s) blocked", tt.path)
			}
		})
	}

	f, fi, err := Open(reg)
	if err != nil {
		t.Fatalf("Open(regular): %v", err)
	}
	defer f.Close()
	b, _ := io.ReadAll(BoundedReader(f, fi))
	if string(b) != "hello" {
		t.Errorf("read %q, want hello", b)
	}
}

func TestReadBoundSparse(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sparse")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("head")); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	g, fi, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if fi.Size() != 1<<30 {
		t.Fatalf("size %d", fi.Size())
	}
	if !Sparse(fi) {
		t.Skipf("filesystem allocated %d bytes for a 1 GiB file with a 4-byte head; no sparse files here", Allocated(fi))
	}
	if got := ReadBound(fi); got > 1<<20 {
		t.Errorf("ReadBound = %d, want at most 1 MiB for a file with 4 written bytes", got)
	}
	n, _ := io.Copy(io.Discard, BoundedReader(g, fi))
	if n > 1<<20 {
		t.Errorf("read %d bytes through the bounded reader", n)
	}
}

func TestReadBoundDense(t *testing.T) {
	p := filepath.Join(t.TempDir(), "dense")
	data := []byte(strings.Repeat("x", 100000))
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, fi, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if Sparse(fi) {
		t.Errorf("dense file reported sparse: size %d allocated %d", fi.Size(), Allocated(fi))
	}
	if got := ReadBound(fi); got != int64(len(data)) {
		t.Errorf("ReadBound = %d, want %d", got, len(data))
	}
}

func TestReadFileLimit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("0123456789"), 0o644)
	if _, err := ReadFile(p, 5); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("ReadFile over limit: err = %v, want a limit error", err)
	}
	b, err := ReadFile(p, 10)
	if err != nil || string(b) != "0123456789" {
		t.Errorf("ReadFile = %q, %v", b, err)
	}
}

func TestOpenDirAndWalkDoNotFollowLinks(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o644)
	os.Mkdir(filepath.Join(root, "d"), 0o755)
	os.WriteFile(filepath.Join(root, "d", "a"), []byte("a"), 0o644)
	os.Symlink(outside, filepath.Join(root, "d", "out"))

	if _, err := OpenDir(filepath.Join(root, "d", "out")); !errors.Is(err, ErrNotDir) {
		t.Errorf("OpenDir(symlink) err = %v, want ErrNotDir", err)
	}
	d, err := OpenDir(filepath.Join(root, "d"))
	if err != nil {
		t.Fatal(err)
	}
	d.Close()

	var seen []string
	err = Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		seen = append(seen, rel+":"+TypeName(fi.Mode()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(seen, ",")
	want := ".:directory,d:directory,d/a:regular file,d/out:symlink"
	if got != want {
		t.Errorf("walk = %s, want %s", got, want)
	}
	if err := Walk(filepath.Join(root, "d", "out"), func(string, os.FileInfo, error) error { return nil }); !errors.Is(err, ErrNotDir) {
		t.Errorf("Walk(symlink root) err = %v, want ErrNotDir", err)
	}
}

func TestIDHardLinks(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	os.WriteFile(a, []byte("x"), 0o644)
	os.Link(a, filepath.Join(dir, "b"))
	os.WriteFile(filepath.Join(dir, "c"), []byte("x"), 0o644)
	id := func(p string) FileID {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		i, ok := ID(fi)
		if !ok {
			t.Fatal("no stat_t")
		}
		return i
	}
	if id(a) != id(filepath.Join(dir, "b")) {
		t.Error("hard links have different IDs")
	}
	if id(a) == id(filepath.Join(dir, "c")) {
		t.Error("distinct files share an ID")
	}
}

// A tree made unreadable and unwritable by whoever wrote it (a sandboxed
// program as the harness's uid) still goes; a link out of it is not
// followed.
func TestRemoveAllUnreadableTree(t *testing.T) {
	root := t.TempDir()
	outside := filepath.Join(root, "outside")
	os.MkdirAll(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "keep"), []byte("x"), 0o644)
	dir := filepath.Join(root, "dir")
	os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755)
	os.WriteFile(filepath.Join(dir, "a", "b", "f"), []byte("x"), 0o644)
	os.Symlink(outside, filepath.Join(dir, "a", "link"))
	os.Chmod(filepath.Join(dir, "a", "b"), 0o000)
	os.Chmod(filepath.Join(dir, "a"), 0o500)
	if err := RemoveAll(dir); err != nil {
		t.Fatalf("RemoveAll: %v", err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Errorf("%s is still there: %v", dir, err)
	}
	if _, err := os.Stat(filepath.Join(outside, "keep")); err != nil {
		t.Errorf("RemoveAll followed a link out of the tree: %v", err)
	}
}
