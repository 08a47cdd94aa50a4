package pipeline_test

import (
	"context"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/pipeline"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
	"github.com/ptb-dev/ptb/internal/sandbox/none"
)

// recordingStages is every stage seam, keeping what each was asked.
type recordingStages struct {
	mu        sync.Mutex
	audits    []pipeline.AuditRequest
	usages    []pipeline.UsageRequest
	evals     []pipeline.EvalRequest
	scaffolds []pipeline.ScaffoldRequest
}

func (s *recordingStages) Audit(_ context.Context, req pipeline.AuditRequest) (*result.Audit, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.audits = append(s.audits, req)
	return &result.Audit{Verdict: result.VerdictFlagged, Flags: []string{"T"}}, nil
}

func (s *recordingStages) Usage(_ context.Context, req pipeline.UsageRequest) (*result.Usage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.usages = append(s.usages, req)
	return &result.Usage{Source: "recorded"}, nil
}

func (s *recordingStages) Evaluate(_ context.Context, req pipeline.EvalRequest) (*result.Evaluation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	req.Sandbox, req.Progress = nil, nil // compared apart
	s.evals = append(s.evals, req)
	acc := 0.5
	return &result.Evaluation{Task: "gsm8k", Version: "v2", Backend: "replay", Metrics: map[string]any{"accuracy": acc}, Accuracy: &acc, Samples: 2}, nil
}

func (s *recordingStages) scaffold(req pipeline.ScaffoldRequest) (agent.Scaffold, error) {
	s.mu.Lock()
	s.scaffolds = append(s.scaffolds, req)
	s.mu.Unlock()
	return scriptedScaffold(req)
}

// Each stage receives the parts of job.json it uses, under the names of
// its request; nothing else of the job reaches it.
func TestStageRequests(t *testing.T) {
	spec, d := newJob(t, 60, normalScript)
	spec.AgentModel = "gpt-5.1-codex:high"
	spec.Credentials = filepath.Join(t.TempDir(), "auth.json")
	spec.Registry = filepath.Join(t.TempDir(), "registry.yaml")
	spec.Eval = job.EvalSpec{Backend: "replay", Version: "v2", Responses: "/r/responses.jsonl", BaseURL: "http://127.0.0.1:1/v1", Limit: 7, DataDir: "/data/sets"}
	spec.Judge = job.JudgeSpec{Agent: "codex", Model: "judge-model", Endpoint: "http://judge", Runs: 3}
	spec.GPUs = []int{2, 5}
	if err := d.WriteJSON(rundir.JobFile, spec); err != nil {
		t.Fatal(err)
	}
	s := &recordingStages{}
	r := newRunner(none.New())
	r.Scaffold, r.Auditor, r.Usage, r.Evaluator = s.scaffold, s, s, s
	res, err := r.Run(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != result.VerdictFlagged || res.Usage == nil || res.Usage.Source != "recorded" {
		t.Fatalf("result verdict %q usage %+v: want the stages' answers recorded", res.Verdict, res.Usage)
	}

	wantScaffold := pipeline.ScaffoldRequest{Agent: "scripted", Model: spec.AgentModel, Script: spec.Script, Credentials: spec.Credentials, Network: spec.Network}
	if len(s.scaffolds) < 2 { // solve's segment and record's version
		t.Fatalf("scaffold asked %d times, want at least 2", len(s.scaffolds))
	}
	for i, got := range s.scaffolds {
		if got != wantScaffold {
			t.Errorf("scaffold request %d\n got %+v\nwant %+v", i, got, wantScaffold)
		}
	}
	wantAudit := []pipeline.AuditRequest{{Dir: d, Benchmark: "gsm8k", BaseModel: spec.BaseModel, Registry: spec.Registry,
		DataDir: "/data/sets", OutRoot: spec.OutRoot, Judge: spec.Judge}}
	if !reflect.DeepEqual(s.audits, wantAudit) {
		t.Errorf("audit requests\n got %+v\nwant %+v", s.audits, wantAudit)
	}
	wantUsage := []pipeline.UsageRequest{{Agent: "scripted", Model: spec.AgentModel, Network: spec.Network,
		Trace: d.Path(rundir.TraceRaw), GatewayLog: d.Path(rundir.GatewayLLMLog)}}
	if !reflect.DeepEqual(s.usages, wantUsage) {
		t.Errorf("usage requests\n got %+v\nwant %+v", s.usages, wantUsage)
	}
	wantEval := []pipeline.EvalRequest{{Benchmark: "gsm8k", BaseModel: spec.BaseModel, Eval: spec.Eval, GPUs: []int{2, 5},
		ModelDir: d.Path(rundir.FinalModel), OutDir: d.Path(rundir.EvalDir)}}
	if !reflect.DeepEqual(s.evals, wantEval) {
		t.Errorf("eval requests\n got %+v\nwant %+v", s.evals, wantEval)
	}
}
