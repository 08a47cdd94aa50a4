package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/spf13/cobra"

	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/pipeline"
	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
)

type runFlags struct {
	spec     job.Spec
	gpus     string
	limits   []string
	resume   string
	registry string
	jsonOut  bool
	verbose  bool
}

func newRunCmd(e *env) *cobra.Command {
	var f runFlags
	c := &cobra.Command{
		Use:   "run --agent A --base-model M --benchmark B [flags] | run --resume RUN_DIR",
		Short: "Run one job end to end: prepare, solve, collect, audit, evaluate, record",
		Long: `Run one PostTrainBench job. The agent works in a fresh workspace inside a
sandbox under a hard deadline; ptb then collects final_model, audits the run,
evaluates the model and writes result.json into the run directory
(OUT/<run id>). Progress goes to stderr; the summary (or --json, the record)
to stdout.

A run interrupted by Ctrl-C or a crash resumes with --resume RUN_DIR: stages
already done are not redone, and an interrupted solve continues with the
time that was left.`,
		Example: `  ptb run --agent claude --agent-model claude-opus-4-6 --network host --base-model qwen3-1.7b --benchmark gsm8k --gpus 0
  ptb run --agent scripted --script demo.yaml --base-model qwen3-1.7b --benchmark gsm8k --hours 0.01 --sandbox none --eval-backend none
  ptb run --resume runs/gsm8k_qwen3-1.7b_claude-opus-4-6_s0_20261127T080102Z`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.resume != "" {
				// A resumed run keeps its job.json; a flag that would change
				// the job is a mistake, not something to ignore.
				var bad []string
				cmd.Flags().Visit(func(fl *pflag.Flag) {
					switch fl.Name {
					case "resume", "registry", "json", "verbose":
					default:
						bad = append(bad, "--"+fl.Name)
					}
				})
				if len(bad) > 0 {
					return usagef("%s cannot be combined with --resume: the run keeps the job it was created with (%s)", strings.Join(bad, ", "), rundir.JobFile)
				}
			}
			return runRun(cmd.Context(), e, &f)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.resume, "resume", "", "resume the run in this run directory")
	fl.StringVar(&f.spec.Agent, "agent", "", "agent scaffold: claude, codex, gemini, opencode, scripted")
	fl.StringVar(&f.spec.AgentModel, "agent-model", "", "model or config string for the agent CLI")
	fl.StringVar(&f.spec.BaseModel, "base-model", "", "base model to post-train (hub id or short name, e.g. qwen3-1.7b)")
	fl.StringVar(&f.spec.Benchmark, "benchmark", "", "target benchmark: aime2025, arenahardwriting, bfcl, gpqamain, gsm8k, healthbench, humaneval")
	fl.Float64Var(&f.spec.Hours, "hours", job.DefaultHours, "time budget in hours (fractions allowed: 0.01 = 36 s)")
	fl.StringVar(&f.gpus, "gpus", "", "GPU indices for this job, e.g. 0 or 0,1 (default none)")
	fl.IntVar(&f.spec.Seed, "seed", 0, "replicate index")
	fl.StringVar(&f.spec.OutRoot, "out", "runs", "output root; the run directory is OUT/<run id>")
	fl.StringVar(&f.spec.Label, "label", "", "method label for reports, e.g. \"Opus 4.6 (Claude Code)\"")
	fl.StringVar(&f.spec.Sandbox, "sandbox", "bwrap", "sandbox backend: bwrap, or none (development only, unsandboxed)")
	fl.StringVar(&f.spec.Network, "network", "none", "sandbox network: none, or host")
	fl.DurationVar(&f.spec.Reprompt, "reprompt", 0, "relaunch an agent that exits with at least this much time left (paper's variants: 30m; 0 = off)")
	fl.DurationVar(&f.spec.Grace, "grace", job.DefaultGrace, "time between SIGTERM and SIGKILL at the deadline")
	fl.StringArrayVar(&f.spec.PassEnv, "env", nil, "pass NAME (from the host) or NAME=VALUE into the sandbox; repeatable")
	fl.StringArrayVar(&f.spec.ReadOnly, "ro", nil, "host path made visible read-only in the sandbox; repeatable")
	fl.StringArrayVar(&f.limits, "limit", nil, "resource limit NAME=VALUE: memory=64G, pids=8192, cpus=16, tmp=8G, disk=200G, files=1000000, or NAME=none; repeatable (defaults sized for one H100 of a shared box)")
	fl.StringVar(&f.spec.Endpoint, "endpoint", "", "model endpoint base URL injected into the agent CLI")
	fl.StringVar(&f.spec.Script, "script", "", "script for the scripted agent (YAML)")
	fl.StringVar(&f.spec.Credentials, "credentials", "", "subscription credentials file for the agent CLI (enters the sandbox; the record warns)")
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
	var dir rundir.Dir
	var spec job.Spec
	var reg *registry.Registry
	var err error
	if f.resume != "" {
		abs, err := filepath.Abs(f.resume)
		if err != nil {
			return err
		}
		dir = rundir.Dir(abs)
		if spec, err = pipeline.LoadSpec(dir); err != nil {
			return usagef("--resume: %v", err)
		}
		if f.registry != "" {
			spec.Registry = f.registry
		}
		if reg, err = registry.Load(spec.Registry); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "ptb: resuming %s\n", dir)
	} else {
		if reg, err = registry.Load(f.registry); err != nil {
			return err
		}
		spec = f.spec
		if f.registry != "" {
			spec.Registry, _ = filepath.Abs(f.registry)
		}
		if spec.GPUs, err = parseGPUs(f.gpus); err != nil {
			return err
		}
		for _, l := range f.limits {
			if err := spec.SetLimit(l); err != nil {
				return usagef("--limit: %v", err)
			}
		}
		if err := spec.Normalize(reg); err != nil {
			return usagef("%v", err)
		}
		if dir, err = pipeline.Create(spec, reg, time.Now()); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "ptb: run directory %s\n", dir)
	}
	if spec.Eval.Backend == "vllm" {
		if _, err := exec.LookPath("vllm"); err != nil {
			fmt.Fprintf(e.stderr, "ptb: warning: vllm is not on PATH, so the evaluate stage will fail; install vLLM, or pass --eval-backend hf|url, or finish the run later with ptb run --resume %s\n", dir)
		}
	}
	r, err := newRunner(ctx, e, reg, spec, f.verbose, false)
	if err != nil {
		return err
	}
	res, err := r.Run(ctx, dir)
	if err != nil {
		return err
	}
	if f.jsonOut {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	printRunSummary(e.stdout, string(dir), res)
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
