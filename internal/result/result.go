// Package result defines result.json, schema v1: the one record a run leaves
// behind. Reports, dashboards and campaigns read only this file (and the run
// directory beside it); see docs/RESULT_SCHEMA.md for the field reference.
package result

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// Schema is the value of Result.Schema for this version.
const Schema = "ptb.result/v1"

// Stage names, in pipeline order.
const (
	StagePrepare  = "prepare"
	StageSolve    = "solve"
	StageCollect  = "collect"
	StageAudit    = "audit"
	StageEvaluate = "evaluate"
	StageRecord   = "record"
)

// Stages lists the stage names in the order they run.
var Stages = []string{StagePrepare, StageSolve, StageCollect, StageAudit, StageEvaluate, StageRecord}

// Stage statuses.
const (
	StatusPending = "pending"
	StatusRunning = "running"
	StatusDone    = "done"
	StatusFailed  = "failed"
	StatusSkipped = "skipped" // no implementation or not applicable; never counts as passed
)

// Verdicts. A run is "clean" only when every audit check ran and passed.
const (
	VerdictClean      = "clean"
	VerdictFlagged    = "flagged"
	VerdictUnverified = "unverified"
)

// Solve end reasons.
const (
	EndExited       = "exited"        // the agent exited on its own (see ExitCode)
	EndDeadline     = "deadline"      // the harness stopped it at the deadline
	EndSignal       = "signal"        // it died of a signal the harness did not send
	EndLimit        = "limit"         // the sandbox stopped it at a resource limit (see Solve.Limit)
	EndHarnessError = "harness_error" // the harness could not start or supervise it
)

// Result is result.json.
type Result struct {
	Schema     string           `json:"schema"`
	RunID      string           `json:"run_id"`
	Spec       Spec             `json:"spec"`
	Stages     map[string]Stage `json:"stages"`
	Solve      *Solve           `json:"solve"`
	Evaluation *Evaluation      `json:"evaluation"`
	// Score is the headline metric (accuracy in [0,1]) or null when the
	// evaluation did not produce one.
	Score    *float64 `json:"score"`
	Verdict  string   `json:"verdict"`
	Flags    []string `json:"flags"` // the original's letters: C, M, T, A
	Audit    *Audit   `json:"audit"`
	Usage    *Usage   `json:"usage"`
	Versions Versions `json:"versions"`
	Host     Host     `json:"host"`
	Sandbox  Sandbox  `json:"sandbox"`
	Warnings []string `json:"warnings"`
	Created  string   `json:"created_at"` // RFC 3339, when the run was created
	Finished string   `json:"finished_at"`
	// Redos lists the stages rerun with `ptb run --resume --redo`, each
	// with the settings it changed (old beside new); absent when none.
	Redos []Redo `json:"redos,omitempty"`
	// Monitor summarises monitor.jsonl (the system samples taken during
	// the solve); absent when no sample was taken.
	Monitor *Monitor `json:"monitor,omitempty"`
}

// Redo is one `ptb run --resume --redo`: when, which stages ran again,
// and the job settings it changed.
type Redo struct {
	At      string   `json:"at"`
	Stages  []string `json:"stages"`
	Changes []Change `json:"changes"`
}

// Change is one job setting a redo changed, as JSON values.
type Change struct {
	Field string `json:"field"` // job.json path, e.g. eval.backend
	Old   any    `json:"old"`
	New   any    `json:"new"`
}

// Monitor is the summary of the system monitor's samples. GPU fields are
// null when no sample had GPU data (no nvidia-smi).
type Monitor struct {
	Samples   int     `json:"samples"`
	IntervalS float64 `json:"interval_s"`
	// GPUMemPeakMiB is the highest memory.used of any GPU of the job.
	GPUMemPeakMiB *float64 `json:"gpu_mem_peak_mib"`
	// GPUUtilMean is the mean utilization.gpu over samples and GPUs (%).
	GPUUtilMean *float64 `json:"gpu_util_mean"`
	// GPUIdleFraction is the fraction of samples in which every GPU of the
	// job was idle (utilization below 5%).
	GPUIdleFraction *float64 `json:"gpu_idle_fraction"`
	Note            string   `json:"note,omitempty"`
}

// Spec is the job as it was asked for.
type Spec struct {
	Agent       string  `json:"agent"`        // scaffold: claude, codex, gemini, opencode, scripted
	AgentModel  string  `json:"agent_model"`  // model/config string given to the scaffold
	BaseModel   string  `json:"base_model"`   // hub id, e.g. Qwen/Qwen3-1.7B-Base
	Benchmark   string  `json:"benchmark"`    // registry name, e.g. gsm8k
	Hours       float64 `json:"hours"`        // time budget for solve
	GPUs        []int   `json:"gpus"`         // device indices visible to the job
	Seed        int     `json:"seed"`         // replicate index
	Label       string  `json:"label"`        // optional method label for reports
	Network     string  `json:"network"`      // none | gateway | host
	SandboxName string  `json:"sandbox"`      // requested backend
	EvalBackend string  `json:"eval_backend"` // vllm | hf | url | replay | none
}

// Stage is one stage's outcome.
type Stage struct {
	Status    string `json:"status"`
	StartedAt string `json:"started_at,omitempty"`
	EndedAt   string `json:"ended_at,omitempty"`
	Error     string `json:"error,omitempty"`
	Reason    string `json:"reason,omitempty"` // why skipped, or a note
}

// Solve records how the agent's work ended.
type Solve struct {
	TimeTakenS  float64 `json:"time_taken_s"`    // wall time over all segments
	BudgetS     float64 `json:"budget_s"`        // the job's budget in seconds
	EndReason   string  `json:"end_reason"`      // exited | deadline | signal | harness_error
	ExitCode    *int    `json:"exit_code"`       // when it exited
	Signal      string  `json:"signal"`          // when it died of a signal
	Segments    int     `json:"segments"`        // launches (1 + resumes + reprompts)
	Deadline    string  `json:"deadline"`        // RFC 3339
	FinalModel  bool    `json:"final_model"`     // whether final_model was left
	TraceBytes  int64   `json:"trace_bytes"`     // size of the raw trace
	ProtectedOK *bool   `json:"protected_ok"`    // protected files unchanged at collect; null if not checked
	Limit       string  `json:"limit,omitempty"` // with end_reason limit: memory | pids | disk | files
	Error       string  `json:"error,omitempty"`
	// TraceTruncated is set when the raw trace or output.log went over the
	// job's bounds and was cut (trace/truncation.json lists the cuts).
	TraceTruncated bool `json:"trace_truncated,omitempty"`
}

// Evaluation is the evaluate stage's outcome.
type Evaluation struct {
	Task     string         `json:"task"`
	Version  string         `json:"version"`
	Backend  string         `json:"backend"`
	Metrics  map[string]any `json:"metrics"`
	Accuracy *float64       `json:"accuracy"`
	Stderr   *float64       `json:"stderr"`
	Samples  int            `json:"samples"`
	// Missing counts samples that had no recorded response (replay) and
	// were scored as empty; Coverage is (Samples-Missing)/Samples. Both are
	// absent when every sample had a response.
	Missing  int      `json:"missing,omitempty"`
	Coverage *float64 `json:"coverage,omitempty"`
	// Server is the inference server ptb started (vllm, hf backends).
	Server *EvalServer `json:"server,omitempty"`
	// Programs is the interpreter that ran HumanEval's programs.
	Programs *EvalPrograms `json:"programs,omitempty"`
}

// EvalPrograms is the interpreter that ran the benchmark's generated
// programs (HumanEval) and how they were contained.
type EvalPrograms struct {
	Python        string   `json:"python"`         // the interpreter run
	PythonVersion string   `json:"python_version"` // e.g. 3.10.14
	Sandbox       string   `json:"sandbox"`
	Unsandboxed   bool     `json:"unsandboxed"`
	Sandboxes     int      `json:"sandboxes"` // long-lived sandboxes, programs run at once
	Warnings      []string `json:"warnings"`  // a Python other than the original's 3.10, unsandboxed programs
}

// EvalServer is the inference server that answered the evaluation and how
// it was contained.
type EvalServer struct {
	Backend         string   `json:"backend"`
	Executable      string   `json:"executable"`
	Version         string   `json:"version"`                  // `vllm --version`; "unknown: why" when unreadable
	PinnedVersion   string   `json:"pinned_version,omitempty"` // vllm: the original's pin, 0.11.0
	Sandbox         string   `json:"sandbox"`
	Unsandboxed     bool     `json:"unsandboxed"`
	GPUs            []int    `json:"gpus"`
	TrustRemoteCode bool     `json:"trust_remote_code"`
	Warnings        []string `json:"warnings"` // a version off the pin, an unsandboxed server
}

// Audit is the audit stage's outcome.
type Audit struct {
	Verdict  string    `json:"verdict"`
	Flags    []string  `json:"flags"`
	Findings []Finding `json:"findings"`
}

// Finding is one audit check's result.
type Finding struct {
	Check    string   `json:"check"`
	Status   string   `json:"status"` // pass | flag | unverified
	Kind     string   `json:"kind,omitempty"`
	Evidence []string `json:"evidence,omitempty"`
}

// Usage is what the agent consumed.
type Usage struct {
	InputTokens       int64    `json:"input_tokens"`
	OutputTokens      int64    `json:"output_tokens"`
	CachedInputTokens int64    `json:"cached_input_tokens"`
	ReasoningTokens   int64    `json:"reasoning_tokens"`
	CostUSD           *float64 `json:"cost_usd"`     // computed by ptb from its price table
	CLICostUSD        *float64 `json:"cli_cost_usd"` // the CLI's own figure, when it reports one
	PriceTable        string   `json:"price_table,omitempty"`
	Source            string   `json:"source"` // where the numbers came from ("gateway (gateway/llm.jsonl)", "trace (...)"), or "unavailable"
}

// Versions of what produced the record.
type Versions struct {
	PTB      string `json:"ptb"`
	AgentCLI string `json:"agent_cli"`
	Scorer   string `json:"scorer"` // task@version
}

// Host describes the machine.
type Host struct {
	Hostname string   `json:"hostname"`
	OS       string   `json:"os"`
	Arch     string   `json:"arch"`
	CPUs     int      `json:"cpus"`
	GPUs     []string `json:"gpus"`
}

// Sandbox says how the agent was isolated.
type Sandbox struct {
	Backend     string `json:"backend"`
	Unsandboxed bool   `json:"unsandboxed"`
	Network     string `json:"network"` // none | gateway | host: what the agent had
	// Limits are the job's resource limits and how each was enforced
	// (e.g. "cgroup v1 memory", "tmpfs size", "watchdog every 2s", or
	// "not enforced: ..."); empty when the backend enforces none.
	Limits []Limit `json:"limits,omitempty"`
	// GPUs are the GPUs bound into the sandbox.
	GPUs []GPU `json:"gpus,omitempty"`
}

// Limit is one resource limit and how it was enforced.
type Limit struct {
	Name     string  `json:"name"`     // memory | pids | cpu | tmp | disk | files
	Value    float64 `json:"value"`    // bytes, count or cores
	Enforced bool    `json:"enforced"` // false: asked for, but the host could not
	How      string  `json:"how"`
}

// GPU is a GPU bound into the sandbox.
type GPU struct {
	Index  int    `json:"index"`
	Device string `json:"device"`         // the device node, /dev/nvidiaN
	UUID   string `json:"uuid,omitempty"` // from nvidia-smi; absent when it did not answer
}

// Read loads and checks a result.json.
func Read(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Schema != Schema {
		return nil, fmt.Errorf("%s: schema %q, want %q", path, r.Schema, Schema)
	}
	return &r, nil
}

// Now formats t as the records do.
func Now(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
