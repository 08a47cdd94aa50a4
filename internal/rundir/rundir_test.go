package rundir

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/result"
)

// TestLock: a second Lock of a held run is ErrBusy and names the run; once
// released, the run can be locked again.
func TestLock(t *testing.T) {
	d := Dir(t.TempDir())
	unlock, err := d.Lock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Lock(); !errors.Is(err, ErrBusy) {
		t.Fatalf("second lock: %v, want ErrBusy", err)
	}
	unlock()
	again, err := d.Lock()
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	again()
	if _, err := Dir("/nonexistent/run").Lock(); err == nil || errors.Is(err, ErrBusy) {
		t.Errorf("lock of a missing directory: %v, want an open error", err)
	}
}

// TestSpent: closed segments count to their end, an open one (a dead
// harness) to its last heartbeat, plus the waits between reprompts; a
// segment whose end is before its start counts nothing.
func TestSpent(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { x := t0.Add(d); return &x }
	cases := []struct {
		name string
		st   SolveState
		want time.Duration
	}{
		{"none", SolveState{}, 0},
		{"closed", SolveState{Segments: []Segment{{Start: t0, Heartbeat: t0.Add(time.Minute), End: at(90 * time.Second)}}}, 90 * time.Second},
		{"open: to the heartbeat", SolveState{Segments: []Segment{{Start: t0, Heartbeat: t0.Add(time.Minute)}}}, time.Minute},
		{"waits count", SolveState{Waited: 5 * time.Second, Segments: []Segment{{Start: t0, End: at(time.Minute)}, {Start: t0.Add(2 * time.Minute), Heartbeat: t0.Add(3 * time.Minute)}}}, 2*time.Minute + 5*time.Second},
		{"end before start", SolveState{Segments: []Segment{{Start: t0, End: at(-time.Minute)}}}, 0},
	}
	for _, c := range cases {
		if got := c.st.Spent(); got != c.want {
			t.Errorf("%s: Spent = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestStateFiles: the manifest and the solve state come back as written;
// an absent one is os.ErrNotExist, an unreadable one an error naming the
// file.
func TestStateFiles(t *testing.T) {
	d := Dir(t.TempDir())
	if _, err := d.ReadSolveState(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("absent solve state: %v, want os.ErrNotExist", err)
	}
	if _, err := d.ReadManifest(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("absent manifest: %v, want os.ErrNotExist", err)
	}
	m := &Manifest{RunID: "r", Stages: map[string]result.Stage{result.StageSolve: {Status: result.StatusRunning}}}
	if err := d.WriteManifest(m); err != nil {
		t.Fatal(err)
	}
	got, err := d.ReadManifest()
	if err != nil || got.RunID != "r" || got.Stages[result.StageSolve].Status != result.StatusRunning {
		t.Errorf("manifest read back %+v, %v", got, err)
	}
	st := &SolveState{BudgetS: 60, Waited: time.Second, Segments: []Segment{{N: 1, Kind: "start", GPUs: []int{1}}}}
	if err := d.WriteSolveState(st); err != nil {
		t.Fatal(err)
	}
	back, err := d.ReadSolveState()
	if err != nil || back.BudgetS != 60 || back.Waited != time.Second || len(back.Segments) != 1 || back.Segments[0].GPUs[0] != 1 {
		t.Errorf("solve state read back %+v, %v", back, err)
	}
	if err := os.WriteFile(d.Path(SolveStateFile), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadSolveState(); err == nil || errors.Is(err, os.ErrNotExist) {
		t.Errorf("truncated solve state: %v, want a decode error", err)
	}
}
