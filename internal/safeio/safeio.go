// Package safeio opens files that someone else (the agent) may have made,
// without trusting them: no link is followed, nothing but a regular file is
// opened for reading, opening never blocks (a FIFO planted where a model file
// should be is refused, not waited on), and reads can be bounded by the
// blocks a file really occupies, so a sparse file's holes are never read.
//
// It imports nothing from internal/: every package that touches agent files
// may use it.
package safeio

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// ErrNotRegular is wrapped by the error Open returns for anything that is
// not a regular file (symlink, FIFO, device, socket, directory).
var ErrNotRegular = errors.New("not a regular file")

// ErrNotDir is wrapped by the error OpenDir returns for anything that is not
// a directory (a symlink to a directory included).
var ErrNotDir = errors.New("not a directory")

// Open opens path for reading with O_RDONLY|O_NONBLOCK|O_NOFOLLOW|O_CLOEXEC,
// fstat()s the open file and refuses it unless it is a regular file. The
// returned FileInfo describes the file opened, not whatever the path names
// afterwards. The error names the path and what it found there; it wraps
// ErrNotRegular for a non-regular file, and the open error otherwise
// (fs.ErrNotExist when nothing is there).
//
// O_NONBLOCK keeps the open itself from blocking on a FIFO with no writer;
// the fstat then refuses the FIFO. On a regular file O_NONBLOCK has no
// effect on reads.
func Open(path string) (*os.File, os.FileInfo, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, nil, fmt.Errorf("open %s: is a symlink: %w", path, ErrNotRegular)
		}
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("open %s: is a %s: %w", path, TypeName(fi.Mode()), ErrNotRegular)
	}
	return f, fi, nil
}

// OpenDir opens a directory without following a link at path itself
// (O_DIRECTORY|O_NOFOLLOW). Links further up the path are the caller's
// business: walk from a root the harness owns.
func OpenDir(path string) (*os.File, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.ENOTDIR) {
			kind := "non-directory"
			if fi, lerr := os.Lstat(path); lerr == nil {
				kind = TypeName(fi.Mode())
			}
			return nil, fmt.Errorf("open %s: is a %s: %w", path, kind, ErrNotDir)
		}
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// ReadFile reads a whole regular file opened with Open, refusing it if more
// than max bytes would be read. It never reads more than max+1 bytes.
func ReadFile(path string, max int64) ([]byte, error) {
	f, fi, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi.Size() > max {
		return nil, fmt.Errorf("read %s: %d bytes, over the limit of %d", path, fi.Size(), max)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("read %s: grew past the limit of %d bytes while reading", path, max)
	}
	return b, nil
}

// Allocated returns the bytes the file occupies on disk (st_blocks*512).
// For a file whose stat has no block count it returns the apparent size.
func Allocated(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fi.Size()
}

// ReadBound is how many bytes a reader of the file should be willing to
// read: the apparent size, but never more than the allocated bytes plus one
// filesystem block of slack (small files and inline data may report fewer
// blocks than bytes). A sparse file's holes are therefore not read: a reader
// that stops at ReadBound reads about what is really on disk.
func ReadBound(fi os.FileInfo) int64 {
	size := fi.Size()
	bound := Allocated(fi) + slack(fi)
	if size < bound {
		return size
	}
	return bound
}

// Sparse reports whether the file's apparent size exceeds what it occupies
// on disk by more than one block of slack: it has holes.
func Sparse(fi os.FileInfo) bool {
	return fi.Size() > Allocated(fi)+slack(fi)
}

func slack(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Blksize > 0 {
		return int64(st.Blksize)
	}
	return 4096
}

// BoundedReader returns a reader over f that yields at most ReadBound(fi)
// bytes.
func BoundedReader(f *os.File, fi os.FileInfo) *io.LimitedReader {
	return &io.LimitedReader{R: f, N: ReadBound(fi)}
}

// FileID identifies a file on its filesystem: (device, inode). Two paths
// with the same FileID are hard links to one file.
type FileID struct {
	Dev, Ino uint64
}

// ID returns the file's (device, inode), and false when the FileInfo has no
// stat_t (not from a local file).
func ID(fi os.FileInfo) (FileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return FileID{}, false
	}
	return FileID{Dev: uint64(st.Dev), Ino: uint64(st.Ino)}, true
}

// TypeName names a file mode's type for error messages: "regular file",
// "symlink", "FIFO", "socket", "device", "directory".
func TypeName(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "regular file"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m.IsDir():
		return "directory"
	default:
		return "irregular file"
	}
}

// WalkFunc is called by Walk for each entry under the root, with its path,
// its Lstat information and the error, if any, from reading the directory.
type WalkFunc func(path string, fi os.FileInfo, err error) error

// Walk visits the tree under root in lexical order without following any
// link: a symlink is reported to fn as a symlink (Lstat) and never entered.
// The root itself must be a directory and not a link. Returning
// filepath.SkipDir from fn for a directory skips it; any other error stops
// the walk and is returned. It wraps filepath.Walk, which uses Lstat.
func Walk(root string, fn WalkFunc) error {
	fi, err := os.Lstat(root)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("walk %s: is a %s: %w", root, TypeName(fi.Mode()), ErrNotDir)
	}
	return filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		return fn(p, fi, err)
	})
}

// RemoveAll removes path and everything under it, even directories that
// whoever wrote them made unreadable or unwritable (a sandboxed program or
// server running as the harness's own uid can): directories under path are
// made accessible again, links never followed, and the removal retried.
func RemoveAll(path string) error {
	err := os.RemoveAll(path)
	for range 8 {
		if err == nil {
			return nil
		}
		_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, werr error) error {
			if d != nil && d.IsDir() {
				_ = os.Chmod(p, 0o700)
			}
			return nil
		})
		err = os.RemoveAll(path)
	}
	return err
}
