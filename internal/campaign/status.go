package campaign

import (
	"context"
	"time"
)

// RunStatus is one row of `ptb campaign status`.
type RunStatus struct {
	Index     int    `json:"index"` // -1: not in the index yet (run up)
	RunID     string `json:"run_id"`
	Agent     string `json:"agent,omitempty"`
	Baseline  string `json:"baseline,omitempty"`
	BaseModel string `json:"base_model"`
	Benchmark string `json:"benchmark"`
	Seed      int    `json:"seed"`
	State     string `json:"state"` // done, running, queued, failed, idle
	Why       string `json:"why,omitempty"`
	// Stage is the run's first stage not done ("" when all are), with its status.
	Stage       string   `json:"stage,omitempty"`
	StageStatus string   `json:"stage_status,omitempty"`
	ElapsedS    float64  `json:"elapsed_s"` // solve time spent (from the heartbeat)
	BudgetS     float64  `json:"budget_s"`
	Score       *float64 `json:"score"`
	Verdict     string   `json:"verdict,omitempty"`
	Backend     *Status  `json:"backend,omitempty"`
	Requeues    Requeues `json:"requeues"`
	Submits     int      `json:"submits"`
	// Triage says why a failed or stuck run (or a done one with a
	// problem) needs a look, one reason a line.
	Triage []string `json:"triage,omitempty"`
}

// Report is `ptb campaign status --json`.
type Report struct {
	Campaign   string         `json:"campaign"`
	Executor   string         `json:"executor"`
	Dir        string         `json:"dir"`
	At         string         `json:"at"`
	Counts     map[string]int `json:"counts"`    // by state
	Attention  int            `json:"attention"` // rows with a triage
	BackendErr string         `json:"backend_error,omitempty"`
	Runs       []RunStatus    `json:"runs"`
	// NotInFile are run ids of the index that the file no longer declares
	// (their run directories are left alone).
	NotInFile []string `json:"not_in_file,omitempty"`
}

// StatusOptions are the settings of one status.
type StatusOptions struct {
	AgentSaid AgentSaid
	Now       func() time.Time
}

// CampaignStatus merges the run directories with the executor's view (one
// List) and the requeue records, and triages every run that needs a look.
// It writes nothing.
func CampaignStatus(ctx context.Context, f *File, ex Executor, cells []Cell, o StatusOptions) (*Report, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	plan, err := Up(ctx, f, ex, cells, UpOptions{DryRun: true, Now: now})
	if err != nil {
		return nil, err
	}
	t := now()
	rep := &Report{Campaign: f.Name, Executor: f.ExecutorName, Dir: f.Dir(), At: t.UTC().Format(time.RFC3339), Counts: map[string]int{}, BackendErr: plan.BackendErr}
	for _, r := range plan.Rows {
		rs := RunStatus{Index: r.Index, RunID: r.RunID, Agent: r.Agent, Baseline: r.Baseline, BaseModel: r.BaseModel, Benchmark: r.Benchmark, Seed: r.Seed,
			State: r.State, Why: r.Why, Stage: r.View.Stage, StageStatus: r.View.StageStatus,
			ElapsedS: r.View.Spent.Seconds(), BudgetS: r.View.Budget.Seconds(), Backend: r.Backend, Requeues: r.Req, Submits: r.Submits}
		if r.New {
			rs.Index = -1
		}
		if res := r.View.Result; res != nil {
			rs.Score, rs.Verdict = res.Score, res.Verdict
			if rs.BudgetS == 0 && res.Solve != nil {
				rs.ElapsedS, rs.BudgetS = res.Solve.TimeTakenS, res.Solve.BudgetS
			}
		}
		var logs []string
		if r.State != CellDone && r.Submits > 0 && !r.New {
			logs, _ = ex.Logs(ctx, f.Ref(), r.RunID)
		}
		rs.Triage = Triage(TriageInput{Row: r, Root: f.Out, File: f.Path, Logs: logs, AgentSaid: o.AgentSaid, Now: t})
		if len(rs.Triage) > 0 {
			rep.Attention++
		}
		rep.Counts[r.State]++
		rep.Runs = append(rep.Runs, rs)
	}
	index, err := ReadIndex(f.Dir())
	if err != nil {
		return nil, err
	}
	declared := map[string]bool{}
	for _, c := range cells {
		declared[c.RunID] = true
	}
	for _, e := range index {
		if !declared[e.RunID] {
			declared[e.RunID] = true
			rep.NotInFile = append(rep.NotInFile, e.RunID)
		}
	}
	return rep, nil
}
