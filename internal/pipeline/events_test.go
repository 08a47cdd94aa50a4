package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/ptb-dev/ptb/internal/pipeline"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
	"github.com/ptb-dev/ptb/internal/runevents"
	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/none"
)

type auditFunc func() (*result.Audit, error)

func (f auditFunc) Audit(context.Context, pipeline.AuditRequest) (*result.Audit, error) { return f() }

// limitBackend is the none backend whose processes end "at a limit": the
// sandbox's report of a limit kill, without a host that enforces it.
type limitBackend struct{ sandbox.Backend }

func (b limitBackend) Start(ctx context.Context, spec sandbox.Spec) (sandbox.Process, error) {
	p, err := b.Backend.Start(ctx, spec)
	return limitProc{p}, err
}

type limitProc struct{ sandbox.Process }

func (p limitProc) Wait(ctx context.Context) (sandbox.Exit, error) {
	ex, err := p.Process.Wait(ctx)
	ex.Limit = sandbox.LimitMemory
	return ex, err
}

// syncBuffer is a progress writer the heartbeat goroutine may write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// readEvents reads RUN_DIR/events.jsonl; every line must decode.
func readEvents(t *testing.T, d rundir.Dir) []runevents.Event {
	t.Helper()
	var evs []runevents.Event
	err := runevents.ReadFile(d.Path("events.jsonl"), func(ev runevents.Event, line int, lineErr error) error {
		if lineErr != nil {
			return lineErr
		}
		evs = append(evs, ev)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func types(evs []runevents.Event) string {
	var s []string
	for _, ev := range evs {
		s = append(s, string(ev.Type)+" "+ev.Stage)
	}
	return strings.Join(s, "\n")
}

// Each stage emits typed events to the runner's handler (here the file
// writer the cli wires), and the progress lines are rendered from them.
func TestRunEmitsEvents(t *testing.T) {
	tests := []struct {
		name    string
		backend sandbox.Backend
		want    []string // event types and stages, in order
		check   func(t *testing.T, evs []runevents.Event)
	}{
		{
			name:    "normal",
			backend: none.New(),
			want: []string{"stage_started prepare", "stage_ended prepare", "stage_started solve", "segment_started ", "segment_ended ",
				"stage_ended solve", "stage_started collect", "stage_ended collect", "stage_started audit", "verdict ", "stage_ended audit",
				"stage_started evaluate", "stage_ended evaluate", "result_recorded "},
			check: func(t *testing.T, evs []runevents.Event) {
				seg := evs[3]
				if seg.Segment != 1 || seg.Kind != "start" || seg.BudgetS != 60 || seg.RemainingS == nil || *seg.RemainingS > 60 || seg.Deadline == nil {
					t.Errorf("segment_started %+v", seg)
				}
				end := evs[4]
				if end.Segment != 1 || end.EndReason != result.EndExited || end.ExitCode == nil || *end.ExitCode != 0 {
					t.Errorf("segment_ended %+v", end)
				}
				if v := evs[9]; v.Verdict != result.VerdictFlagged || fmt.Sprint(v.Flags) != "[T]" {
					t.Errorf("verdict %+v", v)
				}
				if r := evs[13]; r.Verdict != result.VerdictFlagged || r.Score != nil {
					t.Errorf("result_recorded %+v", r)
				}
				if ev := evs[12]; ev.Status != result.StatusSkipped || ev.Reason == "" {
					t.Errorf("evaluate ended %+v", ev)
				}
			},
		},
		{
			name:    "limit hit",
			backend: limitBackend{none.New()},
			want: []string{"stage_started prepare", "stage_ended prepare", "stage_started solve", "segment_started ", "limit_hit ", "segment_ended ",
				"stage_ended solve", "stage_started collect", "stage_ended collect", "stage_started audit", "verdict ", "stage_ended audit",
				"stage_started evaluate", "stage_ended evaluate", "result_recorded "},
			check: func(t *testing.T, evs []runevents.Event) {
				if l := evs[4]; l.Limit != sandbox.LimitMemory || l.Segment != 1 {
					t.Errorf("limit_hit %+v", l)
				}
				if e := evs[5]; e.EndReason != result.EndLimit || e.Limit != sandbox.LimitMemory {
					t.Errorf("segment_ended %+v", e)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, d := newJob(t, 60, normalScript)
			w, err := runevents.Open(d.Path("events.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			var progress syncBuffer
			r := newRunner(tt.backend)
			r.Scaffold = scriptedScaffold
			r.Events, r.Progress = w, &progress
			r.Auditor = auditFunc(func() (*result.Audit, error) {
				return &result.Audit{Verdict: result.VerdictFlagged, Flags: []string{"T"}}, nil
			})
			if _, err := r.Run(context.Background(), d); err != nil {
				t.Fatal(err)
			}
			w.Close()
			evs := readEvents(t, d)
			if got, want := types(evs), strings.Join(tt.want, "\n"); got != want {
				t.Fatalf("events\n got:\n%s\nwant:\n%s", got, want)
			}
			for i, ev := range evs {
				if ev.V != runevents.Version || ev.Time.IsZero() || (i > 0 && ev.Time.Before(evs[i-1].Time)) {
					t.Errorf("event %d %+v: want version %d and a time after the previous one", i, ev, runevents.Version)
				}
			}
			tt.check(t, evs)
			// The progress lines are the ones ptb printed before events.
			p := progress.String()
			for _, line := range []string{"ptb: prepare ...\n", "ptb: solve ...\n", "ptb: audit done (verdict flagged)\n", "ptb: evaluate skipped ("} {
				if !strings.Contains(p, line) {
					t.Errorf("progress lacks %q:\n%s", line, p)
				}
			}
			if limit := strings.Contains(p, "ptb: solve: the agent hit its memory limit and was stopped\n"); limit != (tt.name == "limit hit") {
				t.Errorf("limit progress line shown %v:\n%s", limit, p)
			}
		})
	}
}

// A handler that fails never stops the run: the record is written, the
// progress lines still appear, and the failure is logged once.
func TestRunGoesOnWhenEventsFail(t *testing.T) {
	_, d := newJob(t, 60, normalScript)
	var progress, logs syncBuffer
	r := newRunner(none.New())
	r.Scaffold = scriptedScaffold
	r.Progress = &progress
	r.Log = slog.New(slog.NewTextHandler(&logs, nil))
	calls := 0
	r.Events = runevents.HandlerFunc(func(runevents.Event) error { calls++; return errors.New("disk full") })
	res, err := r.Run(context.Background(), d)
	if err != nil || res == nil {
		t.Fatalf("run: %v", err)
	}
	validate(t, d)
	if calls < 10 {
		t.Errorf("handler called %d times", calls)
	}
	if n := strings.Count(logs.String(), "disk full"); n != 1 {
		t.Errorf("failure logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(progress.String(), "ptb: solve done (agent exited with code 0)") {
		t.Errorf("progress:\n%s", progress.String())
	}
}
