package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/ptb-dev/ptb/internal/demo"
	"github.com/ptb-dev/ptb/internal/eval/dataset"
	"github.com/ptb-dev/ptb/internal/eval/task"
	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/jobrun"
	"github.com/ptb-dev/ptb/internal/pipeline"
	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/report"
	"github.com/ptb-dev/ptb/internal/rundir"
)

func newDemoCmd(e *env) *cobra.Command {
	var out, dataDir, sandboxName string
	c := &cobra.Command{
		Use:   "demo [--out DIR]",
		Short: "Run one complete job with stand-ins for the agent and the model (no GPU, key or network needed)",
		Long: `Run one complete PostTrainBench job through the same code paths as a real run:
prepare, solve in the sandbox under a deadline, collect, audit, evaluate on
GSM8K and record result.json. Two parts are stand-ins, and the output says so:
the agent is ptb's scripted agent, and the model's completions are recorded
responses scored by the real GSM8K scorer (replay backend).

The sandbox is bubblewrap when it works here, otherwise none (with a warning).
Benchmark data follows the rule of every command: --data-dir, then
$PTB_DATA_DIR, then the 'ptb data pull' cache, then the GSM8K test set
shipped in ptb, then the hub; so the demo needs no network.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := jobrun.CheckDataDir(dataDir); err != nil {
				return err
			}
			src := dataset.Locate(dataDir, "", false)
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			out, _ = filepath.Abs(out)
			inputs := filepath.Join(out, "inputs")
			os.MkdirAll(inputs, 0o755)
			script := filepath.Join(inputs, "agent.yaml")
			if err := os.WriteFile(script, demo.AgentScript, 0o644); err != nil {
				return err
			}
			responses := filepath.Join(inputs, "gsm8k_responses.jsonl")
			if err := demo.StandInResponses(ctx, src, responses, demo.Samples); err != nil {
				return err
			}
			if sandboxName == "" {
				sandboxName = "bwrap"
				if _, err := jobrun.SandboxBackend(ctx, "bwrap"); err != nil {
					fmt.Fprintf(e.stderr, "ptb demo: WARNING: bubblewrap is not usable here (%v);\n  running UNSANDBOXED with the none backend. Install bubblewrap for an isolated run.\n", err)
					sandboxName = "none"
				}
			}
			reg := registry.Default()
			spec := job.Spec{
				Agent: "scripted", BaseModel: "Qwen/Qwen3-1.7B-Base", Benchmark: "gsm8k",
				Hours: 0.01, OutRoot: filepath.Join(out, "runs"), Label: "demo (scripted agent)",
				Sandbox: sandboxName, Script: script, Grace: 5 * time.Second,
				Eval: job.EvalSpec{Backend: "replay", Responses: responses, Limit: demo.Samples, DataDir: dataDir},
			}
			if err := spec.Normalize(reg); err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "ptb demo: stand-ins: the agent is the scripted agent (%s); the model's completions are recorded responses (%s).\n", script, responses)
			fmt.Fprintf(e.stderr, "ptb demo: everything else is real: %s sandbox, deadline %s, collect, GSM8K scorer on %d problems from %s.\n",
				sandboxName, time.Duration(spec.Hours*float64(time.Hour)).Round(time.Second), demo.Samples, src.Where(ctx, task.GSM8KTest))
			dir, err := pipeline.Create(spec, reg, time.Now())
			if err != nil {
				return err
			}
			r, err := jobrun.NewRunner(ctx, jobConfig(e, reg, false), spec)
			if err != nil {
				return err
			}
			res, err := r.Run(ctx, dir)
			if err != nil {
				return err
			}
			printRunSummary(e.stdout, string(dir), res)
			fmt.Fprintf(e.stdout, "\nThe verdict is unverified, as it must be here: lineage needs the base weights in the Hugging Face\ncache, the hub check needs the per-run gateway, and the LLM judge needs --judge-endpoint (audit/audit.txt).\n")
			// The leaderboard view of this one run: a real report of many
			// runs is `ptb report RUNS...`.
			runs, _, err := report.LoadRuns(ctx, []string{string(dir)})
			if err == nil {
				if rep, err := report.Build(runs, report.Options{CountUnverified: true}); err == nil {
					if files, err := report.WriteDir(filepath.Join(out, "report"), rep, []string{"md", "html"}); err == nil {
						fmt.Fprintf(e.stdout, "\nReport of this run (unverified score counted; the leaderboard default replaces it with the base score):\n")
						for _, f := range files {
							fmt.Fprintf(e.stdout, "  %s\n", f)
						}
					}
				}
			}
			fmt.Fprintf(e.stdout, "\nWhere everything is:\n")
			for _, p := range []struct{ what, path string }{
				{"the record (result.json, schema v1)", rundir.ResultFile},
				{"the agent's prompt", pipeline.PromptFile},
				{"the agent's raw trace (JSONL)", rundir.TraceRaw},
				{"every output line with a timestamp", rundir.TraceLog},
				{"the workspace the agent worked in", rundir.Workspace},
				{"final_model as collected, and its hashes", rundir.FinalModelSum},
				{"per-sample scores", rundir.SamplesFile},
				{"metrics", rundir.MetricsFile},
			} {
				fmt.Fprintf(e.stdout, "  %-42s %s\n", p.what, dir.Path(p.path))
			}
			fmt.Fprintf(e.stdout, "\nStand-ins in this demo: the agent (scripted) and the model (recorded responses). A real job (the key stays with ptb; the agent reaches the model through the run's gateway):\n  export ANTHROPIC_API_KEY=...\n  ptb run --agent claude --agent-model MODEL --base-model qwen3-1.7b --benchmark gsm8k --gpus 0\n")
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "ptb-demo", "directory for the demo's inputs and run")
	c.Flags().StringVar(&dataDir, "data-dir", "", "benchmark data laid out like shared/datasets (default: $PTB_DATA_DIR, the cache, the shipped GSM8K test set)")
	c.Flags().StringVar(&sandboxName, "sandbox", "", "sandbox backend (default bwrap when usable, else none)")
	return c
}
