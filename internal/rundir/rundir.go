// Package rundir names the files of a run directory and updates them
// atomically. A run directory is the only source of truth for a job; the
// layout is documented in docs/RUN_DIR.md.
package rundir

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// Paths inside a run directory, relative to its root.
const (
	JobFile       = "job.json"          // the job spec as asked for
	ManifestFile  = "manifest.json"     // stage statuses, rewritten atomically
	ResultFile    = "result.json"       // schema v1, written by the record stage
	ProtectedFile = "protected.json"    // sha256 of protected workspace files, written at prepare
	Workspace     = "workspace"         // the agent's working directory (task dir)
	Home          = "home"              // the agent's HOME
	Tmp           = "tmp"               // the sandbox's private /tmp
	TraceDir      = "trace"             // raw agent output
	TraceRaw      = "trace/agent.jsonl" // stdout lines as written, in order
	TraceLog      = "trace/output.log"  // stdout+stderr, each line prefixed by a timestamp and stream
	SolveState    = "trace/solve.json"  // solve bookkeeping (segments, time spent) for resume
	EventsFile    = "events.jsonl"      // typed run events, appended (internal/runevents)
	CollectDir    = "collect"
	FinalModel    = "collect/final_model" // copied out, symlinks dereferenced
	FinalModelSum = "collect/final_model.sha256"
	Snapshot      = "collect/workspace" // workspace without large model files
	AuditDir      = "audit"
	AuditFile     = "audit/audit.json"
	EvalDir       = "eval" // metrics.json, samples.jsonl, server.log
	MetricsFile   = "eval/metrics.json"
	SamplesFile   = "eval/samples.jsonl"
	// The run's gateway (network gateway): its JSON-lines logs, and the
	// socket directory the sandbox sees at /run/ptb.
	GatewayDir       = "gateway"
	GatewayLLMLog    = "gateway/llm.jsonl"
	GatewayHubLog    = "gateway/hub.jsonl"
	GatewayEgressLog = "gateway/egress.jsonl"
	GatewaySocketDir = "gateway/socket"
)

// Dir is a run directory.
type Dir string

// Path joins elem onto the run directory.
func (d Dir) Path(elem ...string) string {
	return filepath.Join(append([]string{string(d)}, elem...)...)
}

// WriteJSON writes v as indented JSON to rel atomically: a temporary file in
// the same directory, fsynced, then renamed over the target.
func (d Dir) WriteJSON(rel string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", rel, err)
	}
	return WriteFileAtomic(d.Path(rel), append(b, '\n'), 0o644)
}

// ReadJSON decodes rel into v. It returns an error wrapping os.ErrNotExist
// if the file is absent.
func (d Dir) ReadJSON(rel string, v any) error {
	b, err := os.ReadFile(d.Path(rel))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", d.Path(rel), err)
	}
	return nil
}

// WriteFileAtomic replaces path with data so that a reader sees either the old
// or the new content, never a partial file, even if the process dies.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return WriteAtomic(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteAtomic is WriteFileAtomic for content written by write as it is
// produced (through a 64 KiB buffer), without holding it all in memory: a
// temporary file in the same directory, fsynced, then renamed over path. If
// write fails, path is left as it was.
func WriteAtomic(path string, perm os.FileMode, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	bw := bufio.NewWriterSize(f, 64<<10)
	if err := write(bw); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Protected is protected.json: the sha256 (hex) of every protected
// workspace file, keyed by its path relative to the workspace. Prepare
// writes it; collect and the audit check the workspace against it.
type Protected struct {
	Files map[string]string `json:"files"`
}

// ErrNotRegular is returned by HashFile for a symlink, device, FIFO or
// directory: files an agent may have planted to hang or mislead the harness.
var ErrNotRegular = errors.New("not a regular file")

// HashFile returns the sha256 (hex) of the regular file at path. It does
// not follow a symlink at path and returns ErrNotRegular for anything but
// a regular file.
func HashFile(path string) (string, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s: %w", path, ErrNotRegular)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
