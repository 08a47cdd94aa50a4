package report

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
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
	var files []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, nil, fmt.Errorf("find runs: %w", err)
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		if err := findResults(ctx, p, &files); err != nil {
			return nil, nil, fmt.Errorf("find runs under %s: %w", p, err)
		}
	}
	sort.Strings(files)
	files = dedupe(files)

	runs := make([]Run, len(files))
	errs := make([]error, len(files))
	var wg sync.WaitGroup
	next := make(chan int)
	workers := min(runtime.GOMAXPROCS(0)*2, len(files))
	for range workers {
		wg.Go(func() {
			for i := range next {
				r, err := result.Read(files[i])
				runs[i] = Run{Dir: filepath.Dir(files[i]), Result: r}
				errs[i] = err
			}
		})
	}
	for i := range files {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	var warnings []string
	out := runs[:0]
	for i, r := range runs {
		if errs[i] != nil {
			warnings = append(warnings, fmt.Sprintf("skipped %s: %v", files[i], errs[i]))
			continue
		}
		out = append(out, r)
	}
	return out, warnings, nil
}

func findResults(ctx context.Context, dir string, files *[]string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() == rundir.ResultFile && e.Type().IsRegular() {
			*files = append(*files, filepath.Join(dir, e.Name()))
			return nil
		}
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if err := findResults(ctx, filepath.Join(dir, e.Name()), files); err != nil {
			return err
		}
	}
	return nil
}

func dedupe(sorted []string) []string {
	out := sorted[:0]
	for i, s := range sorted {
		if i == 0 || s != sorted[i-1] {
			out = append(out, s)
		}
	}
	return out
}
