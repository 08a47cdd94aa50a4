package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Cell states as reconcile sees them.
const (
	CellDone    = "done"    // result.json (a baseline: metrics.json) is there: never submitted again
	CellRunning = "running" // a live backend job, a held run lock or a fresh solve heartbeat
	CellQueued  = "queued"  // the backend holds the job but does not run it yet
	CellFailed  = "failed"  // failed for good: a requeue cap or the submit cap was hit
	CellIdle    = "idle"    // none of the above: to be submitted
)

// Actions of the plan.
const (
	ActionNone   = "-"
	ActionSubmit = "submit"
	ActionWait   = "wait" // to submit, held back by max_parallel or the agent's cap
)

// PlanRow is one cell of the plan.
type PlanRow struct {
	Cell
	Index   int
	New     bool // its index entry is added by this up
	State   string
	Action  string
	Why     string // what made the state or the action
	Backend *Status
	View    RunView
	Req     Requeues
	Submits int
}

// Plan is the outcome of one reconcile.
type Plan struct {
	Rows []PlanRow
	// BackendErr is why the executor's view is missing (dry run only: a
	// real up stops on it).
	BackendErr string
	Submitted  []Status
}

// Finished reports whether every cell is done or failed for good.
func (p *Plan) Finished() bool {
	for _, r := range p.Rows {
		if r.State != CellDone && r.State != CellFailed {
			return false
		}
	}
	return true
}

// Count counts the rows in state.
func (p *Plan) Count(state string) int {
	n := 0
	for _, r := range p.Rows {
		if r.State == state {
			n++
		}
	}
	return n
}

// UpOptions are the settings of one `ptb campaign up`.
type UpOptions struct {
	Exe    string // absolute ptb binary the allocations run
	DryRun bool   // plan only: write nothing, submit nothing
	Now    func() time.Time
}

// Up reconciles the campaign's cells with its run directories and its
// executor, and submits every idle cell up to the caps. Doing it again is
// safe: a cell is never submitted while it is done, running or queued.
func Up(ctx context.Context, f *File, ex Executor, cells []Cell, o UpOptions) (*Plan, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	dir := f.Dir()
	if !o.DryRun {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create campaign directory: %w", err)
		}
		unlock, err := tryLock(filepath.Join(dir, "up.lock"))
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	index, err := ReadIndex(dir)
	if err != nil {
		return nil, err
	}
	entries, added, err := Assign(index, cells, f.Out)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	if !o.DryRun {
		if err := writeFileAtomic(filepath.Join(dir, "campaign.yaml"), f.Data); err != nil {
			return nil, err
		}
		es, _ := json.MarshalIndent(ExecSettings{Executor: f.ExecutorName, MaxPreemptions: f.Retry.MaxPreemptions, MaxTimeouts: f.Retry.MaxTimeouts}, "", "  ")
		if err := writeFileAtomic(filepath.Join(dir, ExecFile), append(es, '\n')); err != nil {
			return nil, err
		}
		if err := AppendIndex(dir, added); err != nil {
			return nil, err
		}
	}
	plan := &Plan{}
	statuses, err := ex.List(ctx, f.Ref())
	if err != nil {
		if !o.DryRun {
			return nil, fmt.Errorf("list the campaign's jobs (%s): %w", ex.Name(), err)
		}
		plan.BackendErr = err.Error()
	}
	submits, err := ReadSubmits(dir)
	if err != nil {
		return nil, err
	}
	isNew := map[int]bool{}
	for _, e := range added {
		isNew[e.Index] = true
	}
	plan.Rows = reconcile(f, cells, entries, statuses, submits, isNew, now())
	if o.DryRun {
		return plan, nil
	}
	var jobs []Job
	for _, r := range plan.Rows {
		if r.Action == ActionSubmit {
			jobs = append(jobs, Job{Index: r.Index, RunID: r.RunID})
		}
	}
	if len(jobs) == 0 {
		return plan, nil
	}
	exe := o.Exe
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find the ptb binary for the allocations: %w (pass --exe PATH)", err)
		}
	}
	sub := Submission{Campaign: f.Name, Root: f.Out, Dir: dir, Exe: exe, Jobs: jobs, Resources: f.Resources, MaxParallel: f.Limits.MaxParallel, PassEnv: f.Secrets}
	st, err := ex.Submit(ctx, sub)
	// What was submitted is recorded even when part of it failed.
	recs := make([]SubmitRecord, 0, len(st))
	byID := map[string]int{}
	for _, j := range jobs {
		byID[j.RunID] = j.Index
	}
	at := now().UTC().Format(time.RFC3339)
	for _, s := range st {
		recs = append(recs, SubmitRecord{RunID: s.RunID, Index: byID[s.RunID], BackendID: s.BackendID, At: at})
	}
	if werr := appendSubmits(dir, recs); werr != nil && err == nil {
		err = werr
	}
	plan.Submitted = st
	if err != nil {
		return plan, fmt.Errorf("submit %d job(s) to %s: %w", len(jobs), ex.Name(), err)
	}
	return plan, nil
}

// reconcile decides each cell's state and action.
func reconcile(f *File, cells []Cell, entries []Entry, statuses []Status, submits map[string]int, isNew map[int]bool, now time.Time) []PlanRow {
	backend := map[string]Status{}
	for _, s := range statuses {
		// A live job wins over ended ones of the same run.
		if o, ok := backend[s.RunID]; ok && o.State.Live() && !s.State.Live() {
			continue
		}
		backend[s.RunID] = s
	}
	rows := make([]PlanRow, len(cells))
	running := 0
	perAgent := map[string]int{}
	for i, c := range cells {
		e := entries[i]
		r := PlanRow{Cell: c, Index: e.Index, New: isNew[e.Index], Action: ActionNone, Submits: submits[c.RunID]}
		r.View = ReadRun(f.Out, e)
		r.Req, _ = ReadRequeues(f.Dir(), c.RunID)
		if s, ok := backend[c.RunID]; ok {
			r.Backend = &s
		}
		switch {
		case r.View.Done:
			r.State, r.Why = CellDone, "result recorded"
			if c.Kind == KindEval {
				r.Why = "metrics recorded"
			}
		case r.Backend != nil && r.Backend.State == StatePending:
			r.State, r.Why = CellQueued, "backend job "+r.Backend.BackendID+" pending"
		case r.Backend != nil && r.Backend.State.Live():
			r.State, r.Why = CellRunning, "backend job "+r.Backend.BackendID+" "+string(r.Backend.State)
		case r.View.Locked:
			r.State, r.Why = CellRunning, "run lock held"
		case r.View.Fresh(now):
			r.State, r.Why = CellRunning, "solve heartbeat "+now.Sub(r.View.Heartbeat).Round(time.Second).String()+" ago"
		case r.Req.GaveUp != "":
			r.State, r.Why = CellFailed, "requeue cap hit: "+r.Req.GaveUp
		case r.Submits >= f.Retry.MaxSubmits:
			r.State, r.Why = CellFailed, fmt.Sprintf("submitted %d times without a result (retry.max_submits %d)", r.Submits, f.Retry.MaxSubmits)
		default:
			r.State = CellIdle
			switch {
			case r.Submits == 0:
				r.Why = "never submitted"
			case r.Backend != nil:
				r.Why = fmt.Sprintf("backend job %s %s, no result (submit %d of %d)", r.Backend.BackendID, r.Backend.State, r.Submits+1, f.Retry.MaxSubmits)
			default:
				r.Why = fmt.Sprintf("no live job, no result (submit %d of %d)", r.Submits+1, f.Retry.MaxSubmits)
			}
		}
		if r.State == CellRunning || r.State == CellQueued {
			running++
			perAgent[c.Agent]++
		}
		rows[i] = r
	}
	caps := map[string]int{}
	for _, a := range f.Agents {
		caps[a.Name] = a.MaxParallel
	}
	for i := range rows {
		r := &rows[i]
		if r.State != CellIdle {
			continue
		}
		switch {
		case f.Limits.MaxParallel > 0 && running >= f.Limits.MaxParallel:
			r.Action, r.Why = ActionWait, fmt.Sprintf("limits.max_parallel %d reached", f.Limits.MaxParallel)
		case r.Agent != "" && caps[r.Agent] > 0 && perAgent[r.Agent] >= caps[r.Agent]:
			r.Action, r.Why = ActionWait, fmt.Sprintf("agent %s's max_parallel %d reached", r.Agent, caps[r.Agent])
		default:
			r.Action = ActionSubmit
			running++
			perAgent[r.Agent]++
		}
	}
	return rows
}

// Wait runs Up every interval until every cell is done or failed for
// good, or ctx ends. each is called with every plan.
func Wait(ctx context.Context, f *File, ex Executor, cells []Cell, o UpOptions, interval time.Duration, each func(*Plan)) (*Plan, error) {
	for {
		p, err := Up(ctx, f, ex, cells, o)
		if err != nil {
			return p, err
		}
		if each != nil {
			each(p)
		}
		if p.Finished() {
			return p, nil
		}
		select {
		case <-ctx.Done():
			return p, ctx.Err()
		case <-time.After(interval):
		}
	}
}

// tryLock takes an exclusive flock on path without waiting.
func tryLock(path string) (func(), error) {
	fh, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(fh.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		fh.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another `ptb campaign up` is working on %s; wait for it to end (or stop it) and run up again", filepath.Dir(path))
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { syscall.Flock(int(fh.Fd()), syscall.LOCK_UN); fh.Close() }, nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
