package campaign

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// The campaign directory, ROOT/.campaign/NAME, holds what the engine and
// the executors keep besides the run directories:
//
//	index.jsonl   the append-only index: one Entry a line, never rewritten
//	campaign.yaml the campaign file as of the last `up`
//	<executor>/   the executor's own files (scripts, submit files, manifests, logs)
const (
	// CampaignsDir is the folder of the output root that holds campaign directories.
	CampaignsDir = ".campaign"
	IndexFile    = "index.jsonl"
	indexLock    = "index.lock"
	// maxIndexLine bounds one index line (an entry's arguments).
	maxIndexLine = 1 << 20
)

// Dir is the campaign directory of campaign name under the output root.
func Dir(root, name string) string { return filepath.Join(root, CampaignsDir, name) }

// Entry is one line of the index: a job, its run id and the cell it runs.
type Entry struct {
	Job
	// SpecHash is the sha256 of the cell's normalized job spec: an edited
	// cell that would reuse the run id is caught by comparing it.
	SpecHash string `json:"spec_hash"`
	// Args are the `ptb run` arguments of the cell, without --run-id,
	// --out and --gpus (the run id and the output root are the index's;
	// devices are assigned at run time).
	Args []string `json:"args"`
	// Kind is what exec runs: KindRun ("", `ptb run --run-id`) or KindEval
	// (a baseline: `ptb eval --out ROOT/RUN_ID ARGS...`).
	Kind string `json:"kind,omitempty"`
}

// ReadIndex reads the campaign directory's index. A missing index is
// empty. A last line cut short by a crash is ignored; any other bad line is
// an error naming it.
func ReadIndex(dir string) ([]Entry, error) {
	f, err := os.Open(filepath.Join(dir, IndexFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readIndex(f, f.Name())
}

func readIndex(r io.Reader, name string) ([]Entry, error) {
	var out []Entry
	br := bufio.NewReader(r)
	for line := 1; ; line++ {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Lines are short; a long one is read whole up to the bound.
			rest, err2 := readLong(br, b)
			b, err = rest, err2
		}
		complete := err == nil
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read %s: line %d: %w", name, line, err)
		}
		if b = bytes.TrimSpace(b); len(b) > 0 {
			var e Entry
			if jerr := json.Unmarshal(b, &e); jerr != nil {
				if !complete {
					break // a crash cut the last line short: it never happened
				}
				return nil, fmt.Errorf("read %s: line %d: %v (the index is append-only: restore it from a backup, or move it aside to start the campaign's index anew)", name, line, jerr)
			}
			if e.Index != len(out) {
				return nil, fmt.Errorf("read %s: line %d: index %d, want %d (the index is append-only)", name, line, e.Index, len(out))
			}
			out = append(out, e)
		}
		if !complete {
			break
		}
	}
	return out, nil
}

func readLong(br *bufio.Reader, head []byte) ([]byte, error) {
	buf := append([]byte(nil), head...)
	for len(buf) <= maxIndexLine {
		b, err := br.ReadSlice('\n')
		buf = append(buf, b...)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return buf, err
		}
	}
	return nil, fmt.Errorf("line longer than %d bytes", maxIndexLine)
}

// AppendIndex adds entries to the index under its lock and syncs it. Each
// entry's Index must continue the index (ReadIndex's length, then +1 each).
func AppendIndex(dir string, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	unlock, err := lockFile(filepath.Join(dir, indexLock))
	if err != nil {
		return err
	}
	defer unlock()
	have, err := ReadIndex(dir)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	for i, e := range entries {
		if e.Index != len(have)+i {
			return fmt.Errorf("append to %s: entry %q has index %d, want %d", filepath.Join(dir, IndexFile), e.RunID, e.Index, len(have)+i)
		}
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	f, err := os.OpenFile(filepath.Join(dir, IndexFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// lockFile takes an exclusive flock on path, waiting for it.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// Find finds an entry by index or run id. A run id re-declared after its
// run directory was removed has several entries: the last one wins.
func Find(entries []Entry, index int, runID string) (Entry, bool) {
	for i := len(entries) - 1; i >= 0; i-- {
		if e := entries[i]; (runID != "" && e.RunID == runID) || (runID == "" && e.Index == index) {
			return e, true
		}
	}
	return Entry{}, false
}
