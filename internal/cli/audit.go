package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ptb-dev/ptb/internal/audit"
	"github.com/ptb-dev/ptb/internal/jobrun"
	"github.com/ptb-dev/ptb/internal/pipeline"
	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
	"github.com/spf13/cobra"
)

func newAuditCmd(e *env) *cobra.Command {
	var o audit.Options
	var asJSON bool
	var regFile string
	cmd := &cobra.Command{
		Use:   "audit RUN_DIR | WORKSPACE --task T --base-model M",
		Short: "Check a run or a workspace for cheating (contamination, model, tamper, API use)",
		Long: `audit runs ptb's deterministic cheat checks (protected files, final_model
config and weight lineage, n-gram contamination against the benchmark's test
set, the hub log, rules over the agent trace) and the LLM judge when one is
configured, and prints a verdict:

  clean       every check ran and passed          exit 0
  flagged     some check flagged (letters C M T A) exit 1
  unverified  nothing flagged, some check could not run (exit 1)

A bare workspace has no run records (protected-file manifest, hub log,
trace): those checks are unverified there, but a flag still wins. Test sets
follow the data-location rule of every command: --data-dir, then the run's
own data dir (job.json), then $PTB_DATA_DIR, then the 'ptb data pull' cache,
then the test sets shipped with ptb, then the hub. Base and instruct weights
come only from a harness-owned Hugging Face cache (--hf-cache, else
$HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub; never one inside the
run directory), held to the registry's pinned sha256, else to those recorded
on first use in --pin-file.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := args[0]
			if isRunDir(target) {
				o.RunDir = target
				if o.DataDir == "" {
					// Re-audit against the data the run itself used.
					if spec, err := pipeline.LoadSpec(rundir.Dir(target)); err == nil {
						o.DataDir = spec.Eval.DataDir
					}
				}
			} else {
				o.Workspace = target
				if o.Task == "" || o.BaseModel == "" {
					return usagef("%s is not a run directory: a bare workspace needs --task and --base-model", target)
				}
			}
			if err := jobrun.CheckDataDir(o.DataDir); err != nil {
				return err
			}
			// The names run accepts: short model names resolve to hub ids
			// (the tamper and lineage checks compare hub ids), unknown
			// tasks and models are errors, not silently weaker checks.
			reg, err := registry.Load(regFile)
			if err != nil {
				return err
			}
			if o.BaseModel != "" {
				m, err := reg.Model(o.BaseModel)
				if err != nil {
					return usagef("--base-model: %v", err)
				}
				o.BaseModel = m.ID
			}
			if o.Task != "" {
				if _, err := reg.Benchmark(o.Task); err != nil {
					return usagef("--task: %v", err)
				}
			}
			if regFile != "" {
				o.Registry = reg
			}
			o.TestSets = jobrun.TestSets(o.DataDir)
			rep, err := audit.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			if asJSON {
				b, err := json.MarshalIndent(rep, "", "  ")
				if err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, string(b))
			} else if err := rep.WriteText(e.stdout); err != nil {
				return err
			}
			if rep.Verdict != result.VerdictClean {
				return fmt.Errorf("audit verdict %s", rep.Verdict)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.StringVar(&o.Task, "task", "", "benchmark (gsm8k, humaneval, bfcl, ...); default: the run's job spec")
	f.StringVar(&o.BaseModel, "base-model", "", "base model, hub id or short name (e.g. qwen3-1.7b); default: the run's job spec")
	f.StringVar(&regFile, "registry", "", "YAML file overriding or extending the built-in registry")
	f.StringVar(&o.HFCache, "hf-cache", "", "harness-owned Hugging Face hub cache holding the base and instruct weights (never the agent's)")
	f.StringVar(&o.PinFile, "pin-file", "", "where reference weight digests are recorded on first use (default $PTB_CACHE/"+audit.PinFileName+"; - = never record)")
	f.StringVar(&o.DataDir, "data-dir", "", "directory of benchmark test sets laid out like shared/datasets (default: the run's, then $PTB_DATA_DIR, cache, shipped, hub)")
	f.StringVar(&o.HubLog, "hub-log", "", "hub log (JSONL) to check instead of RUN_DIR/"+rundir.GatewayHubLog)
	f.StringVar(&o.Protected, "protected", "", "protected-file manifest instead of RUN_DIR/"+rundir.ProtectedFile)
	f.IntVar(&o.JudgeRuns, "judge-runs", 1, "judge runs to take the majority of")
	return cmd
}

// isRunDir reports whether dir looks like a run directory.
func isRunDir(dir string) bool {
	for _, p := range []string{rundir.JobFile, rundir.ProtectedFile, rundir.ManifestFile, rundir.TraceDir, rundir.CollectDir} {
		if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
			return true
		}
	}
	return false
}
