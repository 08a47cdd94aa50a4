package jobrun

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ptb-dev/ptb/internal/demo"
	"github.com/ptb-dev/ptb/internal/eval/dataset"
	"github.com/ptb-dev/ptb/internal/eval/task"
	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/pipeline"
	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/report"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
)

// DemoOptions are the settings of `ptb demo`.
type DemoOptions struct {
	Out     string // directory for the demo's inputs, run and report
	DataDir string // benchmark data ("": Config.DataDir, the cache, the shipped GSM8K test set)
	Sandbox string // sandbox backend ("": bwrap when usable here, else none)
}

// DemoOutcome is what the demo made.
type DemoOutcome struct {
	Dir    rundir.Dir
	Result *result.Result
	// Report are the files of the one-run report; nil when it could not
	// be made.
	Report []string
}

// Demo runs one complete job with stand-ins for the agent (the scripted
// agent) and the model (recorded responses scored by the real GSM8K
// scorer), through the same code paths as a real run, and a report of it.
// What it does and which parts are stand-ins goes to cfg.Stderr.
func Demo(ctx context.Context, cfg Config, o DemoOptions) (DemoOutcome, error) {
	if err := CheckDataDir(o.DataDir); err != nil {
		return DemoOutcome{}, err
	}
	dataDir := o.DataDir
	if dataDir == "" {
		dataDir = cfg.DataDir
	}
	src := dataset.Locate(dataDir, "", false)
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return DemoOutcome{}, err
	}
	out, _ := filepath.Abs(o.Out)
	inputs := filepath.Join(out, "inputs")
	os.MkdirAll(inputs, 0o755)
	script := filepath.Join(inputs, "agent.yaml")
	if err := os.WriteFile(script, demo.AgentScript, 0o644); err != nil {
		return DemoOutcome{}, err
	}
	responses := filepath.Join(inputs, "gsm8k_responses.jsonl")
	if err := demo.StandInResponses(ctx, src, responses, demo.Samples); err != nil {
		return DemoOutcome{}, err
	}
	sandboxName := o.Sandbox
	if sandboxName == "" {
		sandboxName = "bwrap"
		if _, err := SandboxBackend(ctx, "bwrap"); err != nil {
			fmt.Fprintf(cfg.Stderr, "ptb demo: WARNING: bubblewrap is not usable here (%v);\n  running UNSANDBOXED with the none backend. Install bubblewrap for an isolated run.\n", err)
			sandboxName = "none"
		}
	}
	reg := cfg.Registry
	if reg == nil {
		reg = registry.Default()
	}
	spec := job.Spec{
		Agent: "scripted", BaseModel: "Qwen/Qwen3-1.7B-Base", Benchmark: "gsm8k",
		Hours: 0.01, OutRoot: filepath.Join(out, "runs"), Label: "demo (scripted agent)",
		Sandbox: sandboxName, Script: script, Grace: 5 * time.Second,
		Eval: job.EvalSpec{Backend: "replay", Responses: responses, Limit: demo.Samples, DataDir: o.DataDir},
	}
	if err := spec.Normalize(reg); err != nil {
		return DemoOutcome{}, err
	}
	fmt.Fprintf(cfg.Stderr, "ptb demo: stand-ins: the agent is the scripted agent (%s); the model's completions are recorded responses (%s).\n", script, responses)
	fmt.Fprintf(cfg.Stderr, "ptb demo: everything else is real: %s sandbox, deadline %s, collect, GSM8K scorer on %d problems from %s.\n",
		sandboxName, time.Duration(spec.Hours*float64(time.Hour)).Round(time.Second), demo.Samples, src.Where(ctx, task.GSM8KTest))
	dir, err := pipeline.Create(spec, reg, time.Now())
	if err != nil {
		return DemoOutcome{}, err
	}
	cfg.Registry = reg
	r, err := NewRunner(ctx, cfg, spec)
	if err != nil {
		return DemoOutcome{}, err
	}
	events, closeEvents := openEvents(cfg.Stderr, dir)
	defer closeEvents()
	r.Events = events
	res, err := r.Run(ctx, dir)
	if err != nil {
		return DemoOutcome{}, err
	}
	// The leaderboard view of this one run: a real report of many runs is
	// `ptb report RUNS...`.
	d := DemoOutcome{Dir: dir, Result: res}
	if runs, _, err := report.LoadRuns(ctx, []string{string(dir)}); err == nil {
		if rep, err := report.Build(runs, report.Options{CountUnverified: true}); err == nil {
			if files, err := report.WriteDir(filepath.Join(out, "report"), rep, []string{"md", "html"}); err == nil {
				d.Report = append([]string{}, files...)
			}
		}
	}
	return d, nil
}
