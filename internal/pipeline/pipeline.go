// Package pipeline runs one job through its stages, prepare -> solve ->
// collect -> audit -> evaluate -> record, persisting each stage's outcome in
// the run directory so that a crashed or interrupted job resumes at the
// stage it lost. It depends on the sandbox, agent, evaluator and auditor
// only through interfaces; internal/jobrun wires the implementations.
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
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
	"github.com/ptb-dev/ptb/internal/runevents"
	"github.com/ptb-dev/ptb/internal/sandbox"
)

// Evaluator runs the benchmark on the collected final_model.
type Evaluator interface {
	// Evaluate scores req.ModelDir and writes metrics.json and
	// samples.jsonl under req.OutDir. It returns an error when no metrics
	// could be produced.
	Evaluate(ctx context.Context, req EvalRequest) (*result.Evaluation, error)
}

// EvalRequest is what the evaluate stage asks of an Evaluator: the job's
// benchmark, base model, evaluation settings and devices, not the whole
// job.
type EvalRequest struct {
	Benchmark string       // registry name
	BaseModel string       // hub id: the chat template follows it
	Eval      job.EvalSpec // backend, version, data, limit, responses
	GPUs      []int        // the devices this start of the run uses
	ModelDir  string       // collect/final_model
	OutDir    string       // RUN_DIR/eval
	Sandbox   sandbox.Backend
	Progress  io.Writer
}

// Auditor checks what the agent did.
type Auditor interface {
	// Audit inspects the run directory after collect. Checks that cannot
	// run must be reported as unverified findings, never as passes.
	Audit(ctx context.Context, req AuditRequest) (*result.Audit, error)
}

// AuditRequest is what the audit stage gives an Auditor: the run
// directory and the few parts of the job the checks read.
type AuditRequest struct {
	Dir       rundir.Dir
	Benchmark string // registry name
	BaseModel string // hub id
	// Registry is the job's registry override file ("": the built-in).
	Registry string
	// DataDir is the evaluation's data directory (the test sets the
	// contamination scan reads; "": the default data-location rule).
	DataDir string
	// OutRoot is the output root, untrusted: run directories the agent
	// could have written.
	OutRoot string
	Judge   job.JudgeSpec // the LLM judge (runs only with an endpoint)
}

// UsageReader extracts token usage and cost from an agent's raw trace.
type UsageReader interface {
	Usage(ctx context.Context, req UsageRequest) (*result.Usage, error)
}

// UsageRequest is what the record stage gives a UsageReader.
type UsageRequest struct {
	Agent   string          // registry name: the trace's format
	Model   string          // the agent's model (codex MODEL:EFFORT)
	Network sandbox.Network // under the gateway, its meter is the source
	Trace   string          // RUN_DIR/trace/agent.jsonl
	// GatewayLog is the gateway's LLM log (RUN_DIR/gateway/llm.jsonl).
	GatewayLog string
}

// ScaffoldFunc returns the scaffold for a job's agent.
type ScaffoldFunc func(req ScaffoldRequest) (agent.Scaffold, error)

// ScaffoldRequest is what picks and configures a job's agent scaffold.
type ScaffoldRequest struct {
	Agent string // registry name
	Model string // --agent-model
	// Script is the scripted agent's script file (scripted agent only).
	Script string
	// Credentials is the subscription credentials file ("": none).
	Credentials string
	Network     sandbox.Network // under the gateway the login stays outside
}

// Runner runs jobs. Zero fields get the defaults documented on each.
type Runner struct {
	Registry  *registry.Registry
	Sandbox   sandbox.Backend // required
	Scaffold  ScaffoldFunc    // required
	Evaluator Evaluator       // nil: evaluate is skipped
	Auditor   Auditor         // nil: audit is skipped, the verdict is unverified
	Usage     UsageReader     // nil: usage is recorded as unavailable
	Gateway   Gateway         // the run's gateway; required for sandbox.NetworkGateway
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
	// LookupEnv is the harness's environment, as os.LookupEnv: the sandbox
	// gets DefaultPassEnv and the job's --env NAME variables from it. nil:
	// none of them (the pipeline never reads the process environment).
	LookupEnv func(string) (string, bool)
	// GPUs, when not nil, are the devices this start of the run uses in
	// place of job.json's: devices are assigned when a run starts (a GPU
	// pool or a scheduler picks them), so a resumed run may get others.
	// Each solve segment records the devices it used. nil: job.json's.
	GPUs []int
	// Events receives the run's typed events (stage, segment, heartbeat,
	// limit, verdict, result), from more than one goroutine; nil: none.
	// The cli wires RUN_DIR/events.jsonl and the status line.
	Events runevents.Handler
}

// auditRequest, usageRequest, scaffoldRequest and evalRequest are the
// parts of the job each stage implementation reads.
func (x *run) auditRequest() AuditRequest {
	s := x.spec
	return AuditRequest{Dir: x.dir, Benchmark: s.Benchmark, BaseModel: s.BaseModel, Registry: s.Registry,
		DataDir: s.Eval.DataDir, OutRoot: s.OutRoot, Judge: s.Judge}
}

func (x *run) usageRequest() UsageRequest {
	s := x.spec
	return UsageRequest{Agent: s.Agent, Model: s.AgentModel, Network: s.Network,
		Trace: x.dir.Path(rundir.TraceRaw), GatewayLog: x.dir.Path(rundir.GatewayLLMLog)}
}

func (x *run) scaffoldRequest() ScaffoldRequest {
	s := x.spec
	return ScaffoldRequest{Agent: s.Agent, Model: s.AgentModel, Script: s.Script, Credentials: s.Credentials, Network: s.Network}
}

func (x *run) evalRequest() EvalRequest {
	s := x.spec
	return EvalRequest{Benchmark: s.Benchmark, BaseModel: s.BaseModel, Eval: s.Eval, GPUs: slices.Clone(s.GPUs),
		ModelDir: x.dir.Path(rundir.FinalModel), OutDir: x.dir.Path(rundir.EvalDir),
		Sandbox: x.r.Sandbox, Progress: x.r.Progress}
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Runner) lookupEnv(k string) (string, bool) {
	if r.LookupEnv == nil {
		return "", false
	}
	return r.LookupEnv(k)
}

func (r *Runner) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
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
	if err := writeNew(d, id, spec, now); err != nil {
		return "", err
	}
	return d, nil
}

// writeNew writes job.json and a manifest with every stage pending.
func writeNew(d rundir.Dir, id string, spec job.Spec, now time.Time) error {
	spec.OutRoot, _ = filepath.Abs(spec.OutRoot)
	if err := d.WriteJSON(rundir.JobFile, spec); err != nil {
		return err
	}
	m := rundir.Manifest{RunID: id, Created: result.Now(now), Updated: result.Now(now), Stages: map[string]result.Stage{}}
	for _, s := range result.Stages {
		m.Stages[s] = result.Stage{Status: result.StatusPending}
	}
	return d.WriteManifest(&m)
}

// validRunID is what a caller-chosen run id may be: one path element,
// file- and label-safe.
var validRunID = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$`) })

// CheckRunID reports whether id can name a run directory.
func CheckRunID(id string) error {
	if !validRunID().MatchString(id) {
		return fmt.Errorf("run id %q: want 1-200 letters, digits, '.', '_' or '-', starting with a letter or digit", id)
	}
	return nil
}

// CreateWithID makes the run directory spec.OutRoot/id for spec, unless it
// already exists. The directory appears whole (job.json and manifest
// written in a hidden sibling, then renamed into place), so of two callers
// racing to create the same id one creates it and the other finds it
// made; created says which this caller was.
func CreateWithID(spec job.Spec, id string, now time.Time) (d rundir.Dir, created bool, err error) {
	if err := CheckRunID(id); err != nil {
		return "", false, err
	}
	root, err := filepath.Abs(spec.OutRoot)
	if err != nil {
		return "", false, err
	}
	d = rundir.Dir(filepath.Join(root, id))
	if _, err := os.Lstat(string(d)); err == nil {
		return d, false, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", false, fmt.Errorf("create output root: %w", err)
	}
	tmp, err := os.MkdirTemp(root, "."+id+".creating-")
	if err != nil {
		return "", false, fmt.Errorf("create run directory: %w", err)
	}
	defer os.RemoveAll(tmp) // gone after the rename; left over only on error
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", false, err
	}
	if err := writeNew(rundir.Dir(tmp), id, spec, now); err != nil {
		return "", false, err
	}
	// rename(2) of a directory fails when the target exists and is not
	// empty: the loser of a race finds the winner's run.
	if err := os.Rename(tmp, string(d)); err != nil {
		if _, serr := os.Stat(d.Path(rundir.JobFile)); serr == nil {
			return d, false, nil
		}
		return "", false, fmt.Errorf("create run directory %s: %w", d, err)
	}
	return d, true, nil
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
func LoadManifest(d rundir.Dir) (*rundir.Manifest, error) {
	return d.ReadManifest()
}

// run is the state of one Run call.
type run struct {
	r    *Runner
	dir  rundir.Dir
	spec job.Spec
	man  *rundir.Manifest
	log  *slog.Logger
	// During the solve under the gateway network: the gateway and how
	// the sandbox reaches it.
	gw   GatewaySession
	link *sandbox.Gateway
	// eventErr logs the first event the handler failed to take.
	eventErr sync.Once
}

func (x *run) set(stage string, st result.Stage) error {
	x.man.Stages[stage] = st
	x.man.Updated = result.Now(x.r.now())
	return x.dir.WriteManifest(x.man)
}

// Run runs (or resumes) the job in dir: every stage that is not done or
// skipped runs, in order. It returns the record written by the record stage.
func (r *Runner) Run(ctx context.Context, dir rundir.Dir) (*result.Result, error) {
	if r.Sandbox == nil || r.Scaffold == nil {
		return nil, errors.New("pipeline: runner needs a sandbox and a scaffold")
	}
	unlock, err := dir.Lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	return r.RunHeld(ctx, dir)
}

// RunHeld is Run for a caller that already holds the run directory's lock
// (rundir.Dir.Lock): it takes it before anything else touches the directory.
func (r *Runner) RunHeld(ctx context.Context, dir rundir.Dir) (*result.Result, error) {
	if r.Sandbox == nil || r.Scaffold == nil {
		return nil, errors.New("pipeline: runner needs a sandbox and a scaffold")
	}
	spec, err := LoadSpec(dir)
	if err != nil {
		return nil, err
	}
	if r.GPUs != nil {
		spec.GPUs = slices.Clone(r.GPUs)
	}
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
		x.emit(runevents.Event{Type: runevents.StageStarted, Stage: s.name})
		out, err := s.fn(ctx)
		out.StartedAt, out.EndedAt = started, result.Now(r.now())
		if err != nil {
			out.Status, out.Error = result.StatusFailed, err.Error()
		}
		if serr := x.set(s.name, out); serr != nil {
			return nil, serr
		}
		x.emit(runevents.Event{Type: runevents.StageEnded, Stage: s.name, Status: out.Status, Error: out.Error, Reason: out.Reason})
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
