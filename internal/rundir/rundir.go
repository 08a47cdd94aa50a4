// Package rundir names the files of a run directory and updates them
// atomically. A run directory is the only source of truth for a job; the
// layout is documented in docs/RUN_DIR.md.
package rundir

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ptb-dev/ptb/internal/fsutil"
)

// Paths inside a run directory, relative to its root.
const (
	JobFile             = "job.json"              // the job spec as asked for
	PromptFile          = "prompt.txt"            // the rendered agent prompt, outside the agent's reach
	LockFile            = ".lock"                 // held (flock) by the ptb working on the run
	RedoFile            = "redo.jsonl"            // one result.Redo per `ptb run --resume --redo`
	MonitorFile         = "monitor.jsonl"         // system samples (internal/monitor.Sample), one per line
	ManifestFile        = "manifest.json"         // stage statuses, rewritten atomically
	ResultFile          = "result.json"           // schema v1, written by the record stage
	ProtectedFile       = "protected.json"        // sha256 of protected workspace files, written at prepare
	Workspace           = "workspace"             // the agent's working directory (task dir)
	Home                = "home"                  // the agent's HOME
	Tmp                 = "tmp"                   // the sandbox's private /tmp
	TraceDir            = "trace"                 // raw agent output
	TraceRaw            = "trace/agent.jsonl"     // stdout lines as written, in order
	TraceLog            = "trace/output.log"      // stdout+stderr, each line prefixed by a timestamp and stream
	SolveStateFile      = "trace/solve.json"      // solve bookkeeping (segments, time spent) for resume
	EventsFile          = "events.jsonl"          // typed run events, appended (internal/runevents)
	TruncationFile      = "trace/truncation.json" // every cut made in the trace; absent when it is whole
	CollectDir          = "collect"
	FinalModel          = "collect/final_model" // copied out, symlinks dereferenced
	FinalModelSum       = "collect/final_model.sha256"
	Snapshot            = "collect/workspace"            // workspace without large model files
	SnapshotSkippedFile = "collect/snapshot_skipped.txt" // what the snapshot left out and why
	ProtectedCheckFile  = "collect/protected_check.json" // ProtectedCheck: the collect-time comparison with protected.json
	AuditDir            = "audit"
	AuditFile           = "audit/audit.json"
	AuditText           = "audit/audit.txt" // the audit as a human-readable report
	// The evaluator's output directory (ptb eval --out RUN_DIR/eval):
	// internal/eval names the files inside it.
	EvalDir        = "eval"
	MetricsFile    = "eval/metrics.json"
	SamplesFile    = "eval/samples.jsonl"
	ServerLogFile  = "eval/server.log"
	EvaluationFile = "eval/evaluation.json" // the evaluate stage's summary, beside metrics.json
	// The run's gateway (network gateway): its JSON-lines logs, and the
	// socket directory the sandbox sees at /run/ptb.
	GatewayDir       = "gateway"
	GatewayLLMLog    = "gateway/llm.jsonl"
	GatewayHubLog    = "gateway/hub.jsonl"
	GatewayEgressLog = "gateway/egress.jsonl"
	GatewayGradeLog  = "gateway/grade.jsonl"
	GatewaySocketDir = "gateway/socket"
)

// EvalAside is where the n-th earlier evaluation (n = 1, 2, ...) is moved
// when `ptb run --resume --redo` reruns evaluate: eval.N.
func EvalAside(n int) string { return fmt.Sprintf("%s.%d", EvalDir, n) }

// JudgeTrace, JudgeStderr and JudgeGateway name the files of the audit's
// LLM judge's n-th run (n = 1, 2, ...), under AuditDir: its JSONL trace,
// its stderr and its gateway's log directory.
func JudgeTrace(n int) string   { return fmt.Sprintf("%s/judge-%d.jsonl", AuditDir, n) }
func JudgeStderr(n int) string  { return fmt.Sprintf("%s/judge-%d.stderr", AuditDir, n) }
func JudgeGateway(n int) string { return fmt.Sprintf("%s/judge-%d-gateway", AuditDir, n) }

// Dir is a run directory.
type Dir string

// Path joins elem onto the run directory.
func (d Dir) Path(elem ...string) string {
	return filepath.Join(append([]string{string(d)}, elem...)...)
}

// WriteJSON writes v as indented JSON to rel atomically: a temporary file in
// the same directory, fsynced, then renamed over the target.
func (d Dir) WriteJSON(rel string, v any) error {
	return fsutil.WriteJSON(d.Path(rel), v, 0o644)
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

// ProtectedCheck is collect/protected_check.json: the collect-time
// comparison of the workspace with protected.json.
type ProtectedCheck struct {
	OK      bool     `json:"ok"`
	Changes []string `json:"changes"`
}

// Protected is protected.json: the sha256 (hex) of every protected
// workspace file, keyed by its path relative to the workspace. Prepare
// writes it; collect and the audit check the workspace against it.
type Protected struct {
	Files map[string]string `json:"files"`
}
