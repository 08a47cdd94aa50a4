package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ptb-dev/ptb/internal/jobrun"
	"github.com/ptb-dev/ptb/internal/registry"
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
			d, err := jobrun.Demo(cmd.Context(), jobConfig(e, registry.Default(), false), jobrun.DemoOptions{Out: out, DataDir: dataDir, Sandbox: sandboxName})
			if err != nil {
				return err
			}
			dir := d.Dir
			printRunSummary(e.stdout, string(dir), d.Result)
			fmt.Fprintf(e.stdout, "\nThe verdict is unverified, as it must be here: lineage needs the base weights in the Hugging Face\ncache, the hub check needs the per-run gateway, and the LLM judge needs --judge-endpoint (audit/audit.txt).\n")
			if d.Report != nil {
				fmt.Fprintf(e.stdout, "\nReport of this run (unverified score counted; the leaderboard default replaces it with the base score):\n")
				for _, f := range d.Report {
					fmt.Fprintf(e.stdout, "  %s\n", f)
				}
			}
			fmt.Fprintf(e.stdout, "\nWhere everything is:\n")
			for _, p := range []struct{ what, path string }{
				{"the record (result.json, schema v1)", rundir.ResultFile},
				{"the agent's prompt", rundir.PromptFile},
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
