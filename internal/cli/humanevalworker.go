package cli

import (
	"github.com/spf13/cobra"

	"github.com/ptb-dev/ptb/internal/eval/pyexec"
)

// newHumanEvalWorkerCmd is the worker inside each long-lived HumanEval
// sandbox (internal/eval/pyexec): it reads programs from stdin and runs
// each as a fresh interpreter process; the harness launches it, users do
// not.
func newHumanEvalWorkerCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:                pyexec.WorkerCommand,
		Short:              "Run HumanEval programs sent on stdin (used inside the sandbox)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := pyexec.Main(args, e.stdin, e.stdout, e.stderr); code != 0 {
				return exitCode(code)
			}
			return nil
		},
	}
	return c
}
