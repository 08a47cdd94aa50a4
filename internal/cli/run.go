package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/spf13/cobra"

	"github.com/ptb-dev/ptb/internal/campaign"
	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/jobrun"
	"github.com/ptb-dev/ptb/internal/monitor"
	"github.com/ptb-dev/ptb/internal/pipeline"
	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
	"github.com/ptb-dev/ptb/internal/runevents"
	"github.com/ptb-dev/ptb/internal/sandbox"
)

type runFlags struct {
	spec         job.Spec
	gpus         string
	limits       []string
	resume       string
	runID        string
	network      string
	registry     string
	agentsPrefix string
	monitorEvery time.Duration
	redo         []string
	changed      map[string]bool // flags given on the command line
	jsonOut      bool
	verbose      bool
	hoursSet     bool
}

func newRunCmd(e *env) *cobra.Command {
	var f runFlags
	c := &cobra.Command{
		Use:   "run --agent A --base-model M --benchmark B [--run-id ID] [flags] | run --resume RUN_DIR | run RUN_DIR",
		Short: "Run one job end to end: prepare, solve, collect, audit, evaluate, record",
		Long: `Run one PostTrainBench job. The agent works in a fresh workspace inside a
sandbox under a hard deadline; ptb then collects final_model, audits the run,
evaluates the model and writes result.json into the run directory
(OUT/<run id>). Progress goes to stderr; the summary (or --json, the record)
to stdout.

A run interrupted by Ctrl-C or a crash resumes with --resume RUN_DIR: stages
already done are not redone, and an interrupted solve continues with the
time that was left (time between starts never counts). A finished run is
left as it is. ptb run RUN_DIR is --resume RUN_DIR: it starts a run directory
that was made but never started, or resumes one that was.

--run-id ID names the run directory OUT/ID and makes the command idempotent,
as a scheduler needs: the first start creates the run, every later start
resumes it (a finished run is left as it is and exits with its outcome).
The job flags must describe the job the run was created with (job.json);
a start that differs is refused with exit 2 naming the fields. --gpus is
not part of the job: the devices are assigned at each start (with --run-id,
no --gpus means none; with --resume, no --gpus keeps job.json's). --redo STAGE reruns
collect, audit or evaluate and every stage after it, with new --eval-* or
--judge-* settings; result.json lists each redo with the old and new values.

Exit codes: 0 the run finished with a final_model, 1 harness failure,
2 usage or preflight (nothing was created), 3 a stage failed (the record
says which; fix and --resume), 4 the agent left no final_model,
5 busy: another ptb holds the run's lock (it is running elsewhere),
128+signal when interrupted (the run resumes where it stopped).

Network: a real agent runs under --network gateway (the default). Its sandbox
has no network of its own; its only way out is the run's gateway, in this ptb
process, which adds the real API key (read from ANTHROPIC_API_KEY,
OPENAI_API_KEY or GEMINI_API_KEY here, never given to the agent), meters
tokens and cost, logs every hub download (gateway/hub.jsonl, which the audit
reads) and every other connection (gateway/egress.jsonl). --network host is
for debugging only and never gives a clean verdict.`,
		Example: `  export ANTHROPIC_API_KEY=sk-ant-...   # read by the run's gateway only
  ptb run --agent claude --agent-model claude-opus-4-6 --base-model qwen3-1.7b --benchmark gsm8k --gpus 0 --spend-cap 50
  ptb run --agent scripted --script demo.yaml --base-model qwen3-1.7b --benchmark gsm8k --hours 0.01 --sandbox none --eval-backend none
  ptb run --resume runs/gsm8k_qwen3-1.7b_claude-claude-opus-4-6_s0_20261127T080102Z
  ptb run --run-id gsm8k_qwen3-1.7b_claude-claude-opus-4-6_s0 --out runs --agent claude --agent-model claude-opus-4-6 --base-model qwen3-1.7b --benchmark gsm8k --gpus 1
  ptb run --resume runs/gsm8k_qwen3-1.7b_claude-claude-opus-4-6_s0_20261127T080102Z --redo evaluate --eval-backend url --eval-base-url http://127.0.0.1:8000/v1`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("run takes at most one RUN_DIR, got %d arguments (%s)", len(args), strings.Join(args, " "))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			f.changed = map[string]bool{}
			cmd.Flags().Visit(func(fl *pflag.Flag) { f.changed[fl.Name] = true })
			if len(args) == 1 {
				if err := runDirArg(args[0], &f); err != nil {
					return err
				}
			}
			if len(f.redo) > 0 && f.resume == "" {
				return usagef("--redo needs --resume RUN_DIR: it reruns stages of an existing run")
			}
			if f.runID != "" && f.resume != "" {
				return usagef("--run-id and --resume both name the run: give one (--run-id ID with the job flags, or --resume RUN_DIR)")
			}
			if f.resume != "" {
				// A resumed run keeps its job.json; a flag that would change
				// the job is a mistake, not something to ignore. With --redo,
				// the settings of the stages it reruns may change.
				var bad []string
				cmd.Flags().Visit(func(fl *pflag.Flag) {
					switch {
					case fl.Name == "resume" || fl.Name == "registry" || fl.Name == "json" || fl.Name == "verbose" || fl.Name == "redo" || fl.Name == "monitor-interval" || fl.Name == "gpus":
					case len(f.redo) > 0 && redoFlags[fl.Name]:
					default:
						bad = append(bad, "--"+fl.Name)
					}
				})
				if len(bad) > 0 {
					hint := ""
					if len(f.redo) == 0 {
						hint = "; to rerun stages with new evaluation or judge settings, add --redo STAGE"
					}
					return usagef("%s cannot be combined with --resume: the run keeps the job it was created with (%s)%s", strings.Join(bad, ", "), rundir.JobFile, hint)
				}
			}
			f.hoursSet = cmd.Flags().Changed("hours")
			return runRun(cmd.Context(), e, &f)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.resume, "resume", "", "resume the run in this run directory")
	fl.StringVar(&f.runID, "run-id", "", "run directory OUT/ID: create the run, or resume it if it exists (the job flags must match its job.json)")
	fl.DurationVar(&f.monitorEvery, "monitor-interval", monitor.DefaultInterval, "sample GPUs, CPU, RAM and disk into RUN_DIR/"+rundir.MonitorFile+" this often (0 = off)")
	fl.StringSliceVar(&f.redo, "redo", nil, "with --resume: rerun these stages (collect, audit, evaluate) and all after them, with the --eval-*/--judge-*/--data-dir settings given")
	fl.StringVar(&f.spec.Agent, "agent", "", "agent scaffold: claude, codex, gemini, opencode, scripted")
	fl.StringVar(&f.spec.AgentModel, "agent-model", "", "model or config string for the agent CLI")
	fl.StringVar(&f.spec.BaseModel, "base-model", "", "base model to post-train (hub id or short name, e.g. qwen3-1.7b)")
	fl.StringVar(&f.spec.Benchmark, "benchmark", "", "target benchmark: aime2025, arenahardwriting, bfcl, gpqamain, gsm8k, healthbench, humaneval")
	fl.Float64Var(&f.spec.Hours, "hours", job.DefaultHours, "time budget in hours (fractions allowed: 0.01 = 36 s)")
	fl.StringVar(&f.gpus, "gpus", "", "GPU indices for this start of the job, e.g. 0 or 0,1 (default none; with --resume, job.json's)")
	fl.IntVar(&f.spec.Seed, "seed", 0, "replicate index")
	fl.StringVar(&f.spec.OutRoot, "out", "runs", "output root; the run directory is OUT/<run id>")
	fl.StringVar(&f.spec.Label, "label", "", "method label for reports, e.g. \"Opus 4.6 (Claude Code)\"")
	fl.StringVar(&f.spec.Sandbox, "sandbox", "bwrap", "sandbox backend: bwrap, or none (development only, unsandboxed)")
	fl.StringVar(&f.network, "network", "", "sandbox network: gateway (default for real agents: the run's gateway is the only way out), none (default for the scripted agent), or host (debugging only; never a clean verdict)")
	fl.Float64Var(&f.spec.Gateway.SpendCapUSD, "spend-cap", 0, "most the agent's LLM traffic may cost, in USD, enforced by the gateway (0: no cap)")
	fl.StringArrayVar(&f.spec.Gateway.AllowModels, "allow-model", nil, "model name or glob the gateway's LLM route lets through (repeatable; default: any)")
	fl.StringVar(&f.spec.Gateway.HubEndpoint, "hub-endpoint", "", "upstream of the gateway's hub route (a mirror; default https://huggingface.co)")
	fl.DurationVar(&f.spec.Reprompt, "reprompt", 0, "relaunch an agent that exits with at least this much time left (paper's variants: 30m; 0 = off)")
	fl.DurationVar(&f.spec.Grace, "grace", job.DefaultGrace, "time between SIGTERM and SIGKILL at the deadline")
	fl.StringArrayVar(&f.spec.PassEnv, "env", nil, "pass NAME (from the host) or NAME=VALUE into the sandbox; repeatable")
	fl.StringArrayVar(&f.spec.ReadOnly, "ro", nil, "host path made visible read-only in the sandbox; repeatable")
	fl.StringArrayVar(&f.limits, "limit", nil, "resource limit NAME=VALUE: memory=64G, pids=8192, cpus=16, tmp=8G, disk=200G, files=1000000, or NAME=none; repeatable (defaults sized for one H100 of a shared box)")
	fl.StringVar(&f.spec.Endpoint, "endpoint", "", "model API base URL: the upstream of the gateway's LLM route for the agent's provider (default: the provider's public API); without the gateway, injected into the agent CLI")
	fl.StringVar(&f.spec.Script, "script", "", "script for the scripted agent (YAML)")
	fl.StringVar(&f.agentsPrefix, "agents-prefix", "", "an npm prefix whose node_modules/.bin is searched for the agent CLI before PATH (as for doctor)")
	fl.StringVar(&f.spec.Credentials, "credentials", "", "subscription login file (Claude .credentials.json, Codex auth.json), held by the gateway; without the gateway it enters the sandbox and the record warns")
	fl.StringVar(&f.spec.Eval.Backend, "eval-backend", "vllm", "evaluation backend: vllm, hf, url, replay, or none")
	fl.StringVar(&f.spec.Eval.Version, "eval-version", "", "benchmark task version (default: the paper-faithful one)")
	fl.StringVar(&f.spec.Eval.Responses, "eval-responses", "", "recorded completions for the replay backend (JSONL)")
	fl.StringVar(&f.spec.Eval.BaseURL, "eval-base-url", "", "OpenAI-compatible endpoint for the url backend")
	fl.IntVar(&f.spec.Eval.Limit, "eval-limit", 0, "evaluate only the first N samples (0: the full benchmark)")
	fl.StringVar(&f.spec.Eval.DataDir, "data-dir", "", "local dataset directory (default: the hub cache)")
	fl.StringVar(&f.spec.Judge.Agent, "judge-agent", "codex", "agent CLI that runs the paper's LLM judge in the audit")
	fl.StringVar(&f.spec.Judge.Model, "judge-model", "gpt-5.1-codex", "the judge agent's model")
	fl.StringVar(&f.spec.Judge.Endpoint, "judge-endpoint", "", "model endpoint for the judge; without it the judge does not run and the verdict stays unverified")
	fl.IntVar(&f.spec.Judge.Runs, "judge-runs", 1, "judge runs with a majority vote (paper: 1; 3 recommended)")
	fl.StringVar(&f.registry, "registry", "", "YAML file overriding or extending the built-in registry")
	fl.BoolVar(&f.jsonOut, "json", false, "print result.json on stdout instead of the summary")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "log harness events to stderr")
	return c
}

func parseGPUs(s string) ([]int, error) {
	var out []int
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, p := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 0 {
			return nil, usagef("--gpus: %q is not a GPU index (want e.g. 0 or 0,1)", p)
		}
		out = append(out, n)
	}
	return out, nil
}

func runRun(ctx context.Context, e *env, f *runFlags) error {
	// The pipeline's progress and log and the status line share stderr.
	locked := *e
	locked.stderr = &lockedWriter{w: e.stderr}
	e = &locked
	if f.monitorEvery < 0 {
		return usagef("--monitor-interval %s: want 0 (off) or a positive duration", f.monitorEvery)
	}
	// Devices are assigned at each start: with --run-id by --gpus alone,
	// with --resume by --gpus when given.
	gpus, err := parseGPUs(f.gpus)
	if err != nil {
		return err
	}
	st := jobrun.Start{
		Resume: f.resume, RunID: f.runID, Redo: f.redo,
		ApplyRedo: func(spec *job.Spec) { applyRedoFlags(spec, f) },
		Preflight: func(ctx context.Context, spec job.Spec, reg *registry.Registry) error {
			return runPreflight(ctx, e, spec, reg)
		},
		Watch: func(ctx context.Context, dir rundir.Dir, spec job.Spec) (runevents.Handler, func()) {
			return watchRun(ctx, e, dir, spec, f.monitorEvery)
		},
	}
	if f.runID != "" || (f.resume != "" && f.changed["gpus"]) {
		st.GPUs = append([]int{}, gpus...)
	}
	var reg *registry.Registry
	if f.resume != "" {
		st.RegistryFile = f.registry
	} else {
		if reg, err = registry.Load(f.registry); err != nil {
			return err
		}
		if st.Spec, err = runSpec(f, reg, gpus); err != nil {
			return err
		}
	}
	out, err := jobrun.Run(ctx, jobConfig(e, reg, f.verbose), st)
	if errors.Is(err, rundir.ErrBusy) {
		return busy(e, out.Dir)
	}
	if err != nil {
		return err
	}
	return reportRun(e, string(out.Dir), out.Result, f.jsonOut)
}

// runDirArg takes ptb run RUN_DIR as --resume RUN_DIR: a run directory
// made but never started (ptb run --run-id that stopped before its first
// stage, a run made by another tool through pipeline.Create) starts, any
// other resumes. It must be a run directory.
func runDirArg(arg string, f *runFlags) error {
	if f.resume != "" || f.runID != "" {
		return usagef("run %s: the positional RUN_DIR names the run, so --resume and --run-id cannot be given with it", arg)
	}
	abs, err := filepath.Abs(arg)
	if err != nil {
		return err
	}
	if _, err := pipeline.LoadSpec(rundir.Dir(abs)); err != nil {
		return usagef("run %s: %v; ptb run RUN_DIR starts or resumes an existing run (make one with ptb run --run-id ID and the job flags)", arg, err)
	}
	f.resume = arg
	return nil
}

// runSpec is the job the flags describe, normalized against reg.
func runSpec(f *runFlags, reg *registry.Registry, gpus []int) (job.Spec, error) {
	spec := f.spec
	spec.Network = sandbox.Network(f.network)
	if f.registry != "" {
		spec.Registry, _ = filepath.Abs(f.registry)
	}
	spec.GPUs = gpus
	if f.hoursSet && !(spec.Hours > 0) {
		return spec, usagef("--hours %v: want a positive number of hours (fractions allowed: 0.01 = 36 s)", spec.Hours)
	}
	if f.agentsPrefix != "" {
		if err := agentsPrefixEnv(&spec, f.agentsPrefix, os.Getenv("PATH")); err != nil {
			return spec, err
		}
	}
	for _, l := range f.limits {
		if err := spec.SetLimit(l); err != nil {
			return spec, usagef("--limit: %v", err)
		}
	}
	if err := spec.Normalize(reg); err != nil {
		return spec, usagef("%v", err)
	}
	if f.runID != "" {
		if err := pipeline.CheckRunID(f.runID); err != nil {
			return spec, usagef("--run-id: %v", err)
		}
	}
	return spec, nil
}

// runPreflight runs the checks a run must pass before it starts.
func runPreflight(ctx context.Context, e *env, spec job.Spec, reg *registry.Registry) error {
	pf := defaultPreflight()
	if e.preflight != nil {
		pf = *e.preflight
	}
	return pf.check(ctx, spec, reg)
}

// busy is the exit of a start that finds the run's lock held.
func busy(e *env, dir rundir.Dir) error {
	fmt.Fprintf(e.stderr, "ptb: %s is busy: another ptb process holds its lock (%s) and is working on it; not starting it twice (exit %d)\n", dir, dir.Path(rundir.LockFile), campaign.ExitBusy)
	return exitCode(campaign.ExitBusy)
}

// reportRun prints the run's record (--json) or its summary, and turns its
// outcome into the exit code.
func reportRun(e *env, dir string, res *result.Result, jsonOut bool) error {
	if jsonOut {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		printRunSummary(e.stdout, dir, res)
	}
	return runOutcome(e, dir, res)
}

// redoFlags are the flags --redo may change: how the stages after solve run.
var redoFlags = map[string]bool{
	"eval-backend": true, "eval-version": true, "eval-responses": true, "eval-base-url": true, "eval-limit": true,
	"data-dir": true, "judge-agent": true, "judge-model": true, "judge-endpoint": true, "judge-runs": true,
}

// applyRedoFlags copies the redo settings given on the command line into
// spec.
func applyRedoFlags(spec *job.Spec, f *runFlags) {
	n := f.spec
	set := map[string]func(){
		"eval-backend": func() { spec.Eval.Backend = n.Eval.Backend }, "eval-version": func() { spec.Eval.Version = n.Eval.Version },
		"eval-responses": func() { spec.Eval.Responses = n.Eval.Responses }, "eval-base-url": func() { spec.Eval.BaseURL = n.Eval.BaseURL },
		"eval-limit": func() { spec.Eval.Limit = n.Eval.Limit }, "data-dir": func() { spec.Eval.DataDir = n.Eval.DataDir },
		"judge-agent": func() { spec.Judge.Agent = n.Judge.Agent }, "judge-model": func() { spec.Judge.Model = n.Judge.Model },
		"judge-endpoint": func() { spec.Judge.Endpoint = n.Judge.Endpoint }, "judge-runs": func() { spec.Judge.Runs = n.Judge.Runs },
	}
	for name, fn := range set {
		if f.changed[name] {
			fn()
		}
	}
}

// Exit codes of a run that got as far as its record (docs/ARCHITECTURE.md).
const (
	exitStageFailed  = 3 // a stage failed; result.json says which and why
	exitNoFinalModel = 4 // every stage ran, but the agent left no final_model
)

// runOutcome turns a recorded run into ptb's exit status: 0 when every
// stage ran and the agent left final_model.
func runOutcome(e *env, dir string, res *result.Result) error {
	var failed []string
	for _, s := range result.Stages {
		if res.Stages[s].Status == result.StatusFailed {
			failed = append(failed, s)
		}
	}
	if len(failed) > 0 {
		fmt.Fprintf(e.stderr, "ptb: stage %s failed (see %s); fix the cause and finish the run with: ptb run --resume %s\n",
			strings.Join(failed, ", "), rundir.Dir(dir).Path(rundir.ResultFile), dir)
		return exitCode(exitStageFailed)
	}
	if res.Solve != nil && !res.Solve.FinalModel {
		fmt.Fprintf(e.stderr, "ptb: the agent left no final_model: the run is recorded, with no score of its own\n")
		return exitCode(exitNoFinalModel)
	}
	return nil
}

// printSummary is the human-readable end of a run.
func printRunSummary(w io.Writer, dir string, res *result.Result) {
	fmt.Fprintf(w, "run        %s\n", res.RunID)
	fmt.Fprintf(w, "directory  %s\n", dir)
	fmt.Fprintf(w, "job        %s on %s for %s (%s h, seed %d)\n", res.Spec.Agent+agentModel(res.Spec.AgentModel), res.Spec.BaseModel, res.Spec.Benchmark, strconv.FormatFloat(res.Spec.Hours, 'f', -1, 64), res.Spec.Seed)
	sb := res.Sandbox.Backend
	if res.Sandbox.Unsandboxed {
		sb += " (UNSANDBOXED)"
	}
	fmt.Fprintf(w, "sandbox    %s, network %s\n", sb, res.Sandbox.Network)
	if s := res.Solve; s != nil {
		code := ""
		if s.ExitCode != nil {
			code = fmt.Sprintf(" (exit %d)", *s.ExitCode)
		}
		fmt.Fprintf(w, "solve      %s%s after %s of %s, %d segment(s), final_model: %v\n", s.EndReason, code,
			time.Duration(s.TimeTakenS*float64(time.Second)).Round(time.Second), time.Duration(s.BudgetS*float64(time.Second)).Round(time.Second), s.Segments, s.FinalModel)
		if said := agentFailure(rundir.Dir(dir), res); said != "" {
			fmt.Fprintf(w, "agent said %s\n", said)
		}
	}
	score := "none"
	if res.Score != nil {
		score = fmt.Sprintf("%.4f (%s)", *res.Score, res.Versions.Scorer)
	}
	fmt.Fprintf(w, "score      %s\n", score)
	flags := ""
	if len(res.Flags) > 0 {
		flags = " " + strings.Join(res.Flags, "")
	}
	fmt.Fprintf(w, "verdict    %s%s\n", res.Verdict, flags)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "stage\tstatus\tdetail")
	for _, s := range result.Stages {
		st := res.Stages[s]
		detail := st.Reason
		if st.Error != "" {
			detail = st.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s, st.Status, detail)
	}
	tw.Flush()
	for _, wng := range res.Warnings {
		fmt.Fprintf(w, "warning: %s\n", wng)
	}
	fmt.Fprintf(w, "record     %s\n", rundir.Dir(dir).Path(rundir.ResultFile))
}

func agentModel(m string) string {
	if m == "" {
		return ""
	}
	return "/" + m
}

// selfPath is the ptb executable.
func selfPath() string {
	exe, err := os.Executable()
	if err != nil {
		return "ptb"
	}
	return exe
}
