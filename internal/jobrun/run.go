package jobrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ptb-dev/ptb/internal/agent/cliutil"
	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/pipeline"
	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
	"github.com/ptb-dev/ptb/internal/runevents"
)

// Start is one start of a run, as `ptb run` was asked for it: create a run
// (Spec), create or resume the run named RunID, or resume (or redo stages
// of) the run in Resume.
type Start struct {
	// Spec is the job from the command line, normalized against
	// Config.Registry. Unused with Resume: the run keeps its job.json.
	Spec job.Spec
	// Resume is the run directory of an existing run to resume.
	Resume string
	// RunID names the run directory Spec.OutRoot/RunID: created by the
	// first start, resumed by every later one (the job must be the same).
	RunID string
	// RegistryFile replaces the registry file of a resumed run's job ("":
	// job.json's).
	RegistryFile string
	// GPUs are this start's devices in place of job.json's; nil: job.json's.
	GPUs []int
	// Redo are the stages of the resumed run to rerun (with the stages
	// after them); ApplyRedo copies the settings given for them into its
	// job.
	Redo      []string
	ApplyRedo func(*job.Spec)
	// Preflight checks the job before anything is made for it; nil: none.
	Preflight func(context.Context, job.Spec, *registry.Registry) error
	// Watch starts watching a run while its stages run (progress line,
	// system monitor) and returns the handler of the run's events that
	// drives it and what stops it; nil: nothing watches.
	Watch func(context.Context, rundir.Dir, job.Spec) (runevents.Handler, func())
}

// Outcome is what a start did: the run directory and, when the run got as
// far as its record, the record.
type Outcome struct {
	Dir    rundir.Dir
	Result *result.Result
}

// Run carries out one start of a run. A run whose lock another process
// holds returns an error wrapping rundir.ErrBusy, with Dir set; a
// finished run is left as it is and its record returned.
func Run(ctx context.Context, cfg Config, st Start) (Outcome, error) {
	preflight := func(spec job.Spec, reg *registry.Registry) error {
		if st.Preflight == nil {
			return nil
		}
		return st.Preflight(ctx, spec, reg)
	}
	var dir rundir.Dir
	spec, reg := st.Spec, cfg.Registry
	var err error
	if st.Resume != "" {
		abs, err := filepath.Abs(st.Resume)
		if err != nil {
			return Outcome{}, err
		}
		dir = rundir.Dir(abs)
		if spec, err = pipeline.LoadSpec(dir); err != nil {
			return Outcome{}, usagef("--resume: %v", err)
		}
		if st.RegistryFile != "" {
			spec.Registry = st.RegistryFile
		}
		if reg, err = registry.Load(spec.Registry); err != nil {
			return Outcome{}, err
		}
		if len(st.Redo) > 0 {
			if st.ApplyRedo != nil {
				st.ApplyRedo(&spec)
			}
			if err := spec.Normalize(reg); err != nil {
				return Outcome{}, usagef("%v", err)
			}
			if err := CheckDataDir(spec.Eval.DataDir); err != nil {
				return Outcome{}, err
			}
			rec, err := pipeline.Redo(dir, st.Redo, spec, time.Now())
			if err != nil {
				if errors.Is(err, rundir.ErrBusy) {
					return Outcome{Dir: dir}, err
				}
				return Outcome{}, usagef("--redo: %v", err)
			}
			fmt.Fprintf(cfg.Stderr, "ptb: redoing %s of %s (%d setting(s) changed; see %s)\n", strings.Join(rec.Stages, ", "), dir, len(rec.Changes), rundir.RedoFile)
		} else if res, done := finishedRun(dir); done {
			// Nothing to do: a finished run is not rewritten.
			fmt.Fprintf(cfg.Stderr, "ptb: %s is finished; nothing to resume (rerun stages with --redo STAGE)\n", dir)
			return Outcome{Dir: dir, Result: res}, nil
		} else {
			fmt.Fprintf(cfg.Stderr, "ptb: resuming %s\n", dir)
		}
		if st.GPUs != nil {
			spec.GPUs = st.GPUs
			if err := preflight(spec, reg); err != nil {
				return Outcome{}, err
			}
		}
	} else {
		if st.RunID != "" {
			root, err := filepath.Abs(spec.OutRoot)
			if err != nil {
				return Outcome{}, err
			}
			if d := rundir.Dir(filepath.Join(root, st.RunID)); exists(string(d)) {
				if spec, err = sameJob(d, spec, st.GPUs); err != nil {
					return Outcome{}, err
				}
				dir = d
				if res, done := finishedRun(dir); done {
					fmt.Fprintf(cfg.Stderr, "ptb: %s is finished; nothing to resume\n", dir)
					return Outcome{Dir: dir, Result: res}, nil
				}
				fmt.Fprintf(cfg.Stderr, "ptb: resuming %s\n", dir)
			}
		}
		// Under the gateway the real key goes to the run's gateway only;
		// without one the agent could not work, and the preflight's
		// credentials check says which variable to set.
		if err := preflight(spec, reg); err != nil {
			return Outcome{}, err
		}
	}
	// The runner (sandbox check included) is made before the run
	// directory: a run that cannot start leaves nothing behind.
	cfg.Registry = reg
	r, err := NewRunner(ctx, cfg, spec)
	if err != nil {
		return Outcome{}, err
	}
	r.GPUs = st.GPUs
	switch {
	case dir == "" && st.RunID != "":
		d, created, err := pipeline.CreateWithID(spec, st.RunID, time.Now())
		if err != nil {
			return Outcome{}, err
		}
		if !created {
			// Another start made it meanwhile: the same job resumes (or is busy).
			if _, err := sameJob(d, spec, st.GPUs); err != nil {
				return Outcome{}, err
			}
			fmt.Fprintf(cfg.Stderr, "ptb: resuming %s (created by another start meanwhile)\n", d)
		} else {
			fmt.Fprintf(cfg.Stderr, "ptb: run directory %s\n", d)
		}
		dir = d
	case dir == "":
		if dir, err = pipeline.Create(spec, reg, time.Now()); err != nil {
			return Outcome{}, err
		}
		fmt.Fprintf(cfg.Stderr, "ptb: run directory %s\n", dir)
	}
	// The lock comes first: nothing (monitor, status line) touches a run
	// directory that another ptb is working on.
	unlock, err := dir.Lock()
	if errors.Is(err, rundir.ErrBusy) {
		return Outcome{Dir: dir}, err
	}
	if err != nil {
		return Outcome{}, err
	}
	defer unlock()
	if spec.Eval.Backend == "vllm" {
		if _, err := cliutil.LookPath("vllm", cfg.getenv("PATH")); err != nil {
			fmt.Fprintf(cfg.Stderr, "ptb: warning: vllm is not on PATH, so the evaluate stage will fail; install vLLM, or pass --eval-backend hf|url, or finish the run later with ptb run --resume %s\n", dir)
		}
	}
	events, closeEvents := openEvents(cfg.Stderr, dir)
	defer closeEvents()
	var watch runevents.Handler
	stop := func() {}
	if st.Watch != nil {
		watch, stop = st.Watch(ctx, dir, spec)
	}
	r.Events = runevents.Multi(events, watch)
	res, err := r.RunHeld(ctx, dir)
	stop()
	if err != nil {
		return Outcome{}, err
	}
	return Outcome{Dir: dir, Result: res}, nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// sameJob checks that spec (from the command line) is the job the run in
// d was created with, and returns the stored spec with this start's GPUs.
func sameJob(d rundir.Dir, spec job.Spec, gpus []int) (job.Spec, error) {
	stored, err := pipeline.LoadSpec(d)
	if err != nil {
		return spec, usagef("--run-id: %s exists but %v; move it aside or pick another id", d, err)
	}
	if stored.Hash() != spec.Hash() {
		var fields []string
		for _, c := range pipeline.SpecDiff(stored, spec) {
			fields = append(fields, fmt.Sprintf("%s (stored %s, given %s)", c.Field, jsonValue(c.Old), jsonValue(c.New)))
		}
		return spec, usagef("--run-id %s: the run in %s was created for another job; differing fields: %s. Start it with the flags it was created with (see %s), or pick another run id",
			filepath.Base(string(d)), d, strings.Join(fields, "; "), d.Path(rundir.JobFile))
	}
	stored.GPUs = gpus
	return stored, nil
}

func jsonValue(v any) string {
	if v == nil {
		return "unset"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// finishedRun returns the record of a run whose every stage is done or
// skipped.
func finishedRun(dir rundir.Dir) (*result.Result, bool) {
	m, err := pipeline.LoadManifest(dir)
	if err != nil {
		return nil, false
	}
	for _, s := range result.Stages {
		if st := m.Stages[s].Status; st != result.StatusDone && st != result.StatusSkipped {
			return nil, false
		}
	}
	res, err := result.Read(dir.Path(rundir.ResultFile))
	if err != nil {
		return nil, false
	}
	return res, true
}

// openEvents opens the run's events file (RUN_DIR/events.jsonl); the
// pipeline's events go there. A file that cannot be opened is a warning on
// w: the run goes on without it.
func openEvents(w io.Writer, dir rundir.Dir) (runevents.Handler, func()) {
	f, err := runevents.Open(dir.Path(rundir.EventsFile))
	if err != nil {
		fmt.Fprintf(w, "ptb: warning: the run's events are not recorded: %v\n", err)
		return nil, func() {}
	}
	return f, func() {
		if err := f.Close(); err != nil {
			fmt.Fprintf(w, "ptb: warning: %v\n", err)
		}
	}
}
