package campaign

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func upFile(id, extra string) string {
	return `name: up
out: runs
agents:
  - scaffold: scripted
    max_parallel: AGENTCAP
base_models: [qwen3-1.7b]
benchmarks: [gsm8k]
seeds: [0, 1, 2, 3]
run:
  script: s.yaml
  hours: 0.003
` + extra + `executor:
  fake: {id: ` + id + `}
`
}

func setupUp(t *testing.T, extra string, agentCap int) (*File, []Cell, *fakeExec) {
	t.Helper()
	fx, id := newFake(t)
	f, cells := writeCampaign(t, strings.Replace(upFile(id, extra), "AGENTCAP", fmt.Sprint(agentCap), 1))
	return f, cells, fx
}

func up(t *testing.T, f *File, cells []Cell, ex Executor) *Plan {
	t.Helper()
	p, err := Up(context.Background(), f, ex, cells, UpOptions{Exe: "/bin/true"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUpTwiceSubmitsNothing(t *testing.T) {
	f, cells, fx := setupUp(t, "", 0)
	p := up(t, f, cells, fx)
	if len(p.Submitted) != 4 {
		t.Fatalf("first up submitted %d jobs, want 4", len(p.Submitted))
	}
	s := fx.submits[0]
	if s.Campaign != "up" || s.Dir != f.Dir() || s.Root != f.Out || s.Exe != "/bin/true" || s.GPUs != 1 || s.TimeLimit <= 10*time.Second {
		t.Errorf("submission %+v", s)
	}
	p = up(t, f, cells, fx)
	if len(p.Submitted) != 0 || p.Count(CellQueued) != 4 {
		t.Errorf("second up submitted %d, states %+v", len(p.Submitted), p.Rows)
	}
	idx, err := ReadIndex(f.Dir())
	if err != nil || len(idx) != 4 || idx[3].RunID != cells[3].RunID || idx[3].SpecHash != cells[3].Hash {
		t.Errorf("index %+v, %v", idx, err)
	}
	es, err := ReadExecSettings(f.Dir())
	if err != nil || es != (ExecSettings{Executor: "fake", MaxPreemptions: 10, MaxTimeouts: 3}) {
		t.Errorf("exec.json %+v, %v", es, err)
	}
	if b, _ := os.ReadFile(filepath.Join(f.Dir(), "campaign.yaml")); string(b) != string(f.Data) {
		t.Errorf("campaign.yaml is not the file")
	}
	// A cell dropped from the file stays in the index, and status says so.
	rep, err := CampaignStatus(context.Background(), f, fx, cells[:3], StatusOptions{})
	if err != nil || !slices.Equal(rep.NotInFile, []string{cells[3].RunID}) || len(rep.Runs) != 3 {
		t.Errorf("status of the shorter file: not in file %v, %d runs, %v", rep.NotInFile, len(rep.Runs), err)
	}
}

func writeRun(t *testing.T, root, id string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, id, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func solveJSON(start, heartbeat time.Time, ended bool) string {
	end := "null"
	if ended {
		end = `"` + heartbeat.Format(time.RFC3339Nano) + `"`
	}
	return fmt.Sprintf(`{"budget_s": 10.8, "segments": [{"n": 1, "start": %q, "heartbeat": %q, "end": %s}]}`,
		start.Format(time.RFC3339Nano), heartbeat.Format(time.RFC3339Nano), end)
}

// The run directories are the truth: done is never resubmitted; a held
// lock or a fresh heartbeat is running; a stale heartbeat is not.
func TestUpReconcilesRunDirs(t *testing.T) {
	f, cells, fx := setupUp(t, "", 0)
	now := time.Now()
	writeRun(t, f.Out, cells[0].RunID, map[string]string{"result.json": `{"schema": "ptb.result/v1", "verdict": "clean"}`})
	writeRun(t, f.Out, cells[1].RunID, map[string]string{".lock": ""})
	lk, err := os.Open(filepath.Join(f.Out, cells[1].RunID, ".lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	if err := syscall.Flock(int(lk.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	writeRun(t, f.Out, cells[2].RunID, map[string]string{"trace/solve.json": solveJSON(now.Add(-time.Minute), now.Add(-5*time.Second), false)})
	writeRun(t, f.Out, cells[3].RunID, map[string]string{"trace/solve.json": solveJSON(now.Add(-time.Hour), now.Add(-30*time.Minute), false)})
	p := up(t, f, cells, fx)
	want := []string{CellDone, CellRunning, CellRunning, CellIdle}
	for i, r := range p.Rows {
		if r.State != want[i] {
			t.Errorf("%s: state %s (%s), want %s", r.RunID, r.State, r.Why, want[i])
		}
	}
	if got := fx.submitted(); !slices.Equal(got, []string{cells[3].RunID}) {
		t.Errorf("submitted %v, want only the stale run", got)
	}
	if !strings.Contains(p.Rows[1].Why, "run lock held") || !strings.Contains(p.Rows[2].Why, "heartbeat") {
		t.Errorf("why: %q, %q", p.Rows[1].Why, p.Rows[2].Why)
	}
	// Its backend job ended without a result: submitted again, counted.
	fx.set(cells[3].RunID, StateFailed)
	p = up(t, f, cells, fx)
	if len(p.Submitted) != 1 || p.Submitted[0].RunID != cells[3].RunID {
		t.Errorf("resubmitted %+v", p.Submitted)
	}
	n, _ := ReadSubmits(f.Dir())
	if n[cells[3].RunID] != 2 || n[cells[0].RunID] != 0 {
		t.Errorf("submit counts %v", n)
	}
}

func TestUpCaps(t *testing.T) {
	t.Run("max_parallel", func(t *testing.T) {
		f, cells, fx := setupUp(t, "limits: {max_parallel: 3}\n", 0)
		// One runs already (a fresh heartbeat): two more may start.
		writeRun(t, f.Out, cells[0].RunID, map[string]string{"trace/solve.json": solveJSON(time.Now(), time.Now(), false)})
		p := up(t, f, cells, fx)
		if len(p.Submitted) != 2 || p.Rows[3].Action != ActionWait || !strings.Contains(p.Rows[3].Why, "max_parallel 3") {
			t.Errorf("submitted %d; last row %+v", len(p.Submitted), p.Rows[3])
		}
		if fx.submits[0].MaxParallel != 3 {
			t.Errorf("submission's MaxParallel %d", fx.submits[0].MaxParallel)
		}
		// When they end with results, the rest go.
		for _, c := range cells[:3] {
			writeRun(t, f.Out, c.RunID, map[string]string{"result.json": `{}`})
		}
		p = up(t, f, cells, fx)
		if len(p.Submitted) != 1 || p.Submitted[0].RunID != cells[3].RunID {
			t.Errorf("then submitted %+v", p.Submitted)
		}
	})
	t.Run("per agent", func(t *testing.T) {
		f, cells, fx := setupUp(t, "", 1)
		p := up(t, f, cells, fx)
		if len(p.Submitted) != 1 || p.Count(CellIdle) != 4 || !strings.Contains(p.Rows[1].Why, "agent scripted's max_parallel 1") {
			t.Errorf("submitted %d: %+v", len(p.Submitted), p.Rows)
		}
	})
}

// A run past its caps fails for good, and --wait ends.
func TestUpFailsForGood(t *testing.T) {
	f, cells, fx := setupUp(t, "retry: {max_submits: 2}\n", 0)
	os.MkdirAll(filepath.Join(f.Dir(), RequeuesDir), 0o755)
	rq, _ := json.Marshal(Requeues{Timeouts: 3, GaveUp: "max_timeouts 2"})
	os.WriteFile(filepath.Join(f.Dir(), RequeuesDir, cells[0].RunID+".json"), rq, 0o644)
	for _, c := range cells[2:] {
		writeRun(t, f.Out, c.RunID, map[string]string{"result.json": `{}`})
	}
	rounds := 0
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := Wait(ctx, f, fx, cells, UpOptions{Exe: "/bin/true"}, time.Millisecond, func(p *Plan) {
		rounds++
		for _, s := range p.Submitted {
			fx.set(s.RunID, StateFailed) // each job ends without a result
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.Rows[0].State != CellFailed || !strings.Contains(p.Rows[0].Why, "requeue cap hit: max_timeouts 2") {
		t.Errorf("row 0 %+v", p.Rows[0])
	}
	if p.Rows[1].State != CellFailed || p.Rows[1].Submits != 2 || !strings.Contains(p.Rows[1].Why, "submitted 2 times without a result (retry.max_submits 2)") {
		t.Errorf("row 1 %+v", p.Rows[1])
	}
	if got := fx.submitted(); !slices.Equal(got, []string{cells[1].RunID, cells[1].RunID}) {
		t.Errorf("submitted %v", got)
	}
	if rounds != 3 {
		t.Errorf("%d rounds, want 3 (submit, resubmit, give up)", rounds)
	}
}

func TestUpDryRunWritesNothing(t *testing.T) {
	f, cells, fx := setupUp(t, "", 0)
	fx.listErr = fmt.Errorf("scheduler down")
	p, err := Up(context.Background(), f, fx, cells, UpOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(fx.submits) != 0 || p.BackendErr != "scheduler down" || !p.Rows[0].New || p.Rows[0].Action != ActionSubmit {
		t.Errorf("plan %+v", p)
	}
	if _, err := os.Stat(f.Out); !os.IsNotExist(err) {
		t.Errorf("dry run created %s", f.Out)
	}
	// A real up does not go on without the executor's view.
	if _, err := Up(context.Background(), f, fx, cells, UpOptions{}); err == nil || !strings.Contains(err.Error(), "scheduler down") {
		t.Errorf("up with List failing: %v", err)
	}
}

func TestUpTwoAtOnce(t *testing.T) {
	f, cells, fx := setupUp(t, "", 0)
	os.MkdirAll(f.Dir(), 0o755)
	unlock, err := tryLock(filepath.Join(f.Dir(), "up.lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	_, err = Up(context.Background(), f, fx, cells, UpOptions{})
	if err == nil || !strings.Contains(err.Error(), "another `ptb campaign up` is working on") {
		t.Errorf("err = %v", err)
	}
}
