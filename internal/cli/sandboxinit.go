package cli

import (
	"context"
	"os"

	"github.com/spf13/cobra"

	"github.com/ptb-dev/ptb/internal/sandbox/relay"
)

// newSandboxInitCmd is the first process inside a sandbox whose only way
// out is a relayed unix socket (internal/sandbox/relay); the harness
// launches it, users do not.
func newSandboxInitCmd(e *env) *cobra.Command {
	var forwards []string
	c := &cobra.Command{
		Use:    "sandbox-init [--forward LISTEN=CONNECT]... -- COMMAND [ARG]...",
		Short:  "Relay sockets for a sandboxed command, then run it (used inside the sandbox)",
		Hidden: true,
		Args:   cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var fs []relay.Forward
			for _, s := range forwards {
				f, err := relay.ParseForward(s)
				if err != nil {
					return &usageError{msg: err.Error()}
				}
				fs = append(fs, f)
			}
			// The relays outlive the harness's TERM: the child gets the
			// signal and its grace period with its channels still open.
			if code := relay.Init(context.Background(), fs, args, os.Environ(), e.stdin, e.stdout, e.stderr); code != 0 {
				return exitCode(code)
			}
			return nil
		},
	}
	c.Flags().SetInterspersed(false)
	c.Flags().StringArrayVar(&forwards, "forward", nil, "relay LISTEN=CONNECT (tcp:HOST:PORT or unix:/PATH), opened before COMMAND starts")
	return c
}
