package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ptb-dev/ptb/internal/agent/cliutil"
	"github.com/ptb-dev/ptb/internal/agent/npmcli"
	"github.com/ptb-dev/ptb/internal/agentinfo"
	"github.com/ptb-dev/ptb/internal/campaign/local"
	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/jobrun"
	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/sandbox"
)

// preflight checks, before a run directory exists, what would make the run
// fail for a reason the user can fix: the agent CLI, its credentials, the
// files the job names, the GPUs. Every problem is listed at once, as a
// usage error (exit 2), and nothing is left on disk.
type preflight struct {
	getenv func(string) string
	// gpus lists the GPU indices of this machine.
	gpus func(ctx context.Context) ([]int, error)
}

func defaultPreflight() preflight {
	return preflight{getenv: os.Getenv, gpus: func(ctx context.Context) ([]int, error) {
		return local.DetectGPUs(ctx, "nvidia-smi", "/dev")
	}}
}

func (p preflight) check(ctx context.Context, spec job.Spec, reg *registry.Registry) error {
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	a, err := reg.Agent(spec.Agent)
	if err == nil && !a.Builtin {
		path := p.sandboxPath(spec)
		if _, err := cliutil.LookPath(a.CLI, path); err != nil {
			install := "npm install -g " + a.NPM
			if pkg, ok := npmcli.Packages()[a.Name]; ok {
				install = "npm install -g " + pkg
			}
			add("agent %s: the %s CLI is not installed (not found on PATH or under --agents-prefix); install it with `%s` (or into a prefix with `npm install --prefix DIR %s` and pass --agents-prefix DIR)",
				a.Name, a.CLI, install, strings.TrimPrefix(install, "npm install -g "))
		}
		if msg := p.credentials(spec); msg != "" {
			add("%s", msg)
		}
	}
	for _, f := range []struct{ flag, path string }{
		{"--script", spec.Script}, {"--credentials", spec.Credentials}, {"--eval-responses", spec.Eval.Responses},
	} {
		if f.path == "" {
			continue
		}
		if st, err := os.Stat(f.path); err != nil {
			add("%s %s: %v", f.flag, f.path, errors.Unwrap(err))
		} else if st.IsDir() {
			add("%s %s: is a directory, want a file", f.flag, f.path)
		}
	}
	if spec.Eval.DataDir != "" {
		if err := jobrun.CheckDataDir(spec.Eval.DataDir); err != nil {
			add("%v", err)
		}
	}
	if len(spec.GPUs) > 0 {
		have, err := p.gpus(ctx)
		switch {
		case err != nil:
			add("--gpus %s: cannot list this machine's GPUs (%v); pass no --gpus for a run without a GPU", joinInts(spec.GPUs), err)
		default:
			var missing []string
			for _, g := range spec.GPUs {
				if !slices.Contains(have, g) {
					missing = append(missing, strconv.Itoa(g))
				}
			}
			if len(missing) > 0 {
				avail := "none"
				if len(have) > 0 {
					avail = joinInts(have)
				}
				add("--gpus: GPU %s does not exist here (GPUs on this machine: %s)", strings.Join(missing, ","), avail)
			}
		}
	}
	if len(probs) == 0 {
		return nil
	}
	return usagef("the run cannot start, and no run directory was made:\n  - %s", strings.Join(probs, "\n  - "))
}

// sandboxPath is the PATH the agent will get: a PATH=... given with --env
// (as --agents-prefix adds), else the host's.
func (p preflight) sandboxPath(spec job.Spec) string {
	path := p.getenv("PATH")
	for _, kv := range spec.PassEnv {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	return path
}

// credentials returns what to do when the agent has no way to authenticate,
// or "" when it has one: an --endpoint (a model server that needs no real
// key), a --credentials file, or a key variable passed with --env. Under
// the gateway the key stays in ptb's environment and the gateway's own
// check (gatewayProviders) names the variable instead.
func (p preflight) credentials(spec job.Spec) string {
	if spec.Network == sandbox.NetworkGateway {
		if _, err := jobrun.GatewayProviders(spec, p.getenv); err != nil {
			return err.Error()
		}
		return ""
	}
	if spec.Endpoint != "" || spec.Credentials != "" {
		return ""
	}
	info, _ := agentinfo.Lookup(spec.Agent)
	vars := info.Keys(spec.AgentModel)
	if len(vars) == 0 {
		return ""
	}
	for _, kv := range spec.PassEnv {
		k, v, hasValue := strings.Cut(kv, "=")
		if !slices.Contains(vars, k) {
			continue
		}
		if hasValue && v != "" || !hasValue && p.getenv(k) != "" {
			return ""
		}
		if !hasValue {
			return fmt.Sprintf("agent %s: --env %s is given but %s is not set in this shell; export %s=... first", spec.Agent, k, k, k)
		}
	}
	for _, k := range vars {
		if p.getenv(k) != "" {
			return fmt.Sprintf("agent %s: %s is set here but does not reach the sandbox; add --env %s", spec.Agent, k, k)
		}
	}
	return fmt.Sprintf("agent %s: no credentials: export %s=... and pass --env %s, or pass --credentials FILE (the CLI's subscription login, %s), or --endpoint URL for a model server that needs no key",
		spec.Agent, vars[0], vars[0], info.LoginFile)
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

// agentsPrefixEnv makes the CLIs of an npm prefix visible to the agent: the
// prefix's bin first on the sandbox's PATH, the prefix mounted read-only.
func agentsPrefixEnv(spec *job.Spec, prefix, hostPath string) error {
	abs, err := filepath.Abs(prefix)
	if err != nil {
		return err
	}
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		return usagef("--agents-prefix %s: not a directory (an npm prefix, as made by npm install --prefix DIR)", prefix)
	}
	spec.PassEnv = append(spec.PassEnv, "PATH="+npmcli.Bin(abs)+string(os.PathListSeparator)+hostPath)
	spec.ReadOnly = append(spec.ReadOnly, abs)
	return nil
}
