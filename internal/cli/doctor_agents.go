package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/agent/agentcheck"
	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/sandbox"
)

// agentFlags are `ptb doctor`'s flags for the agent sessions.
type agentFlags struct {
	enabled bool
	sandbox string
	prefix  string
	timeout time.Duration
}

func (f *agentFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.enabled, "agents", false, "also run a two-turn scripted session of each installed agent CLI in the sandbox")
	fs.StringVar(&f.sandbox, "sandbox", "bwrap", "sandbox for --agents: bwrap or none (bwrap falls back to none, with a warning, when unusable)")
	fs.StringVar(&f.prefix, "agents-prefix", "", "an npm prefix whose node_modules/.bin is searched for the agent CLIs before PATH")
	fs.DurationVar(&f.timeout, "agents-timeout", agentcheck.DefaultTimeout, "hard limit on each agent session")
}

// validate reports a usage mistake in the flags.
func (f *agentFlags) validate() error {
	if !slices.Contains(sandbox.Backends(), f.sandbox) {
		return usagef("--sandbox %q: want %s", f.sandbox, strings.Join(sandbox.Backends(), " or "))
	}
	if f.prefix != "" {
		if fi, err := os.Stat(f.prefix); err != nil || !fi.IsDir() {
			return usagef("--agents-prefix %s: not a directory", f.prefix)
		}
	}
	if f.timeout <= 0 {
		return usagef("--agents-timeout must be positive")
	}
	return nil
}

// agentChecks runs every registry CLI agent's scripted session, all at once,
// and returns one line each (skip is reported as warn), preceded by a warn
// line when the sandbox fell back to none. Progress goes to progress.
func agentChecks(ctx context.Context, progress io.Writer, f agentFlags) []check {
	var cs []check
	sb, err := sandbox.Lookup(f.sandbox)
	if err != nil {
		return append(cs, check{Name: "agents sandbox", Status: "fail", Detail: err.Error()})
	}
	if err := sb.Check(ctx); err != nil {
		cs = append(cs, check{Name: "agents sandbox", Status: "warn",
			Detail: fmt.Sprintf("%s unusable, running the agent sessions unsandboxed: %v", f.sandbox, err)})
		if sb, err = sandbox.Lookup("none"); err != nil {
			return append(cs, check{Name: "agents sandbox", Status: "fail", Detail: err.Error()})
		}
	}
	path := os.Getenv("PATH")
	var ro []string
	if f.prefix != "" {
		abs, err := filepath.Abs(f.prefix)
		if err == nil {
			path = filepath.Join(abs, "node_modules", ".bin") + string(filepath.ListSeparator) + path
			ro = append(ro, abs)
		}
	}
	// The registry's agents with a registered adapter (agent.Register).
	var agents []registry.Agent
	var adapters []agent.Adapter
	for _, a := range registry.Default().Agents {
		if ad, ok := agent.Lookup(a.Name); ok && ad.New != nil {
			agents, adapters = append(agents, a), append(adapters, ad)
		}
	}
	fmt.Fprintf(progress, "running %d agent sessions in sandbox %s (up to %s each)...\n",
		len(agents), sb.Capabilities().Name, f.timeout)
	results := make([]agentcheck.Result, len(agents))
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			install := ""
			if a.NPM != "" {
				install = "npm install -g " + a.NPM
			}
			sc := adapters[i].New(agent.Options{Bin: a.CLI})
			results[i] = agentcheck.Check(ctx, sb, sc, agentcheck.Options{
				Timeout: f.timeout, Path: path, ReadOnly: ro, Install: install})
		}()
	}
	wg.Wait()
	for _, r := range results {
		cs = append(cs, agentResultCheck(r))
	}
	return cs
}

// agentResultCheck renders a session result as a doctor line.
func agentResultCheck(r agentcheck.Result) check {
	c := check{Name: "agent session " + r.Agent}
	secs := r.Duration.Seconds()
	v := r.Version
	if v == "" {
		v = "version unknown"
	}
	switch r.Status {
	case agentcheck.Pass:
		c.Status = "pass"
		c.Detail = fmt.Sprintf("%s: two scripted turns in %s, tool call ran (%.1f s)", v, r.Sandbox, secs)
	case agentcheck.Skip:
		c.Status = "warn"
		c.Detail = r.Reason
	default:
		c.Status = "fail"
		c.Detail = fmt.Sprintf("%s in %s: %s (%.1f s)", v, r.Sandbox, r.Reason, secs)
	}
	return c
}
