package campaign

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
)

func resultJSON(t *testing.T, mut func(r *result.Result)) string {
	t.Helper()
	score := 0.5
	yes := true
	r := result.Result{Schema: "ptb.result/v1", Verdict: result.VerdictClean, Score: &score, Stages: map[string]result.Stage{},
		Solve: &result.Solve{EndReason: result.EndExited, FinalModel: true, BudgetS: 36, TimeTakenS: 20, ProtectedOK: &yes}}
	for _, s := range result.Stages {
		r.Stages[s] = result.Stage{Status: result.StatusDone}
	}
	mut(&r)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Each failed or stuck run gets its reason, found in its run directory,
// its requeue record or its scheduler log.
func TestStatusTriage(t *testing.T) {
	fx, id := newFake(t)
	body := strings.Replace(upFile(id, ""), "seeds: [0, 1, 2, 3]", "seeds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]", 1)
	f, cells := writeCampaign(t, strings.Replace(body, "AGENTCAP", "0", 1))
	if _, err := Up(context.Background(), f, fx, cells, UpOptions{Exe: "/bin/true"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ids := make([]string, len(cells))
	for i, c := range cells {
		ids[i] = c.RunID
		fx.set(c.RunID, StateExited)
	}
	// 0: clean and scored: nothing to say.
	writeRun(t, f.Out, ids[0], map[string]string{"result.json": resultJSON(t, func(*result.Result) {})})
	// 1: the evaluation failed: a harness error, and no metrics.
	writeRun(t, f.Out, ids[1], map[string]string{"result.json": resultJSON(t, func(r *result.Result) {
		r.Score = nil
		r.Stages[result.StageEvaluate] = result.Stage{Status: result.StatusFailed, Error: "vllm serve exited with status 1\nTraceback..."}
	})})
	// 2: out of time without a final_model.
	writeRun(t, f.Out, ids[2], map[string]string{"result.json": resultJSON(t, func(r *result.Result) {
		r.Score = nil
		r.Solve.EndReason, r.Solve.FinalModel = result.EndDeadline, false
	})})
	// 3: flagged; 4: unverified.
	writeRun(t, f.Out, ids[3], map[string]string{"result.json": resultJSON(t, func(r *result.Result) {
		r.Verdict, r.Flags = result.VerdictFlagged, []string{"C", "M"}
	})})
	writeRun(t, f.Out, ids[4], map[string]string{"result.json": resultJSON(t, func(r *result.Result) {
		r.Verdict = result.VerdictUnverified
		r.Audit = &result.Audit{Findings: []result.Finding{{Check: "judge", Status: "unverified"}, {Check: "contamination", Status: "pass"}}}
	})})
	// 5: cut short, with the gateway's and the output log's evidence.
	writeRun(t, f.Out, ids[5], map[string]string{
		"trace/solve.json":   solveJSON(now.Add(-time.Hour), now.Add(-50*time.Minute), false),
		"manifest.json":      `{"stages": {"prepare": {"status": "done"}, "solve": {"status": "running"}}}`,
		rundir.GatewayLLMLog: `{"status": 429, "reason": "usage limit reached for this billing period", "provider": "anthropic"}` + "\n" + `{"status": 403, "denied": true, "reason": "spend cap reached: $50.01 spent of the run's $50.00 cap"}` + "\n" + `{"status": 500, "reason": "upstream: overloaded"}` + "\n" + `{"status": 403, "denied": true, "reason": "model \"gpt-4o\" is not allowed in this run"}` + "\n",
		rundir.GatewayHubLog: `{"status": 429, "url": "https://huggingface.co/api/models/Qwen/Qwen3-1.7B"}` + "\n",
		rundir.TraceLog:      "2026-11-30T01:00:00Z stderr RuntimeError: No CUDA GPUs are available\n",
	})
	// 6: never made its run directory; its scheduler log says why.
	logf := filepath.Join(t.TempDir(), "6.err")
	os.WriteFile(logf, []byte("ptb: --gpus: GPU 3 does not exist here (GPUs on this machine: 0,1)\n"), 0o644)
	fx.logs[ids[6]] = []string{logf}
	fx.set(ids[6], StateFailed)
	// 7: its requeues ran out.
	os.MkdirAll(filepath.Join(f.Dir(), RequeuesDir), 0o755)
	rq, _ := json.Marshal(Requeues{Preemptions: 4, LastSignal: "TERM", LastAt: "2026-11-30T01:00:00Z", GaveUp: "max_preemptions 3"})
	os.WriteFile(filepath.Join(f.Dir(), RequeuesDir, ids[7]+".json"), rq, 0o644)
	// 8: the backend says running, but the run stopped moving 20 minutes ago.
	fx.set(ids[8], StateRunning)
	writeRun(t, f.Out, ids[8], map[string]string{"trace/solve.json": solveJSON(now.Add(-time.Hour), now.Add(-20*time.Minute), false)})
	// 9: the agent's own words (from internal/cli's reader).
	writeRun(t, f.Out, ids[9], map[string]string{"result.json": resultJSON(t, func(r *result.Result) {
		r.Solve.FinalModel, r.Score = false, nil
		code := 1
		r.Solve.ExitCode = &code
	}), rundir.TraceLog: "2026-11-30T01:00:00Z stderr torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"})
	said := func(dir rundir.Dir, res *result.Result) string {
		if strings.HasSuffix(string(dir), ids[9]) {
			return "API Error: 401 invalid x-api-key"
		}
		return ""
	}
	rep, err := CampaignStatus(context.Background(), f, fx, cells, StatusOptions{AgentSaid: said})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int][]string{
		1: {"harness error: stage evaluate failed: vllm serve exited with status 1", "no metrics: evaluate failed (vllm serve exited with status 1)"},
		2: {"deadline: the agent was stopped at the deadline"},
		3: {"flagged: audit flags CM"},
		4: {"unverified: checks that could not run: judge"},
		5: {"usage limit hit: 1 request(s) refused by the provider (last: HTTP 429 usage limit", "spend limit hit: 1 request(s) refused by the gateway (spend cap reached", "agent API error: 1 model request(s) failed (last: HTTP 500 upstream: overloaded)", "agent API error: 1 model request(s) refused by the gateway (last: model \"gpt-4o\" is not allowed in this run)",
			"hub rate limit: 1 hub request(s) got HTTP 429", "CUDA unavailable: 2026-11-30T01:00:00Z stderr RuntimeError: No CUDA GPUs are available"},
		6: {"never ran: its job ended before the run directory was made", "CUDA unavailable: ptb: --gpus: GPU 3 does not exist here"},
		7: {"requeue cap hit: max_preemptions 3 (4 preemption(s), 0 timeout(s), last TERM"},
		8: {"stuck: backend job 8 runs, but the run has shown no progress since"},
		9: {"no final_model: the solve ended (exited) without a final_model", "agent API error: the agent said: API Error: 401 invalid x-api-key"},
	}
	for i, r := range rep.Runs {
		got := strings.Join(r.Triage, "\n")
		t.Logf("run %d %s: %q", i, r.State, r.Triage)
		if len(want[i]) == 0 && got != "" {
			t.Errorf("run %d (%s): triage %q, want none", i, r.State, got)
		}
		for _, w := range want[i] {
			if !strings.Contains(got, w) {
				t.Errorf("run %d (%s): triage\n  %s\nwant a line with\n  %s", i, r.State, strings.ReplaceAll(got, "\n", "\n  "), w)
			}
		}
	}
	if strings.Contains(strings.Join(rep.Runs[9].Triage, "\n"), TriageCUDA) {
		t.Errorf("an out-of-memory error is not CUDA being unavailable: %q", rep.Runs[9].Triage)
	}
	if rep.Counts[CellDone] != 6 || rep.Counts[CellRunning] != 1 || rep.Counts[CellFailed] != 1 || rep.Attention != 9 {
		t.Errorf("counts %v, attention %d", rep.Counts, rep.Attention)
	}
	r5 := rep.Runs[5]
	if r5.Stage != "solve" || r5.StageStatus != "running" || r5.BudgetS != 10.8 || r5.ElapsedS < 599 || r5.ElapsedS > 601 {
		t.Errorf("run 5: stage %s %s, solve %v/%v", r5.Stage, r5.StageStatus, r5.ElapsedS, r5.BudgetS)
	}
	if r := rep.Runs[0]; r.Score == nil || *r.Score != 0.5 || r.Verdict != "clean" || r.Backend == nil || r.Backend.State != StateExited {
		t.Errorf("run 0 %+v", r)
	}
	// status writes nothing.
	if _, err := os.Stat(filepath.Join(f.Dir(), "submits.jsonl")); err != nil {
		t.Fatal(err)
	}
	n, _ := ReadSubmits(f.Dir())
	if n[ids[5]] != 1 {
		t.Errorf("status resubmitted: %v", n)
	}
}
