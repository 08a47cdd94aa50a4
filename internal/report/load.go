package report

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
	"golang.org/x/sys/unix"
)

// Run is one run directory and its result.json.
type Run struct {
	Dir    string // the run directory, as found under the paths given
	Result *result.Result
}

// LoadRuns finds every result.json under paths (files or directories, walked
// recursively; a directory holding result.json is a run directory and is not
// descended further) and reads them in parallel. A result.json that cannot be
// read or has another schema is skipped with a warning; a path that does not
// exist is an error. Runs come back sorted by directory.
func LoadRuns(ctx context.Context, paths []string) ([]Run, []string, error) {
	l := &loader{ctx: ctx, sem: make(chan struct{}, runtime.GOMAXPROCS(0)*2)}
	l.states.New = func() any { return &readState{buf: make([]byte, 0, 64<<10)} }
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, nil, fmt.Errorf("find runs: %w", err)
		}
		if !fi.IsDir() {
			r, err := result.Read(p)
			l.add(loaded{file: p, res: r, err: err})
			continue
		}
		var wg sync.WaitGroup
		l.walk(&wg, p)
		wg.Wait()
		if len(l.walkErrs) > 0 {
			// The error the sequential walk would have met first.
			e := slices.MinFunc(l.walkErrs, func(a, b walkErr) int { return strings.Compare(a.dir, b.dir) })
			return nil, nil, fmt.Errorf("find runs under %s: %w", p, e.err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	found := l.found
	slices.SortFunc(found, func(a, b loaded) int { return strings.Compare(a.file, b.file) })
	found = slices.CompactFunc(found, func(a, b loaded) bool { return a.file == b.file })
	var warnings []string
	out := make([]Run, 0, len(found))
	for _, f := range found {
		if f.err != nil {
			warnings = append(warnings, fmt.Sprintf("skipped %s: %v", f.file, f.err))
			continue
		}
		out = append(out, Run{Dir: filepath.Dir(f.file), Result: f.res})
	}
	return out, warnings, nil
}

// loaded is one result.json read (or not).
type loaded struct {
	file string
	res  *result.Result
	err  error
}

type walkErr struct {
	dir string
	err error
}

// loader walks directories on a bounded number of goroutines, reading each
// run directory's result.json as it finds it.
type loader struct {
	ctx      context.Context
	sem      chan struct{} // a slot per extra goroutine
	mu       sync.Mutex
	found    []loaded
	walkErrs []walkErr
	states   sync.Pool // of *readState, one per goroutine at a time
}

// readState is what a goroutine of the loader reuses from file to file: its
// read buffer and its interned strings (decodeResultInterned).
type readState struct {
	buf  []byte
	strs interner
}

func (l *loader) add(f loaded) {
	l.mu.Lock()
	l.found = append(l.found, f)
	l.mu.Unlock()
}

func (l *loader) fail(dir string, err error) {
	l.mu.Lock()
	l.walkErrs = append(l.walkErrs, walkErr{dir, err})
	l.mu.Unlock()
}

// walk visits dir, a path given: a run directory is read, any other is
// listed (see list).
func (l *loader) walk(wg *sync.WaitGroup, dir string) {
	if err := l.ctx.Err(); err != nil {
		l.fail(dir, err)
		return
	}
	file := filepath.Join(dir, rundir.ResultFile)
	// The common case, a run directory, costs an open, a stat and the
	// reads: no listing.
	if r, ok := l.readRegular(unix.AT_FDCWD, file, file); ok {
		l.add(r)
		return
	}
	fd, err := openDir(unix.AT_FDCWD, dir, dir)
	if err != nil {
		l.fail(dir, err)
		return
	}
	l.list(wg, fd, dir)
}

// list lists the directory open as fd (dir; list closes fd). A directory
// holding a result.json is a run directory, read; otherwise its
// subdirectories (but hidden ones) are visited: each is first tried as a
// run directory and, when it is none, opened and listed, on a new
// goroutine while a slot is free, else on this one. Paths are opened
// relative to their parent's descriptor: the kernel then resolves one or
// two names instead of the whole path, which was a third of the
// loader's system time.
func (l *loader) list(wg *sync.WaitGroup, fd int, dir string) {
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	entries, err := f.ReadDir(-1)
	if err != nil {
		l.fail(dir, err)
		return
	}
	for _, e := range entries {
		if e.Name() == rundir.ResultFile && e.Type().IsRegular() {
			file := filepath.Join(dir, rundir.ResultFile)
			r, err := result.Read(file)
			l.add(loaded{file: file, res: r, err: err})
			return
		}
	}
	// Below a clean directory (every one but perhaps a path given),
	// joining a listed name, which holds no separator and is not "." or
	// "..", is concatenation: two allocations a run instead of three,
	// and no Clean (TestLoadRunsPathsAsJoin).
	plain := dir != "" && dir != "." && dir != string(filepath.Separator) && filepath.Clean(dir) == dir
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		rel := e.Name() + "/" + rundir.ResultFile
		var sub, file string
		if plain {
			file = dir + string(filepath.Separator) + rel
			sub = file[:len(dir)+1+len(e.Name())]
		} else {
			sub = filepath.Join(dir, e.Name())
			file = filepath.Join(sub, rundir.ResultFile)
		}
		if err := l.ctx.Err(); err != nil {
			l.fail(sub, err)
			continue
		}
		if r, ok := l.readRegular(fd, rel, file); ok {
			l.add(r)
			continue
		}
		subfd, err := openDir(fd, e.Name(), sub)
		if err != nil {
			l.fail(sub, err)
			continue
		}
		select {
		case l.sem <- struct{}{}:
			wg.Add(1)
			go func() {
				defer func() { <-l.sem; wg.Done() }()
				l.list(wg, subfd, sub)
			}()
		default:
			l.list(wg, subfd, sub)
		}
	}
}

// openDir opens the directory name relative to dirfd, not following a
// symbolic link (the walk never follows one below the paths given); an
// error reads as os.Open's of path.
func openDir(dirfd int, name, path string) (int, error) {
	for {
		fd, err := syscall.Openat(dirfd, name, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
		switch {
		case err == nil:
			return fd, nil
		case !errors.Is(err, syscall.EINTR):
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
	}
}

// readRegular reads and decodes file when it is a regular file (not a
// symbolic link, FIFO, socket or directory), with raw system calls: the
// loader's cost is in them. ok is false when file is anything else or
// cannot be opened; the caller then lists the directory as before. An error
// after that comes from result.Read, so that warnings read the same
// whichever way a file was read.
func (l *loader) readRegular(dirfd int, name, file string) (loaded, bool) {
	fd, err := openNoFollow(dirfd, name)
	if err != nil {
		return loaded{}, false
	}
	st := l.states.Get().(*readState)
	defer l.states.Put(st)
	data, regular, err := readAll(fd, st.buf[:0])
	syscall.Close(fd)
	if !regular {
		return loaded{}, false
	}
	if err == nil {
		st.buf = data
		// Both decoders copy what they keep, so the buffer can be reused.
		var r result.Result
		ok := decodeResultInterned(data, &r, &st.strs)
		if !ok {
			r = result.Result{}
			ok = json.Unmarshal(data, &r) == nil
		}
		if ok && r.Schema == result.Schema {
			return loaded{file: file, res: &r}, true
		}
	}
	r, err := result.Read(file)
	return loaded{file: file, res: r, err: err}, true
}

// openNoFollow opens name relative to dirfd without following a symbolic
// link in its last element.
func openNoFollow(dirfd int, name string) (int, error) {
	for {
		// O_NONBLOCK: a FIFO in the way must not block the walk.
		fd, err := syscall.Openat(dirfd, name, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
		if !errors.Is(err, syscall.EINTR) {
			return fd, err
		}
	}
}

// readAll reads an open file, appending to buf, if it is a regular file:
// up to the size fstat gave and on until a read comes back short (a
// regular file's read is short only at its end), so that a file that grew
// is read whole and one of the size stated costs one read.
func readAll(fd int, buf []byte) (data []byte, regular bool, err error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, false, err
	}
	data = slices.Grow(buf[:0], int(st.Size)+512)
	for {
		if len(data) == cap(data) {
			data = slices.Grow(data, cap(data))
		}
		room := cap(data) - len(data)
		n, err := syscall.Read(fd, data[len(data):cap(data)])
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case err != nil:
			return nil, true, err
		}
		data = data[:len(data)+n]
		if n == 0 || (n < room && int64(len(data)) >= st.Size) {
			return data, true, nil
		}
	}
}
