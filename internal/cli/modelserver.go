package cli

import (
	"fmt"
	"io"
	"net"
	"os"

	"github.com/spf13/cobra"

	"github.com/ptb-dev/ptb/internal/modelserver"
)

func newModelserverCmd(e *env) *cobra.Command {
	var scriptFile, addr, logFile string
	cmd := &cobra.Command{
		Use:   "modelserver",
		Short: "Serve a scripted model over the agent CLIs' wire APIs (for tests)",
		Long: `Serve a scripted model on ADDR: Anthropic Messages (/v1/messages), OpenAI
Responses (/v1/responses), OpenAI Chat Completions (/v1/chat/completions) and
Gemini (/v1beta/models/M:streamGenerateContent), streaming or not. It plays
the turns of --script (JSON: {"turns": [{"shell": "echo hello > out.txt"},
{"text": "done"}], "usage": {"input_tokens": 123, "output_tokens": 45}});
without --script it plays that default. The turn is chosen from the number of
tool results in the request, so side requests (no tools) never derail it.

The base URL is printed on stdout; every request is logged as one JSON line
to --log (default stderr), credentials redacted. Stops on interrupt.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			script := modelserver.DefaultScript()
			if scriptFile != "" {
				var err error
				if script, err = modelserver.LoadScript(scriptFile); err != nil {
					return fmt.Errorf("%s: %w", scriptFile, err)
				}
			}
			var log io.Writer = e.stderr
			if logFile != "" {
				f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
				if err != nil {
					return fmt.Errorf("open request log: %w", err)
				}
				defer f.Close()
				log = f
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return usagef("listen on %s: %v (give --addr host:port, port 0 for any free one)", addr, err)
			}
			fmt.Fprintf(e.stdout, "http://%s\n", ln.Addr())
			return modelserver.New(script, log).Serve(cmd.Context(), ln)
		},
	}
	cmd.Flags().StringVar(&scriptFile, "script", "", "script file (JSON); default: one shell call, then \"done\"")
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:0", "address to listen on")
	cmd.Flags().StringVar(&logFile, "log", "", "append the request log (JSONL) to this file instead of stderr")
	return cmd
}
