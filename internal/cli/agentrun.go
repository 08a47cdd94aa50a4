package cli

import (
	"github.com/spf13/cobra"

	"github.com/ptb-dev/ptb/internal/agent/scripted"
)

// newAgentRunCmd is the in-sandbox side of built-in agents; the harness
// launches it, users do not.
func newAgentRunCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:    "agent-run",
		Short:  "Run a built-in agent (used inside the sandbox)",
		Hidden: true,
	}
	var script string
	s := &cobra.Command{
		Use:   "scripted --script FILE",
		Short: "Run the scripted agent in the current directory",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := scripted.Main(cmd.Context(), script, e.stdout, e.stderr); code != 0 {
				return exitCode(code)
			}
			return nil
		},
	}
	s.Flags().StringVar(&script, "script", "", "script file (YAML)")
	s.MarkFlagRequired("script")
	c.AddCommand(s)
	return c
}

// exitCode makes ptb exit with a given code without printing an error.
type exitCode int

func (e exitCode) Error() string { return "" }
