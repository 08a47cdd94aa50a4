// Package session runs one agent CLI in a sandbox under a deadline: the one
// place that turns a scaffold's plan (agent.Command) into a sandboxed
// process. The solve stage, the LLM judge, `ptb doctor --agents` and the
// end-to-end tests of the real CLIs all launch through it.
//
// A launch is two steps, as nomad's executor splits a task's plan from its
// start:
//
//	plan, err := session.Prepare(ctx, cfg) // nothing written, nothing started
//	s, err := plan.Start(ctx, stdout, stderr)
//	defer s.Destroy()
//	exit, err := s.Wait(ctx)
//
// Prepare asks the gateway (if any) for its URL inside the sandbox, builds
// the scaffold's command for it, finds the agent CLI's installation on the
// host (Install), builds the complete environment and the sandbox.Spec, and
// wraps the command behind the gateway's relay. In between the caller may
// look at what will run (Plan.Command's secrets, Plan.Bin's version) and
// open its output sinks. Start writes the command's files into the sandbox
// home and workspace without following anything planted there
// (WriteFiles), then starts the process. Wait supervises it: at the
// deadline, or when its context ends, the whole tree gets SIGTERM, the
// grace period, then SIGKILL (sandbox.Process.Stop), and Exit.Reason says
// why it ended.
//
// The environment is an allowlist, never the host's as a whole, built in
// one order for every caller: Config.Env, the gateway's variables (sorted
// by name), the scaffold command's own, then Config.PassEnv. A variable
// keeps the place it was first set at and takes the last value set (Env).
package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/agent/cliutil"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/sandbox"
)

// Config is one launch of an agent CLI.
type Config struct {
	Backend  sandbox.Backend // required
	Scaffold agent.Scaffold  // required
	// Launch is what the scaffold builds its command from. Workspace and
	// Home are set from the fields below; with a Gateway, Endpoint is the
	// gateway's LLM route.
	Launch agent.Launch

	Workspace string // host directory: writable, the working directory
	Home      string // host directory: writable, HOME
	Tmp       string // host directory for the private /tmp
	// Files are written after the command's own files (the solve's
	// timer.sh), never through a link.
	Files []File

	// Install says how the agent CLI's installation is found and shown
	// read-only; nil: it is not looked for.
	Install *Install

	// Env is the start of the environment, KEY=VALUE in order (build it
	// with an Env to pass host variables by name).
	Env []string
	// PassEnv come after the command's variables: KEY=VALUE as given, or a
	// bare KEY for the host's value (left out when the host has none).
	PassEnv []string
	// LookupEnv reads the host's variables for PassEnv; nil: os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// SortEnv sorts the environment by name.
	SortEnv bool

	ReadOnly []string // host paths shown read-only, before the installation's
	Hidden   []string // host paths made invisible
	Network  sandbox.Network
	GPUs     []int
	Limits   sandbox.Limits
	// Gateway, when set, is the sandbox's only way out: the command is
	// pointed at it and started behind its relay (sandbox.Gateway.Apply).
	Gateway *Gateway

	// Deadline and Timeout (counted from the start) end the session;
	// the earlier wins, and a zero one does not count.
	Deadline time.Time
	Timeout  time.Duration
	// Grace is how long the tree has between SIGTERM and SIGKILL when the
	// session is stopped.
	Grace time.Duration
	Log   *slog.Logger // nil: nothing logged
}

// File is a file the harness writes into a directory the agent owns.
type File struct {
	Dir  string // host directory: Config.Workspace or Config.Home
	Name string // path relative to Dir
	Data []byte
	Perm os.FileMode
}

// Install finds the agent CLI (the command's argv[0]) on the host, so that
// its installation is shown read-only: the executable's directory, the
// directory it links to, and for an npm package the node_modules holding it
// and the node that runs it (cliutil.InstallPaths). A CLI that is itself
// one of Config.ReadOnly (the ptb binary as the scripted agent) adds
// nothing more.
type Install struct {
	// Path is the search path (colon separated) for a bare argv[0] and for
	// node; "" means the sandbox's PATH.
	Path string
	// Required makes a CLI that is not found an error (*NotInstalledError);
	// otherwise nothing is added.
	Required bool
	// Resolve replaces argv[0] by the absolute path found, and puts its
	// directory and node's first on the sandbox's PATH.
	Resolve bool
	// AlwaysNode shows node's installation whether or not the CLI is an
	// npm package.
	AlwaysNode bool
}

// NotInstalledError is Prepare's error when Install.Required and the agent
// CLI is not found.
type NotInstalledError struct {
	Agent   string // the scaffold's name
	Command string // argv[0]
	Err     error  // why the search failed
}

func (e *NotInstalledError) Error() string { return fmt.Sprintf("agent %s: %v", e.Agent, e.Err) }
func (e *NotInstalledError) Unwrap() error { return e.Err }

// GatewayServer is a started gateway, as the sandbox reaches it at base.
type GatewayServer interface {
	// Env is what the sandbox's environment gets: proxy variables,
	// HF_ENDPOINT, placeholder keys; never a real credential.
	Env(base string) map[string]string
	// Endpoint is the LLM route the agent CLI is pointed at.
	Endpoint(base string) string
}

// Gateway is how the session reaches a gateway.
type Gateway struct {
	// Link is the relay to the gateway's socket; its port is chosen on
	// first use and kept, so later launches with the same Link share it.
	Link   *sandbox.Gateway
	Server GatewayServer
}

// End reasons, as Exit.Reason gives them (the same words as result.json's
// end_reason).
const (
	ReasonExited      = result.EndExited   // the agent exited on its own
	ReasonSignal      = result.EndSignal   // it died of a signal the harness did not send
	ReasonLimit       = result.EndLimit    // the sandbox stopped it at a resource limit (Exit.Limit)
	ReasonDeadline    = result.EndDeadline // it was stopped at the deadline
	ReasonInterrupted = "interrupted"      // it was stopped because Wait's context ended
)

// Exit is how a session ended.
type Exit struct {
	sandbox.Exit
	// Reason is one of the Reason constants; "" when waiting for the
	// process failed (Wait's error says why).
	Reason string
}

// Plan is a prepared launch: what will be written and run.
type Plan struct {
	// Command is the scaffold's command (argv[0] resolved under
	// Install.Resolve).
	Command agent.Command
	// Bin is the agent CLI found on the host; "" when it was not looked
	// for or not found.
	Bin string
	// Spec is what the backend will start, with its output still unset.
	Spec sandbox.Spec

	cfg Config
}

// Prepare builds the launch cfg describes. It writes and starts nothing
// (with a gateway and a backend that is not isolated, it may choose the
// relay's host port).
func Prepare(ctx context.Context, cfg Config) (*Plan, error) {
	if cfg.Backend == nil || cfg.Scaffold == nil {
		return nil, errors.New("agent session: a sandbox backend and a scaffold are required")
	}
	if g := cfg.Gateway; g != nil && (g.Link == nil || g.Server == nil) {
		return nil, errors.New("agent session: a gateway needs its link and its server")
	}
	name := cfg.Scaffold.Name()
	caps := cfg.Backend.Capabilities()
	launch := cfg.Launch
	launch.Workspace, launch.Home = cfg.Workspace, cfg.Home
	base := ""
	if cfg.Gateway != nil {
		var err error
		if base, err = cfg.Gateway.Link.URL(caps); err != nil {
			return nil, err
		}
		launch.Endpoint = cfg.Gateway.Server.Endpoint(base)
	}
	cmd, err := cfg.Scaffold.Command(ctx, launch)
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", name, err)
	}
	if len(cmd.Argv) == 0 {
		return nil, fmt.Errorf("agent %s: the scaffold built an empty command", name)
	}
	cmd.Argv = slices.Clone(cmd.Argv)

	env := Env{Lookup: cfg.LookupEnv}
	env.Add(cfg.Env...)
	if cfg.Gateway != nil {
		gw := cfg.Gateway.Server.Env(base)
		for _, k := range slices.Sorted(maps.Keys(gw)) {
			env.Set(k, gw[k])
		}
	}
	env.Add(cmd.Env...)
	env.Pass(cfg.PassEnv...)

	p := &Plan{Command: cmd, cfg: cfg}
	ro := slices.Clone(cfg.ReadOnly)
	if in := cfg.Install; in != nil {
		paths, err := p.install(*in, &env)
		if err != nil {
			return nil, err
		}
		ro = append(ro, paths...)
	}
	vars := env.List()
	if cfg.SortEnv {
		slices.SortFunc(vars, func(a, b string) int {
			ka, _, _ := strings.Cut(a, "=")
			kb, _, _ := strings.Cut(b, "=")
			return strings.Compare(ka, kb)
		})
	}
	p.Spec = sandbox.Spec{
		Argv:      p.Command.Argv,
		Env:       vars,
		Dir:       cfg.Workspace,
		Workspace: cfg.Workspace,
		Home:      cfg.Home,
		Tmp:       cfg.Tmp,
		ReadOnly:  dedupe(ro),
		Hidden:    cfg.Hidden,
		Network:   cfg.Network,
		GPUs:      cfg.GPUs,
		Limits:    cfg.Limits,
	}
	if cfg.Gateway != nil {
		// One mechanism for every backend: the command starts behind
		// ptb sandbox-init, which relays 127.0.0.1 to the gateway's socket.
		if p.Spec, err = cfg.Gateway.Link.Apply(p.Spec, caps); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// install finds the CLI and returns the host paths its installation needs.
func (p *Plan) install(in Install, env *Env) ([]string, error) {
	path := in.Path
	if path == "" {
		path, _ = env.Get("PATH")
	}
	bin, err := cliutil.LookPath(p.Command.Argv[0], path)
	if err != nil {
		if in.Required {
			return nil, &NotInstalledError{Agent: p.cfg.Scaffold.Name(), Command: p.Command.Argv[0], Err: err}
		}
		return nil, nil
	}
	p.Bin = bin
	var ro []string
	front := []string{filepath.Dir(bin)}
	shown := slices.Contains(p.cfg.ReadOnly, p.Command.Argv[0]) || slices.Contains(p.cfg.ReadOnly, bin)
	if !shown {
		ro = cliutil.InstallPaths(bin)
	}
	// An npm CLI runs on node, which need not live in a system directory
	// the sandbox shows.
	if !shown && (in.AlwaysNode || slices.ContainsFunc(ro, func(d string) bool { return strings.HasSuffix(d, "/node_modules") })) {
		if node, err := cliutil.LookPath("node", path); err == nil {
			ro = append(ro, cliutil.InstallPaths(node)...)
			front = append(front, filepath.Dir(node))
		}
	}
	if in.Resolve {
		p.Command.Argv[0] = bin
		cur, _ := env.Get("PATH")
		env.Set("PATH", strings.Join(dedupe(append(front, filepath.SplitList(cur)...)), string(filepath.ListSeparator)))
	}
	return ro, nil
}

// Start writes the command's files (home files, then workspace files, then
// Config.Files), each never through a link the agent planted, and starts
// the command with its output to stdout and stderr (nil: discarded). Call
// it once.
func (p *Plan) Start(ctx context.Context, stdout, stderr io.Writer) (*Session, error) {
	cfg := p.cfg
	// What the backend cannot enforce fails here, before anything is
	// written or started.
	if err := cfg.Backend.Capabilities().Supports(p.Spec); err != nil {
		return nil, fmt.Errorf("start agent %s: %w", cfg.Scaffold.Name(), err)
	}
	if err := WriteFiles(cfg.Home, p.Command.HomeFiles, 0o600); err != nil {
		return nil, err
	}
	if err := WriteFiles(cfg.Workspace, p.Command.WorkspaceFiles, 0o600); err != nil {
		return nil, err
	}
	for _, f := range cfg.Files {
		if err := WriteFiles(f.Dir, map[string][]byte{f.Name: f.Data}, f.Perm); err != nil {
			return nil, err
		}
	}
	spec := p.Spec
	spec.Stdout, spec.Stderr = stdout, stderr
	proc, err := cfg.Backend.Start(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("start agent %s: %w", cfg.Scaffold.Name(), err)
	}
	s := &Session{proc: proc, spec: spec, backend: cfg.Backend.Capabilities().Name, deadline: cfg.Deadline, grace: cfg.Grace, log: cfg.Log}
	if cfg.Timeout > 0 {
		if d := time.Now().Add(cfg.Timeout); s.deadline.IsZero() || d.Before(s.deadline) {
			s.deadline = d
		}
	}
	return s, nil
}

// Session is a started agent CLI.
type Session struct {
	proc     sandbox.Process
	spec     sandbox.Spec
	backend  string
	deadline time.Time
	grace    time.Duration
	log      *slog.Logger
}

// Handle is the sandboxed process's serialisable identity (for a harness
// that restarts to reap what is left of it).
func (s *Session) Handle() sandbox.Handle { return s.proc.Handle() }

// Spec is what was started.
func (s *Session) Spec() sandbox.Spec { return s.spec }

// Limits says how each resource limit asked for is enforced: what the
// sandbox reports, or, for a backend that enforces none, each limit asked
// for as not enforced.
func (s *Session) Limits() []sandbox.LimitStatus {
	if lp, ok := s.proc.(sandbox.Limited); ok {
		return lp.Limits()
	}
	how := "not enforced: the " + s.backend + " backend enforces no limits"
	l := s.spec.Limits
	var out []sandbox.LimitStatus
	for _, a := range []struct {
		name string
		v    float64
	}{{sandbox.LimitMemory, float64(l.MemoryBytes)}, {sandbox.LimitPids, float64(l.Pids)}, {sandbox.LimitCPU, l.CPUs},
		{sandbox.LimitTmp, float64(l.TmpBytes)}, {sandbox.LimitDisk, float64(l.DiskBytes)}, {sandbox.LimitFiles, float64(l.DiskFiles)}} {
		if a.v > 0 {
			out = append(out, sandbox.LimitStatus{Name: a.name, Value: a.v, How: how})
		}
	}
	return out
}

// Wait supervises the session until the process exits, the deadline
// passes or ctx ends; in the last two cases the whole tree is stopped
// (SIGTERM, the grace period, SIGKILL) and waited for. The error is the
// backend's, when waiting for the process failed; the Exit's Reason is then
// "" unless the session was being stopped. Call it once.
func (s *Session) Wait(ctx context.Context) (Exit, error) {
	type waited struct {
		ex  sandbox.Exit
		err error
	}
	exitc := make(chan waited, 1)
	go func() {
		ex, err := s.proc.Wait(context.Background())
		exitc <- waited{ex, err}
	}()
	var deadline <-chan time.Time
	if !s.deadline.IsZero() {
		t := time.NewTimer(time.Until(s.deadline))
		defer t.Stop()
		deadline = t.C
	}
	var w waited
	reason := ""
	select {
	case w = <-exitc:
		// A scheduler that stops a job signals every process of it at
		// once (Slurm's TERM on preemption or requeue): the agent can
		// die of it a moment before ptb's own handler ends ctx. An
		// agent that ends while ctx ends was stopped with the run, not
		// finished: the solve must resume, not go on to evaluation
		// without a final_model.
		if stoppedWithRun(ctx) {
			reason = ReasonInterrupted
		}
	case <-deadline:
		reason = ReasonDeadline
		if s.log != nil {
			s.log.Info("deadline reached, stopping agent", "grace", s.grace)
		}
		s.proc.Stop(s.grace)
		w = <-exitc
	case <-ctx.Done():
		reason = ReasonInterrupted
		s.proc.Stop(s.grace)
		w = <-exitc
	}
	ex := Exit{Exit: w.ex, Reason: reason}
	switch {
	case reason != "":
	case w.err == nil && w.ex.Limit != "":
		ex.Reason = ReasonLimit
	case w.err != nil:
	case w.ex.Signal != "":
		ex.Reason = ReasonSignal
	default:
		ex.Reason = ReasonExited
	}
	return ex, w.err
}

// stopRace is how long after the agent's end Wait still takes the end of
// its context as the reason: the scheduler's signal reaches the agent and
// ptb in an order nobody controls.
const stopRace = 250 * time.Millisecond

// stoppedWithRun reports whether ctx ends within stopRace.
func stoppedWithRun(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	t := time.NewTimer(stopRace)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return true
	case <-t.C:
		return false
	}
}

// Stop sends SIGTERM to the whole tree, waits up to grace, then SIGKILLs
// what is left.
func (s *Session) Stop(grace time.Duration) error { return s.proc.Stop(grace) }

// Destroy kills whatever is left and releases the sandbox. Safe to call
// twice.
func (s *Session) Destroy() error { return s.proc.Destroy() }

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
