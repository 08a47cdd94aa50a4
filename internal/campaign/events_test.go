package campaign

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/rundir"
	"github.com/ptb-dev/ptb/internal/runevents"
)

func eventLines(t *testing.T, evs ...runevents.Event) string {
	t.Helper()
	var b strings.Builder
	for _, ev := range evs {
		ev.V = runevents.Version
		j, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// A status reads the run's events.jsonl when there is one: the latest
// event, the limit that stopped the latest segment, and, without
// solve.json, the solve's heartbeat.
func TestReadRunEvents(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	at := func(ago time.Duration) time.Time { return now.Add(-ago) }
	ev := func(typ runevents.Type, ago time.Duration, mod ...func(*runevents.Event)) runevents.Event {
		e := runevents.Event{Type: typ, Time: at(ago)}
		for _, m := range mod {
			m(&e)
		}
		return e
	}
	seg := func(n int) func(*runevents.Event) { return func(e *runevents.Event) { e.Segment = n } }
	limit := func(l string) func(*runevents.Event) { return func(e *runevents.Event) { e.Limit = l } }
	tests := []struct {
		name      string
		files     map[string]string
		lastEvent time.Time
		limit     string
		limitSeg  int
		heartbeat time.Time
		open      bool
	}{
		{name: "no events: solve.json only",
			files:     map[string]string{rundir.SolveStateFile: solveJSON(at(time.Hour), at(time.Minute), false)},
			heartbeat: at(time.Minute), open: true},
		{name: "limit hit in the latest segment",
			files: map[string]string{rundir.SolveStateFile: solveJSON(at(time.Hour), at(30*time.Minute), true), rundir.EventsFile: eventLines(t,
				ev(runevents.StageStarted, time.Hour), ev(runevents.SegmentStarted, time.Hour, seg(1)), ev(runevents.LimitHit, 30*time.Minute, seg(1), limit("memory")),
				ev(runevents.SegmentEnded, 30*time.Minute, seg(1)), ev(runevents.StageEnded, 30*time.Minute), ev(runevents.StageStarted, 29*time.Minute))},
			lastEvent: at(29 * time.Minute), limit: "memory", limitSeg: 1, heartbeat: at(30 * time.Minute)},
		{name: "a later segment clears an earlier limit",
			files: map[string]string{rundir.EventsFile: eventLines(t,
				ev(runevents.SegmentStarted, time.Hour, seg(1)), ev(runevents.LimitHit, 50*time.Minute, seg(1), limit("pids")), ev(runevents.SegmentEnded, 50*time.Minute, seg(1)),
				ev(runevents.SegmentStarted, 40*time.Minute, seg(2)), ev(runevents.Heartbeat, 2*time.Minute, seg(2)))},
			lastEvent: at(2 * time.Minute), heartbeat: at(2 * time.Minute), open: true},
		{name: "events only: the heartbeat comes from them, a cut line is skipped",
			files: map[string]string{rundir.EventsFile: eventLines(t,
				ev(runevents.SegmentStarted, time.Hour, seg(3)), ev(runevents.Heartbeat, time.Minute, seg(3))) + `{"type":"heartbeat","time":"` + now.Format(time.RFC3339)},
			lastEvent: at(time.Minute), heartbeat: at(time.Minute), open: true},
		{name: "events only, segment ended",
			files: map[string]string{rundir.EventsFile: eventLines(t,
				ev(runevents.SegmentStarted, time.Hour, seg(1)), ev(runevents.SegmentEnded, 10*time.Minute, seg(1)))},
			lastEvent: at(10 * time.Minute), heartbeat: at(10 * time.Minute)},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			id := "r" + itoa(i)
			writeRun(t, root, id, tt.files)
			v := ReadRun(root, Entry{Job: Job{RunID: id}})
			if !v.LastEvent.Equal(tt.lastEvent) || v.Limit != tt.limit || v.LimitSeg != tt.limitSeg || !v.Heartbeat.Equal(tt.heartbeat) || v.SolveOpen != tt.open {
				t.Errorf("got last event %v, limit %q seg %d, heartbeat %v open %v\nwant last event %v, limit %q seg %d, heartbeat %v open %v",
					v.LastEvent, v.Limit, v.LimitSeg, v.Heartbeat, v.SolveOpen, tt.lastEvent, tt.limit, tt.limitSeg, tt.heartbeat, tt.open)
			}
		})
	}
}

// Triage names a limit the sandbox stopped the agent at, and a run whose
// solve heartbeat is old but which moved on to a later stage is not stuck.
func TestTriageFromEvents(t *testing.T) {
	now := time.Now()
	running := &Status{BackendID: "7", State: StateRunning}
	tests := []struct {
		name string
		view RunView
		want []string
	}{
		{"stale heartbeat, no events: stuck", RunView{Exists: true, Heartbeat: now.Add(-30 * time.Minute)},
			[]string{TriageStuck + ": backend job 7 runs, but the run has shown no progress since"}},
		{"stale heartbeat, stale events: stuck", RunView{Exists: true, Heartbeat: now.Add(-30 * time.Minute), LastEvent: now.Add(-20 * time.Minute)},
			[]string{TriageStuck + ": backend job 7 runs, but the run has shown no progress since " + now.Add(-20*time.Minute).UTC().Format(time.RFC3339)}},
		{"stale heartbeat, a recent stage: not stuck", RunView{Exists: true, Heartbeat: now.Add(-30 * time.Minute), LastEvent: now.Add(-time.Minute)}, nil},
		{"limit hit", RunView{Exists: true, Locked: true, Limit: "memory", LimitSeg: 2},
			[]string{TriageLimit + ": the sandbox stopped the agent at its memory limit (solve segment 2); if the task needs more, raise it with --limit memory=VALUE in run.args"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			row := PlanRow{Cell: Cell{RunID: "r", Kind: KindRun}, State: CellRunning, Backend: running, View: tt.view}
			got := Triage(TriageInput{Row: row, Root: t.TempDir(), Now: now})
			if len(got) != len(tt.want) {
				t.Fatalf("triage %q, want %d line(s) %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("line %d %q, want prefix %q", i, got[i], w)
				}
			}
		})
	}
}
