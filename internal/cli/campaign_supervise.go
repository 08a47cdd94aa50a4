package cli

import (
	"github.com/spf13/cobra"

	"github.com/ptb-dev/ptb/internal/campaign/local"
)

// newCampaignSuperviseCmd is the local executor's detached supervisor
// (and the keeper of each job), started by the executor itself.
func newCampaignSuperviseCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:                "supervise --dir DIR",
		Hidden:             true,
		Short:              "The local executor's supervisor (started by the executor)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return codeErr(local.Main(cmd.Context(), args, e.stderr))
		},
	}
}
