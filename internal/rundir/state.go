package rundir

import (
	"fmt"
	"time"

	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/sandbox"
)

// Manifest is manifest.json: the stage table, rewritten atomically after
// every transition.
type Manifest struct {
	RunID   string                  `json:"run_id"`
	Created string                  `json:"created_at"`
	Updated string                  `json:"updated_at"`
	Stages  map[string]result.Stage `json:"stages"`
}

// ReadManifest reads manifest.json. The error wraps os.ErrNotExist when
// the file is absent.
func (d Dir) ReadManifest() (*Manifest, error) {
	var m Manifest
	if err := d.ReadJSON(ManifestFile, &m); err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	return &m, nil
}

// WriteManifest replaces manifest.json atomically.
func (d Dir) WriteManifest(m *Manifest) error {
	return d.WriteJSON(ManifestFile, m)
}

// SolveState is trace/solve.json: every launch of the agent (segment) with
// its times, so a resumed solve knows how much of the budget is spent.
type SolveState struct {
	BudgetS  float64   `json:"budget_s"`
	Segments []Segment `json:"segments"`
	// Secrets are credential files the scaffold put into the sandbox.
	Secrets []string `json:"secrets,omitempty"`
	// Waited is the time spent waiting between reprompts; like the
	// original's wall-clock timer, it counts against the budget.
	Waited time.Duration `json:"waited_ns,omitempty"`
	// Limits are the resource limits of the last segment and how the
	// sandbox enforced each.
	Limits []result.Limit `json:"limits,omitempty"`
	// GPUs are the GPUs bound into the sandbox, with their UUIDs.
	GPUs []result.GPU `json:"gpus,omitempty"`
}

// Segment is one launch of the agent.
type Segment struct {
	N         int            `json:"n"`
	Kind      string         `json:"kind"` // start | resume | reprompt
	Start     time.Time      `json:"start"`
	Heartbeat time.Time      `json:"heartbeat"` // last time the harness saw it running
	End       *time.Time     `json:"end"`
	Deadline  time.Time      `json:"deadline"`
	EndReason string         `json:"end_reason"`      // exited | deadline | signal | limit | harness_error | interrupted | harness_died
	Limit     string         `json:"limit,omitempty"` // the limit that ended it (memory, pids, disk, files)
	ExitCode  *int           `json:"exit_code"`
	Signal    string         `json:"signal,omitempty"`
	Error     string         `json:"error,omitempty"`
	Handle    sandbox.Handle `json:"handle"`
	// GPUs are the device indices this segment ran with (assigned when the
	// run started; a resumed run may get others).
	GPUs []int `json:"gpus,omitempty"`
}

// Spent is the agent's time so far: closed segments count to their end, a
// segment cut short by a harness crash to its last heartbeat, and the waits
// between reprompts.
func (s *SolveState) Spent() time.Duration {
	d := s.Waited
	for _, g := range s.Segments {
		end := g.Heartbeat
		if g.End != nil {
			end = *g.End
		}
		if end.After(g.Start) {
			d += end.Sub(g.Start)
		}
	}
	return d
}

// ReadSolveState reads trace/solve.json. The error wraps os.ErrNotExist
// when the file is absent (no solve has started).
func (d Dir) ReadSolveState() (SolveState, error) {
	var st SolveState
	err := d.ReadJSON(SolveStateFile, &st)
	return st, err
}

// WriteSolveState replaces trace/solve.json atomically.
func (d Dir) WriteSolveState(st *SolveState) error {
	return d.WriteJSON(SolveStateFile, st)
}
