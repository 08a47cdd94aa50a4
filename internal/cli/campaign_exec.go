package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// Placeholder, replaced by ptb campaign exec.
func newCampaignExecCmd(e *env) *cobra.Command {
	return &cobra.Command{Use: "exec", Hidden: true, Short: "Run one campaign job inside its allocation",
		RunE: func(*cobra.Command, []string) error { return errors.New("campaign exec: not built yet") }}
}
