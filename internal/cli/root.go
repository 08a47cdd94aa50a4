// Package cli holds ptb's command tree (cobra), one file per subcommand.
// Commands are built by constructor functions; there are no package globals.
package cli

import (
	"context"
	"errors"
	"fmt"
	"github.com/ptb-dev/ptb/internal/jobrun"
	"github.com/ptb-dev/ptb/internal/pinned"
	"io"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/spf13/cobra"
)

// Version is the ptb version, set at build time with
// -ldflags "-X github.com/ptb-dev/ptb/internal/cli.Version=...".
var Version = "0.1.0-dev"

// usageError is a mistake in how ptb was called; it exits with code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// handlesSignals reports whether args name a command that stops its
// children itself on signals (ptb campaign exec and supervise): for it a
// repeated signal is not a reason to exit at once.
func handlesSignals(args []string) bool {
	return len(args) >= 2 && args[0] == "campaign" && (args[1] == "exec" || args[1] == "supervise")
}

// ExecChildEnv is set to 1 in the environment of the `ptb run` that `ptb
// campaign exec` starts: a repeated SIGTERM does not make it exit at once.
const ExecChildEnv = "PTB_CAMPAIGN_EXEC_CHILD"

// env is what every command gets instead of globals.
// pinTable replaces pinned.Default() for every pinned store the commands
// make; tests in this package point it at a local mirror's table. nil in
// ptb itself.
var pinTable *pinned.Table

type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// preflight replaces run's checks before a run directory is made
	// (tests); nil: defaultPreflight.
	preflight *preflight
}

// Main runs ptb with args and returns the process exit code:
// 0 ok, 1 failure, 2 usage, 128+signal on interrupt.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// The first SIGINT or SIGTERM cancels the work (a run stops its agent
	// and can be resumed); a second one exits at once, except under ptb
	// campaign exec (ExecChildEnv): a scheduler signals every process of
	// the job and exec passes its signal on, so one stop arrives twice,
	// and exec itself decides when to give up on a clean stop.
	stopOnce := os.Getenv(ExecChildEnv) == "1" || handlesSignals(args)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigc := make(chan os.Signal, 2)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigc)
	var got atomic.Int32
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case s := <-sigc:
			got.Store(int32(s.(syscall.Signal)))
			if stopOnce {
				fmt.Fprintf(stderr, "ptb: %s: stopping\n", s)
			} else {
				fmt.Fprintf(stderr, "ptb: %s: stopping (again to exit at once)\n", s)
			}
			cancel()
		case <-done:
			return
		}
		for {
			select {
			case s := <-sigc:
				if stopOnce {
					fmt.Fprintf(stderr, "ptb: %s: already stopping\n", s)
					continue
				}
				fmt.Fprintln(stderr, "ptb: second signal, exiting now")
				os.Exit(128 + int(s.(syscall.Signal)))
			case <-done:
			}
			return
		}
	}()
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRootCmd(e)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ec exitCode
	if errors.As(err, &ec) {
		return int(ec)
	}
	fmt.Fprintf(stderr, "ptb: %v\n", err)
	var ue *usageError
	var jue *jobrun.UsageError
	switch {
	case errors.As(err, &ue), errors.As(err, &jue):
		return 2
	case got.Load() != 0:
		return 128 + int(got.Load())
	}
	return 1
}

func newRootCmd(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "ptb",
		Short: "PostTrainBench: can an AI agent post-train an LLM on its own?",
		Long: `ptb runs PostTrainBench jobs end to end: an agent CLI post-trains a base
model inside a sandbox under a hard deadline; ptb then collects, audits and
evaluates what it left and records result.json in the run directory.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{msg: err.Error() + "\nRun '" + c.CommandPath() + " --help' for usage."}
	})
	root.AddCommand(
		newVersionCmd(e),
		newRunCmd(e),
		newDemoCmd(e),
		newDoctorCmd(e),
		newAgentRunCmd(e),
		newSandboxInitCmd(e),
		newHumanEvalWorkerCmd(e),
		newSandboxExecCmd(e),
		newTraceCmd(e),
		newModelserverCmd(e),
		newReportCmd(e),
		newImportCmd(e),
		newAuditCmd(e),
		newEvalCmd(e),
		newDataCmd(e),
		newCampaignCmd(e),
	)
	return root
}

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the ptb version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintln(e.stdout, "ptb", Version)
			return nil
		},
	}
}
