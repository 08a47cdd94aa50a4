package result

import (
	"encoding/json"
	"strings"
	"testing"
)

func valid() *Result {
	acc, se := 0.5, 0.1
	code := 0
	return &Result{
		Schema: Schema, RunID: "gsm8k_qwen3-1.7b_scripted_s0_20261127T080102Z",
		Spec: Spec{Agent: "scripted", BaseModel: "Qwen/Qwen3-1.7B-Base", Benchmark: "gsm8k", Hours: 1, GPUs: []int{},
			Network: "none", SandboxName: "bwrap", EvalBackend: "replay"},
		Stages: map[string]Stage{
			StagePrepare: {Status: StatusDone}, StageSolve: {Status: StatusDone}, StageCollect: {Status: StatusDone},
			StageAudit: {Status: StatusSkipped, Reason: "none"}, StageEvaluate: {Status: StatusDone}, StageRecord: {Status: StatusDone},
		},
		Solve: &Solve{TimeTakenS: 1, BudgetS: 3600, EndReason: EndExited, ExitCode: &code, Segments: 1,
			Deadline: "2026-11-27T09:01:02Z", FinalModel: true},
		Evaluation: &Evaluation{Task: "gsm8k", Version: "faithful", Backend: "replay", Metrics: map[string]any{"accuracy": 0.5},
			Accuracy: &acc, Stderr: &se, Samples: 60},
		Score: &acc, Verdict: VerdictUnverified, Flags: []string{},
		Usage:    &Usage{Source: "unavailable"},
		Host:     Host{Hostname: "h", OS: "linux", Arch: "amd64", CPUs: 2, GPUs: []string{}},
		Sandbox:  Sandbox{Backend: "bwrap", Network: "none"},
		Warnings: []string{}, Created: "2026-11-27T08:01:02Z", Finished: "2026-11-27T08:02:02Z",
	}
}

func TestValidateAcceptsAValidRecord(t *testing.T) {
	if err := Validate(valid()); err != nil {
		t.Fatal(err)
	}
}

// The evaluation's server record, as the vllm backend writes it.
func TestValidateAcceptsAnEvaluationServer(t *testing.T) {
	r := valid()
	r.Evaluation.Backend = "vllm"
	r.Evaluation.Server = &EvalServer{Backend: "vllm", Executable: "/opt/venv/bin/vllm", Version: "0.10.2", PinnedVersion: "0.11.0",
		Sandbox: "bwrap", GPUs: []int{0}, TrustRemoteCode: true, Warnings: []string{"vllm 0.10.2 is not the original's pinned 0.11.0"}}
	if err := Validate(r); err != nil {
		t.Fatal(err)
	}
	r.Evaluation.Server.Backend = "url"
	if err := Validate(r); err == nil || !strings.Contains(err.Error(), "backend") {
		t.Errorf("a url server record: error %v, want one naming backend", err)
	}
}

// The evaluation's programs record, as HumanEval writes it.
func TestValidateAcceptsEvaluationPrograms(t *testing.T) {
	r := valid()
	r.Evaluation.Programs = &EvalPrograms{Python: "/root/.pyenv/versions/3.11.7/bin/python3.11", PythonVersion: "3.11.7",
		Sandbox: "bwrap", Sandboxes: 2, Warnings: []string{"humaneval programs run with Python 3.11.7, not the original's 3.10"}}
	if err := Validate(r); err != nil {
		t.Fatal(err)
	}
	r.Evaluation.Programs.Sandboxes = 0
	if err := Validate(r); err == nil || !strings.Contains(err.Error(), "sandboxes") {
		t.Errorf("no sandboxes: error %v, want one naming sandboxes", err)
	}
}

func TestValidateRejects(t *testing.T) {
	for _, c := range []struct {
		name string
		mod  func(*Result)
		want string
	}{
		{"wrong schema", func(r *Result) { r.Schema = "ptb.result/v0" }, "schema"},
		{"unknown benchmark", func(r *Result) { r.Spec.Benchmark = "mmlu" }, "benchmark"},
		{"score above 1", func(r *Result) { x := 1.5; r.Score = &x }, "score"},
		{"bad end reason", func(r *Result) { r.Solve.EndReason = "timeout" }, "end_reason"},
		{"limit end without its name", func(r *Result) { r.Solve.EndReason = EndLimit }, "limit"},
		{"limit named for another end", func(r *Result) { r.Solve.Limit = "memory" }, "limit"},
		{"unknown limit", func(r *Result) { r.Solve.EndReason, r.Solve.Limit = EndLimit, "gpu" }, "limit"},
		{"limit without how", func(r *Result) { r.Sandbox.Limits = []Limit{{Name: "memory", Value: 1}} }, "how"},
		{"bad flag letter", func(r *Result) { r.Verdict = VerdictFlagged; r.Flags = []string{"X"} }, "flags"},
		{"clean without audit", func(r *Result) { r.Verdict = VerdictClean }, "without a clean audit"},
		{"clean unsandboxed", func(r *Result) {
			r.Verdict = VerdictClean
			r.Audit = &Audit{Verdict: VerdictClean}
			r.Stages[StageAudit] = Stage{Status: StatusDone}
			r.Sandbox.Unsandboxed = true
		}, "unsandboxed"},
		{"clean with the host network", func(r *Result) {
			r.Verdict = VerdictClean
			r.Audit = &Audit{Verdict: VerdictClean}
			r.Stages[StageAudit] = Stage{Status: StatusDone}
			r.Spec.Network, r.Sandbox.Network = "host", "host"
		}, "host network"},
		{"unknown network", func(r *Result) { r.Sandbox.Network = "bridge" }, "network"},
		{"flagged without flags", func(r *Result) {
			r.Verdict = VerdictFlagged
			r.Stages[StageAudit] = Stage{Status: StatusDone}
		}, "without flags"},
		{"skipped without reason", func(r *Result) { r.Stages[StageEvaluate] = Stage{Status: StatusSkipped} }, "without a reason"},
		{"missing stage", func(r *Result) { delete(r.Stages, StageRecord) }, "record"},
		{"bad timestamp", func(r *Result) { r.Created = "yesterday" }, "created_at"},
		{"score without evaluation", func(r *Result) { r.Evaluation = nil }, "score without an evaluation"},
	} {
		r := valid()
		c.mod(r)
		err := Validate(r)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
}

func TestValidateJSONRejectsUnknownFields(t *testing.T) {
	b, _ := json.Marshal(valid())
	var m map[string]any
	json.Unmarshal(b, &m)
	m["extra"] = 1
	b, _ = json.Marshal(m)
	if err := ValidateJSON(b); err == nil {
		t.Error("a record with an unknown top-level field validated")
	}
}
