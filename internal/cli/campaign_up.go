package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// Placeholders, replaced by the campaign engine's commands.

func newCampaignUpCmd(e *env) *cobra.Command {
	return &cobra.Command{Use: "up FILE", Short: "Submit every cell of the campaign that is neither done nor running", Args: cobra.ExactArgs(1),
		RunE: func(*cobra.Command, []string) error { return errors.New("campaign up: not built yet") }}
}

func newCampaignStatusCmd(e *env) *cobra.Command {
	return &cobra.Command{Use: "status FILE", Short: "Show the campaign's runs", Args: cobra.ExactArgs(1),
		RunE: func(*cobra.Command, []string) error { return errors.New("campaign status: not built yet") }}
}

func newCampaignCancelCmd(e *env) *cobra.Command {
	return &cobra.Command{Use: "cancel FILE [RUN_ID...]", Short: "Cancel the campaign's jobs", Args: cobra.MinimumNArgs(1),
		RunE: func(*cobra.Command, []string) error { return errors.New("campaign cancel: not built yet") }}
}

func newCampaignLogsCmd(e *env) *cobra.Command {
	return &cobra.Command{Use: "logs FILE RUN_ID", Short: "Print a job's scheduler output", Args: cobra.ExactArgs(2),
		RunE: func(*cobra.Command, []string) error { return errors.New("campaign logs: not built yet") }}
}
