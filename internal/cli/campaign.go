package cli

import (
	"github.com/spf13/cobra"

	// Executors register themselves with the campaign engine.
	_ "github.com/ptb-dev/ptb/internal/campaign/htcondor"
	_ "github.com/ptb-dev/ptb/internal/campaign/kube"
	_ "github.com/ptb-dev/ptb/internal/campaign/local"
	_ "github.com/ptb-dev/ptb/internal/campaign/slurm"
)

// newCampaignCmd is `ptb campaign`: a whole study from one campaign file.
// Each subcommand lives in its own file: campaign_up.go (up, status,
// cancel, logs) and campaign_exec.go (exec, run inside an allocation).
func newCampaignCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "campaign",
		Short: "Run a whole study (agents x models x benchmarks x seeds) on a local GPU pool, Slurm, HTCondor or Kubernetes",
	}
	c.AddCommand(newCampaignUpCmd(e), newCampaignStatusCmd(e), newCampaignCancelCmd(e), newCampaignLogsCmd(e), newCampaignExecCmd(e), newCampaignSuperviseCmd(e))
	return c
}
