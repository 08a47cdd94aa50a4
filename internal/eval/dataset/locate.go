package dataset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// DataDirEnv names the environment variable that gives a local data root
// when no --data-dir flag does.
const DataDirEnv = "PTB_DATA_DIR"

// Layered is the one data-location rule every command follows. A file is
// read from the first layer that has it:
//
//  1. Dir: the --data-dir flag, else $PTB_DATA_DIR (a directory laid out
//     like shared/datasets);
//  2. the dataset cache that `ptb data pull` fills (never downloads);
//  3. the files shipped in the ptb binary (shipped/);
//  4. a download from the hub into the cache (unless Offline).
//
// A layer that lacks the file (an error wrapping os.ErrNotExist) passes it
// on; any other error (a bad digest, an unreadable file) stops the search.
type Layered struct {
	Dir     string // "" = no local data root
	Hub     *Hub   // cache and download
	Offline bool   // never download
}

// Locate returns the layered source for a --data-dir flag value (""
// = $PTB_DATA_DIR), a cache directory ("" = DefaultCacheDir) and the
// --offline flag.
func Locate(flagDir, cacheDir string, offline bool) *Layered {
	dir := flagDir
	if dir == "" {
		dir = os.Getenv(DataDirEnv)
	}
	hub := NewHub(cacheDir, offline)
	return &Layered{Dir: dir, Hub: hub, Offline: hub.Offline}
}

// Open implements Source.
func (l *Layered) Open(ctx context.Context, f File) (io.ReadCloser, string, error) {
	var tried []string
	if l.Dir != "" {
		rc, name, err := Dir(l.Dir).Open(ctx, f)
		if err == nil || !errors.Is(err, os.ErrNotExist) {
			return rc, name, err
		}
		tried = append(tried, "data dir "+l.Dir)
	}
	if l.Hub != nil && (f.Repo != "" || f.URL != "") {
		cached := *l.Hub
		cached.Offline = true
		rc, name, err := cached.Open(ctx, f)
		if err == nil || !errors.Is(err, os.ErrNotExist) {
			return rc, name, err
		}
		tried = append(tried, "cache "+l.Hub.CacheDir)
	}
	if f.Shipped != "" {
		return Shipped{}.Open(ctx, f)
	}
	tried = append(tried, "files shipped with ptb")
	if l.Hub != nil && !l.Offline && (f.Repo != "" || f.URL != "") {
		return l.Hub.Open(ctx, f)
	}
	hint := "run `ptb data pull` where the hub is reachable, or pass --data-dir DIR (laid out like shared/datasets) or set " + DataDirEnv
	if f.Repo == "" && f.URL == "" {
		hint = "pass --data-dir DIR with " + f.Local + " in it, or set " + DataDirEnv
	}
	return nil, "", fmt.Errorf("open %s: not found in %v, and downloads are off; %s: %w", f.Name(), tried, hint, os.ErrNotExist)
}

// Where says which layer serves f, without reading it: a path, or
// "shipped with ptb", or "hub download".
func (l *Layered) Where(ctx context.Context, f File) string {
	rc, name, err := l.Open(ctx, f)
	if err != nil {
		return "not found"
	}
	rc.Close()
	if f.Shipped != "" && name == f.Shipped {
		return "shipped with ptb (" + f.Shipped + ")"
	}
	return name
}
