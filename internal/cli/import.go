package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ptb-dev/ptb/internal/report/ptbimport"
)

func newImportCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Convert results from other harnesses into ptb run directories",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("import needs a source kind, e.g. 'ptb import posttrainbench DIR --out DIR'")
		},
	}
	cmd.AddCommand(newImportPostTrainBenchCmd(e))
	return cmd
}

func newImportPostTrainBenchCmd(e *env) *cobra.Command {
	var out, groups string
	cmd := &cobra.Command{
		Use:   "posttrainbench DIR",
		Short: "Convert an original PostTrainBench results directory into ptb run directories",
		Long: `posttrainbench reads DIR laid out as the original harness leaves it,
<method>/<task>_<provider>_<model>_<id>/ with metrics.json, time_taken.txt,
contamination_judgement.txt, disallowed_model_judgement.txt and the raw trace
solve_out.txt, and writes OUT/<method>/<run>/ with a result.json each, ready
for 'ptb report'. Only the highest id per (method, task, model) is imported,
as the original's aggregation does. The judge files give the verdict:
"contamination detected" flags C, "disallowed use detected" flags M, an
absent or unexpected file leaves the run unverified.

A method directory <agent>_<config>_<N>h<suffix> becomes the label
"<config> (<scaffold>[, <variant>])" and the seed N of _runN or _seedN in the
suffix (the next free seed otherwise). --groups FILE (YAML or JSON, label ->
list of method directories) sets labels and seeds explicitly, like the
original's HARDCODED_AGENT_MAP; the seed is the position in the list, from 1.`,
		Example: `  ptb import posttrainbench results/ --out imported/
  ptb report imported/ --format md`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("posttrainbench takes one argument, the original's results directory; got %d", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usagef("--out DIR is required: where to write the run directories")
			}
			var opt ptbimport.Options
			if groups != "" {
				g, err := ptbimport.LoadGroups(groups)
				if err != nil {
					return err
				}
				opt.Groups = g
			}
			sum, err := ptbimport.Import(cmd.Context(), args[0], out, opt)
			if err != nil {
				return err
			}
			for _, s := range sum.Skipped {
				fmt.Fprintf(e.stderr, "skipped %s\n", s)
			}
			for _, m := range sum.Methods {
				fmt.Fprintf(e.stdout, "%s\t%q seed %d\t%d runs\n", m.Dir, m.Label, m.Seed, m.Runs)
			}
			fmt.Fprintf(e.stderr, "imported %d runs into %s\n", sum.Imported, out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "directory to write the ptb run directories into (required)")
	cmd.Flags().StringVar(&groups, "groups", "", "YAML or JSON file: method label -> list of original method directories (its seeds)")
	return cmd
}
