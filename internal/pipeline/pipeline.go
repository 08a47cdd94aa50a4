// Package pipeline runs one job through its stages, prepare -> solve ->
// collect -> audit -> evaluate -> record, persisting each stage's outcome in
// the run directory so that a crashed or interrupted job resumes at the
// stage it lost. It depends on the sandbox, agent, evaluator and auditor
// only through interfaces; the cli package wires the implementations.
package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
	"github.com/ptb-dev/ptb/internal/sandbox"
)

// Evaluator runs the benchmark on the collected final_model.
type Evaluator interface {
	// Evaluate scores req.ModelDir and writes metrics.json and
	// samples.jsonl under req.OutDir. It returns an error when no metrics
	// could be produced.
	Evaluate(ctx context.Context, req EvalRequest) (*result.Evaluation, error)
}

// EvalRequest is what the evaluate stage asks of an Evaluator.
type EvalRequest struct {
	Spec     job.Spec
	ModelDir string // collect/final_model
	OutDir   string // RUN_DIR/eval
	Sandbox  sandbox.Backend
	Progress io.Writer
}

// Auditor checks what the agent did.
type Auditor interface {
	// Audit inspects the run directory after collect. Checks that cannot
	// run must be reported as unverified findings, never as passes.
	Audit(ctx context.Context, dir rundir.Dir, spec job.Spec) (*result.Audit, error)
}

// UsageReader extracts token usage and cost from an agent's raw trace.
type UsageReader interface {
	Usage(ctx context.Context, tracePath string, spec job.Spec) (*result.Usage, error)
}

// ScaffoldFunc returns the scaffold for a job.
type ScaffoldFunc func(spec job.Spec) (agent.Scaffold, error)

// Runner runs jobs. Zero fields get the defaults documented on each.
type Runner struct {
	Registry  *registry.Registry
	Sandbox   sandbox.Backend // required
	Scaffold  ScaffoldFunc    // required
	Evaluator Evaluator       // nil: evaluate is skipped
	Auditor   Auditor         // nil: audit is skipped, the verdict is unverified
	Usage     UsageReader     // nil: usage is recorded as unavailable
	Templates fs.FS           // chat templates copied into workspace/templates; nil: none
	// TemplatesErr says why Templates is nil (prepare's stage reason).
	TemplatesErr error
	// Self is the ptb executable, made visible read-only inside the sandbox
	// (evaluate.py and the scripted agent call it). Default os.Executable().
	Self string
	// Hidden are host paths hidden from the sandbox in addition to the
	// output root (the harness's state, caches with credentials).
	Hidden   []string
	Log      *slog.Logger
	Progress io.Writer // stderr for progress lines; nil: none
	Now      func() time.Time
	Version  string // ptb version for the record
	// RepromptBackoff is the first wait before reprompting an agent whose
	// session was short (default 1 s, doubling up to a minute).
	RepromptBackoff time.Duration
	GPUName         string // the GPU model named in the prompt; "" = Nvidia H100
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Runner) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Manifest is manifest.json: the stage table, rewritten atomically after
// every transition.
type Manifest struct {
	RunID   string                  `json:"run_id"`
	Created string                  `json:"created_at"`
	Updated string                  `json:"updated_at"`
	Stages  map[string]result.Stage `json:"stages"`
}

// Create makes a new run directory for spec under spec.OutRoot and writes
// job.json and the manifest. It returns the directory.
func Create(spec job.Spec, reg *registry.Registry, now time.Time) (rundir.Dir, error) {
	id := job.RunID(spec, reg, now)
	if err := os.MkdirAll(spec.OutRoot, 0o755); err != nil {
		return "", fmt.Errorf("create output root: %w", err)
	}
	// Mkdir, not MkdirAll: two jobs with the same coordinates created in
	// the same second must not share a directory.
	root := filepath.Join(spec.OutRoot, id)
	for i := 2; ; i++ {
		err := os.Mkdir(root, 0o755)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || i > 1000 {
			return "", fmt.Errorf("create run directory: %w", err)
		}
		root = filepath.Join(spec.OutRoot, fmt.Sprintf("%s-%d", id, i))
	}
	id = filepath.Base(root)
	abs, err := filepath.Abs(root)
	if err != nil {
		return "", err
	}
	d := rundir.Dir(abs)
	spec.OutRoot, _ = filepath.Abs(spec.OutRoot)
	if err := d.WriteJSON(rundir.JobFile, spec); err != nil {
		return "", err
	}
	m := Manifest{RunID: id, Created: result.Now(now), Updated: result.Now(now), Stages: map[string]result.Stage{}}
	for _, s := range result.Stages {
		m.Stages[s] = result.Stage{Status: result.StatusPending}
	}
	if err := d.WriteJSON(rundir.ManifestFile, m); err != nil {
		return "", err
	}
	return d, nil
}

// LoadSpec reads job.json.
func LoadSpec(d rundir.Dir) (job.Spec, error) {
	var s job.Spec
	if err := d.ReadJSON(rundir.JobFile, &s); err != nil {
		return s, fmt.Errorf("%s is not a run directory (no readable %s): %w", d, rundir.JobFile, err)
	}
	return s, nil
}

// LoadManifest reads manifest.json.
func LoadManifest(d rundir.Dir) (*Manifest, error) {
	var m Manifest
	if err := d.ReadJSON(rundir.ManifestFile, &m); err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	return &m, nil
}

// run is the state of one Run call.
type run struct {
	r    *Runner
	dir  rundir.Dir
	spec job.Spec
	man  *Manifest
	log  *slog.Logger
}

func (x *run) set(stage string, st result.Stage) error {
	x.man.Stages[stage] = st
	x.man.Updated = result.Now(x.r.now())
	return x.dir.WriteJSON(rundir.ManifestFile, x.man)
}

// Run runs (or resumes) the job in dir: every stage that is not done or
// skipped runs, in order. It returns the record written by the record stage.
func (r *Runner) Run(ctx context.Context, dir rundir.Dir) (*result.Result, error) {
	if r.Sandbox == nil || r.Scaffold == nil {
		return nil, errors.New("pipeline: runner needs a sandbox and a scaffold")
	}
	spec, err := LoadSpec(dir)
	if err != nil {
		return nil, err
	}
	unlock, err := lockRun(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	man, err := LoadManifest(dir)
	if err != nil {
		return nil, err
	}
	x := &run{r: r, dir: dir, spec: spec, man: man, log: r.log().With("run", man.RunID)}
	stages := []struct {
		name string
		fn   func(context.Context) (result.Stage, error)
	}{
		{result.StagePrepare, x.prepare},
		{result.StageSolve, x.solve},
		{result.StageCollect, x.collect},
		{result.StageAudit, x.audit},
		{result.StageEvaluate, x.evaluate},
	}
	for i, s := range stages {
		st := man.Stages[s.name]
		if st.Status == result.StatusDone || st.Status == result.StatusSkipped {
			x.log.Info("stage already complete", "stage", s.name, "status", st.Status)
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// What later stages made came from this stage's old outcome: they
		// run again, and the evaluation does not resume from samples of a
		// model that may since have changed.
		for _, later := range stages[i+1:] {
			if man.Stages[later.name].Status != result.StatusPending {
				if later.name == result.StageEvaluate {
					if err := os.RemoveAll(dir.Path(rundir.EvalDir)); err != nil {
						return nil, err
					}
				}
				if err := x.set(later.name, result.Stage{Status: result.StatusPending}); err != nil {
					return nil, err
				}
			}
		}
		started := result.Now(r.now())
		if st.StartedAt != "" && s.name == result.StageSolve {
			started = st.StartedAt // solve keeps its first start across resumes
		}
		if err := x.set(s.name, result.Stage{Status: result.StatusRunning, StartedAt: started}); err != nil {
			return nil, err
		}
		r.progressf("ptb: %s ...\n", s.name)
		out, err := s.fn(ctx)
		out.StartedAt, out.EndedAt = started, result.Now(r.now())
		if err != nil {
			out.Status, out.Error = result.StatusFailed, err.Error()
		}
		if serr := x.set(s.name, out); serr != nil {
			return nil, serr
		}
		r.progressf("ptb: %s %s%s\n", s.name, out.Status, suffix(out))
		if ctx.Err() != nil {
			return nil, fmt.Errorf("interrupted during %s; resume with: ptb run --resume %s", s.name, dir)
		}
		// A failed prepare leaves nothing to run; later stages still run
		// after a failed solve (an agent's crash still gets collected,
		// audited and recorded).
		if out.Status == result.StatusFailed && s.name == result.StagePrepare {
			break
		}
	}
	return x.record(ctx)
}

// LockFile is held (flock) by the ptb working on a run directory.
const LockFile = ".lock"

// lockRun takes the run directory's lock, or reports that another ptb
// (a retried resume, a scheduler) is already working on it.
func lockRun(dir rundir.Dir) (func(), error) {
	f, err := os.OpenFile(dir.Path(LockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s is in use by another ptb process; wait for it to end (or stop it) before resuming", dir)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

func suffix(s result.Stage) string {
	switch {
	case s.Error != "":
		return ": " + s.Error
	case s.Reason != "":
		return " (" + s.Reason + ")"
	}
	return ""
}

func (r *Runner) progressf(format string, args ...any) {
	if r.Progress != nil {
		fmt.Fprintf(r.Progress, format, args...)
	}
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
