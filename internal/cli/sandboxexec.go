package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/bwrap"
)

// newSandboxExecCmd runs one command in the bwrap sandbox a job's agent
// gets (same file system allowlist, GPU binding, limits and uid), in a
// scratch workspace: for checking a machine (scripts/gpu_sandbox_check.sh)
// and for debugging the sandbox.
func newSandboxExecCmd(e *env) *cobra.Command {
	var (
		gpus, network string
		ro, lims      []string
	)
	c := &cobra.Command{
		Use:    "sandbox-exec [--gpus 0] [--ro PATH]... [--limit NAME=VALUE]... -- COMMAND [ARG]...",
		Short:  "Run a command in the agent's bwrap sandbox, in a scratch workspace",
		Hidden: true,
		Args:   cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			g, err := parseGPUs(gpus)
			if err != nil {
				return err
			}
			var spec job.Spec
			for _, l := range lims {
				if err := spec.SetLimit(l); err != nil {
					return usagef("--limit: %v", err)
				}
			}
			for _, p := range ro {
				abs, err := filepath.Abs(p)
				if err != nil {
					return err
				}
				spec.ReadOnly = append(spec.ReadOnly, abs)
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			b := bwrap.New()
			if err := b.Check(ctx); err != nil {
				return err
			}
			scratch, err := os.MkdirTemp("", "ptb-sandbox-exec-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(scratch)
			ws, home, tmp := filepath.Join(scratch, "workspace"), filepath.Join(scratch, "home"), filepath.Join(scratch, "tmp")
			for _, d := range []string{ws, home, tmp} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					return err
				}
			}
			env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "LANG=C.UTF-8", "TMPDIR=/tmp"}
			if len(g) == 0 {
				env = append(env, "CUDA_VISIBLE_DEVICES=")
			}
			p, err := b.Start(ctx, sandbox.Spec{Argv: args, Env: env, Dir: ws, Workspace: ws, Home: home, Tmp: tmp,
				ReadOnly: spec.ReadOnly, Network: network, GPUs: g, Limits: spec.SandboxLimits(),
				Stdin: e.stdin, Stdout: e.stdout, Stderr: e.stderr})
			if err != nil {
				return err
			}
			defer p.Destroy()
			ex, err := p.Wait(ctx)
			if err != nil {
				p.Stop(job.DefaultGrace)
				return err
			}
			if lp, ok := p.(sandbox.Limited); ok {
				for _, l := range lp.Limits() {
					fmt.Fprintf(e.stderr, "ptb: limit %s %.0f: %s\n", l.Name, l.Value, l.How)
				}
			}
			switch {
			case ex.Limit != "":
				fmt.Fprintf(e.stderr, "ptb: the command hit its %s limit\n", ex.Limit)
				return exitCode(1)
			case ex.Signal != "":
				fmt.Fprintf(e.stderr, "ptb: the command died of %s\n", ex.Signal)
				return exitCode(1)
			case ex.Code != 0:
				return exitCode(ex.Code)
			}
			return nil
		},
	}
	c.Flags().SetInterspersed(false)
	c.Flags().StringVar(&gpus, "gpus", "", "GPU indices to bind, e.g. 0")
	c.Flags().StringArrayVar(&ro, "ro", nil, "host path made visible read-only; repeatable")
	c.Flags().StringArrayVar(&lims, "limit", nil, "resource limit NAME=VALUE as for ptb run; repeatable (default: none)")
	c.Flags().StringVar(&network, "network", sandbox.NetworkNone, "none or host")
	return c
}
