package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ptb-dev/ptb/internal/agent/cliutil"
	"github.com/ptb-dev/ptb/internal/agent/npmcli"
	"github.com/ptb-dev/ptb/internal/pipeline"
	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/sandbox/bwrap"
)

// check is one line of `ptb doctor`.
type check struct {
	Name   string `json:"name"`
	Status string `json:"status"` // pass | fail | warn
	Detail string `json:"detail"`
}

func newDoctorCmd(e *env) *cobra.Command {
	var out string
	var asJSON bool
	var ag agentFlags
	c := &cobra.Command{
		Use:   "doctor",
		Short: "Check what this machine can run: sandboxes, GPUs, disk, agent CLIs, inference servers",
		Long: `Check what this machine can run. Each line is pass, warn (works, with a
limitation) or fail (that part of ptb cannot run here). The exit code is 1
when anything a real job needs (a sandbox, a GPU, an inference server) fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := ag.validate(); err != nil {
				return err
			}
			checks := doctorChecks(cmd.Context(), out, ag.prefix)
			if ag.enabled {
				checks = append(checks, agentChecks(cmd.Context(), e.stderr, ag)...)
			}
			failed := false
			for _, c := range checks {
				if c.Status == "fail" {
					failed = true
				}
			}
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				enc.Encode(checks)
			} else {
				for _, c := range checks {
					fmt.Fprintf(e.stdout, "%-4s  %-22s %s\n", strings.ToUpper(c.Status), c.Name, c.Detail)
				}
			}
			if failed {
				return exitCode(1)
			}
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "runs", "output root whose free disk space to check")
	c.Flags().BoolVar(&asJSON, "json", false, "print the checks as JSON")
	ag.register(c.Flags())
	return c
}

func doctorChecks(ctx context.Context, out, agentsPrefix string) []check {
	searchPath := os.Getenv("PATH")
	if agentsPrefix != "" {
		searchPath = npmcli.Bin(agentsPrefix) + string(os.PathListSeparator) + searchPath
	}
	var cs []check
	add := func(name, status, format string, args ...any) {
		cs = append(cs, check{Name: name, Status: status, Detail: fmt.Sprintf(format, args...)})
	}
	// Sandboxes.
	if err := bwrap.New().Check(ctx); err != nil {
		add("sandbox bwrap", "fail", "%v", err)
	} else {
		add("sandbox bwrap", "pass", "%s: user, pid, net, ipc, uts and mount namespaces work", versionOf(ctx, "bwrap", "--version"))
	}
	add("sandbox none", "warn", "always available; development only, runs are recorded as unsandboxed")
	for _, name := range []string{"docker", "podman", "apptainer"} {
		if _, err := exec.LookPath(name); err == nil {
			add("sandbox "+name, "warn", "%s found, but ptb has no %s backend yet", name, name)
		}
	}
	// GPUs.
	if gpus := pipeline.GPUs(ctx); len(gpus) > 0 {
		add("gpus", "pass", "%s", strings.Join(gpus, "; "))
	} else if _, err := exec.LookPath("nvidia-smi"); err != nil {
		add("gpus", "fail", "nvidia-smi not found: no NVIDIA GPU usable (agents cannot train; ptb demo still works)")
	} else {
		add("gpus", "fail", "nvidia-smi found but lists no GPU")
	}
	// Disk.
	dir := out
	for {
		if _, err := os.Stat(dir); err == nil {
			break
		}
		if p := filepath.Dir(dir); p != dir {
			dir = p
		} else {
			break
		}
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		add("disk", "fail", "cannot stat %s: %v", dir, err)
	} else {
		free := float64(st.Bavail) * float64(st.Bsize) / (1 << 30)
		status := "pass"
		note := ""
		if free < 100 {
			status, note = "warn", " (a job with a 4B model and checkpoints can use 100 GiB or more)"
		}
		add("disk", status, "%.0f GiB free under %s%s", free, dir, note)
	}
	// Agent CLIs.
	for _, a := range registry.Default().Agents {
		if a.Builtin {
			add("agent "+a.Name, "pass", "built in")
			continue
		}
		bin, err := cliutil.LookPath(a.CLI, searchPath)
		if err != nil {
			add("agent "+a.Name, "warn", "%s not on PATH (npm install -g %s)", a.CLI, a.NPM)
			continue
		}
		add("agent "+a.Name, "pass", "%s %s", bin, versionOf(ctx, bin, "--version"))
	}
	// Inference.
	if _, err := exec.LookPath("vllm"); err == nil {
		add("inference vllm", "pass", "vllm %s", versionOf(ctx, "vllm", "--version"))
	} else {
		add("inference vllm", "fail", "vllm not on PATH: final evaluations need it (or --eval-backend url with a running server)")
	}
	if _, err := exec.LookPath("python3"); err != nil {
		add("python3", "fail", "python3 not found: HumanEval programs and evaluate.py need it")
	} else {
		add("python3", "pass", "%s", versionOf(ctx, "python3", "--version"))
		if v := versionOf(ctx, "python3", "-c", "import transformers, torch; print(transformers.__version__, torch.__version__)"); v != "unknown" {
			add("inference transformers", "pass", "transformers, torch %s", v)
		} else {
			add("inference transformers", "warn", "python3 cannot import transformers and torch")
		}
	}
	return cs
}

// versionOf runs a command and returns its first output line, or "unknown".
func versionOf(ctx context.Context, name string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	b, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return "unknown"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return line
}
