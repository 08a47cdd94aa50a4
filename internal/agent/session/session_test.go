package session_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/agent/cliutil"
	"github.com/ptb-dev/ptb/internal/agent/session"
	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/bwrap"
	"github.com/ptb-dev/ptb/internal/sandbox/execproc"
	"github.com/ptb-dev/ptb/internal/sandbox/none"
	"github.com/ptb-dev/ptb/internal/sandbox/proctree"
	"github.com/ptb-dev/ptb/internal/sandbox/sandboxtest"
)

// modeEnv makes the re-executed test binary play an agent CLI.
const modeEnv = "PTB_SESSION_TEST_AGENT"

func TestMain(m *testing.M) {
	if mode, ok := os.LookupEnv(modeEnv); ok {
		os.Exit(agentMain(mode))
	}
	os.Exit(m.Run())
}

// agentMain is the agent CLI the tests launch.
//
//	env:       prints its environment, then exits 0
//	exit:N:    exits N
//	term-exit: on SIGTERM prints "got TERM" and exits 0
//	term-stay: on SIGTERM prints "got TERM" and keeps running
//	selfkill:  kills itself with SIGKILL
func agentMain(mode string) int {
	name, arg, _ := strings.Cut(mode, ":")
	switch name {
	case "env":
		for _, kv := range os.Environ() {
			fmt.Println(kv)
		}
		return 0
	case "exit":
		var n int
		fmt.Sscan(arg, &n)
		return n
	case "term-exit", "term-stay":
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		fmt.Println("ready")
		for range c {
			fmt.Println("got TERM")
			if name == "term-exit" {
				return 0
			}
		}
	case "selfterm":
		fmt.Println("ready")
		time.Sleep(50 * time.Millisecond)
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
		time.Sleep(time.Hour)
	case "selfkill":
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Hour)
	}
	return 2
}

// fake is a scaffold whose CLI is this test binary playing mode.
type fake struct {
	mode      string
	bin       string // "": this test binary
	env       []string
	home, ws  map[string][]byte
	launched  *agent.Launch // the launch it was given, when set
	commandFn func(agent.Launch) (agent.Command, error)
}

func (f fake) Name() string                   { return "fake" }
func (f fake) Version(context.Context) string { return "" }
func (f fake) Command(_ context.Context, l agent.Launch) (agent.Command, error) {
	if f.launched != nil {
		*f.launched = l
	}
	if f.commandFn != nil {
		return f.commandFn(l)
	}
	bin := f.bin
	if bin == "" {
		bin = os.Args[0]
	}
	return agent.Command{Argv: []string{bin, "-test.run=^$"}, Env: append([]string{modeEnv + "=" + f.mode}, f.env...),
		HomeFiles: f.home, WorkspaceFiles: f.ws}, nil
}

// dirs makes a workspace, home and tmp.
func dirs(t *testing.T) (ws, home, tmp string) {
	root := t.TempDir()
	ws, home, tmp = filepath.Join(root, "workspace"), filepath.Join(root, "home"), filepath.Join(root, "tmp")
	for _, d := range []string{ws, home, tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return ws, home, tmp
}

// buffer is the agent's output; onReady runs once when the agent has
// printed "ready".
type buffer struct {
	sandboxtest.Buffer
	mu      sync.Mutex
	onReady func()
}

func (b *buffer) Write(p []byte) (int, error) {
	n, err := b.Buffer.Write(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.onReady != nil && strings.Contains(b.Buffer.String(), "ready\n") {
		go b.onReady()
		b.onReady = nil
	}
	return n, err
}

// run launches cfg to the end and returns how it ended and its stdout;
// onReady (if not nil) runs once the agent printed "ready".
func run(t *testing.T, ctx context.Context, cfg session.Config, onReady func()) (session.Exit, string, sandbox.Handle) {
	t.Helper()
	plan, err := session.Prepare(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	out, errb := &buffer{onReady: onReady}, &buffer{}
	s, err := plan.Start(ctx, out, errb)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	ex, err := s.Wait(ctx)
	if err != nil {
		t.Fatalf("wait: %v (stderr %q)", err, errb.String())
	}
	return ex, out.String(), s.Handle()
}

func backends(t *testing.T) []sandbox.Backend {
	bs := []sandbox.Backend{none.New()}
	if b := bwrap.New(); b.Check(context.Background()) == nil {
		bs = append(bs, b)
	} else {
		t.Log("bwrap unusable here; the none backend only")
	}
	return bs
}

// How a session ends: on its own (exit code, signal), at the deadline
// (SIGTERM first, SIGKILL after the grace period when TERM is ignored),
// or when the caller's context ends.
func TestEndReasons(t *testing.T) {
	cases := []struct {
		name       string
		mode       string
		timeout    time.Duration
		cancel     bool
		wantReason string
		wantCode   int
		wantSignal string
		wantOut    []string
	}{
		{"exit 0", "exit:0", time.Minute, false, session.ReasonExited, 0, "", nil},
		{"exit 3", "exit:3", time.Minute, false, session.ReasonExited, 3, "", nil},
		{"killed by a signal of its own", "selfkill", time.Minute, false, session.ReasonSignal, -1, "SIGKILL", nil},
		{"deadline, exits on TERM", "term-exit", 3 * time.Second, false, session.ReasonDeadline, 0, "", []string{"ready", "got TERM"}},
		{"deadline, ignores TERM: KILL after the grace", "term-stay", 3 * time.Second, false, session.ReasonDeadline, -1, "SIGKILL", []string{"ready", "got TERM"}},
		{"interrupted, ignores TERM", "term-stay", time.Minute, true, session.ReasonInterrupted, -1, "SIGKILL", []string{"ready", "got TERM"}},
		// The scheduler's TERM reaches the agent just before ptb's own
		// handler ends the context (Slurm signals every process of a
		// step): interrupted, so that the solve resumes.
		{"dies of TERM as the context ends", "selfterm", time.Minute, true, session.ReasonInterrupted, -1, "SIGTERM", []string{"ready"}},
		{"dies of TERM, context lives on", "selfterm", time.Minute, false, session.ReasonSignal, -1, "SIGTERM", []string{"ready"}},
	}
	for _, b := range backends(t) {
		for _, tc := range cases {
			t.Run(b.Capabilities().Name+"/"+tc.name, func(t *testing.T) {
				ws, home, tmp := dirs(t)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				grace := 500 * time.Millisecond // what ignores TERM is killed soon
				if tc.mode == "term-exit" {
					grace = time.Minute // time to exit on its own, even on a loaded machine
				}
				var onReady func()
				if tc.cancel {
					onReady = cancel // once the agent handles TERM
				}
				if tc.mode == "selfterm" && tc.cancel {
					// the context ends just after the agent died of TERM
					onReady = func() { time.Sleep(100 * time.Millisecond); cancel() }
				}
				ex, out, h := run(t, ctx, session.Config{
					Backend: b, Scaffold: fake{mode: tc.mode}, Workspace: ws, Home: home, Tmp: tmp,
					Install: &session.Install{Path: "/usr/bin:/bin", Required: true},
					Env:     []string{"PATH=/usr/bin:/bin"},
					Timeout: tc.timeout, Grace: grace,
				}, onReady)
				if ex.Reason != tc.wantReason || ex.Code != tc.wantCode || ex.Signal != tc.wantSignal {
					t.Errorf("exit %+v, want reason %s, code %d, signal %q (stdout %q)", ex, tc.wantReason, tc.wantCode, tc.wantSignal, out)
				}
				var lines []string
				for l := range strings.Lines(out) {
					lines = append(lines, strings.TrimSpace(l))
				}
				if tc.wantOut != nil && !slices.Equal(lines, tc.wantOut) {
					t.Errorf("stdout %q, want %q", lines, tc.wantOut)
				}
				var st execproc.State // what the none and bwrap backends keep in a handle
				json.Unmarshal(h.State, &st)
				if st.PID <= 0 || proctree.Alive(st.PID) {
					t.Errorf("the agent (pid %d) outlived Wait", st.PID)
				}
			})
		}
	}
}

// The environment is an allowlist: nothing of the host's but what is
// passed by name, in one order (base, gateway sorted, command, pass),
// a later value replacing an earlier one in the place of the first.
func TestEnvironmentAllowlist(t *testing.T) {
	t.Setenv("PTB_SESSION_HOST_SECRET", "host-secret")
	t.Setenv("PTB_SESSION_PASSED", "from-host")
	cases := []struct {
		name    string
		cfg     func(*session.Config)
		cmdEnv  []string
		want    []string // the environment the agent printed, in order
		notWant []string // substrings that must not appear
	}{
		{
			name: "base then command then pass",
			cfg: func(c *session.Config) {
				c.PassEnv = []string{"PTB_SESSION_PASSED", "B=passed", "PTB_SESSION_UNSET_HERE"}
			},
			cmdEnv:  []string{"A=command"},
			want:    []string{"PATH=/usr/bin:/bin", "A=command", "B=passed", modeEnv + "=env", "PTB_SESSION_PASSED=from-host"},
			notWant: []string{"host-secret", "PTB_SESSION_UNSET_HERE"},
		},
		{
			name:   "sorted",
			cfg:    func(c *session.Config) { c.SortEnv = true },
			cmdEnv: []string{"Z=last", "C=c"},
			want:   []string{"A=base", "B=base", "C=c", "PATH=/usr/bin:/bin", modeEnv + "=env", "Z=last"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ws, home, tmp := dirs(t)
			cfg := session.Config{
				Backend: none.New(), Scaffold: fake{mode: "env", env: tc.cmdEnv}, Workspace: ws, Home: home, Tmp: tmp,
				Env: []string{"PATH=/usr/bin:/bin", "A=base", "B=base"}, Timeout: time.Minute,
			}
			tc.cfg(&cfg)
			plan, err := session.Prepare(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, out, _ := run(t, context.Background(), cfg, nil)
			var got []string
			for l := range strings.Lines(out) {
				got = append(got, strings.TrimSpace(l))
			}
			// The none backend adds nothing: what the agent sees is the spec.
			if !slices.Equal(got, plan.Spec.Env) {
				t.Errorf("agent saw %q\nspec says %q", got, plan.Spec.Env)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("environment %q\nwant %q", got, tc.want)
			}
			for _, s := range tc.notWant {
				if strings.Contains(out, s) {
					t.Errorf("environment holds %q: %q", s, got)
				}
			}
		})
	}
}

// stubGateway is a gateway as the session sees it.
type stubGateway struct{}

func (stubGateway) Env(base string) map[string]string {
	return map[string]string{"HTTPS_PROXY": base, "ANTHROPIC_API_KEY": "placeholder", "A": "gateway"}
}
func (stubGateway) Endpoint(base string) string { return base + "/llm/anthropic" }

// With a gateway the CLI is pointed at its LLM route, gets its variables
// (sorted, after the base, before the command's own) and starts behind the
// relay; the link's port is chosen once and kept for later launches.
func TestGatewayPlan(t *testing.T) {
	ws, home, tmp := dirs(t)
	init := filepath.Join(t.TempDir(), "ptb")
	link := &sandbox.Gateway{Init: init, SocketDir: t.TempDir()}
	var launched agent.Launch
	cfg := session.Config{
		Backend: none.New(), Scaffold: fake{mode: "env", env: []string{"A=command"}, launched: &launched},
		Launch:    agent.Launch{Prompt: "p", Endpoint: "https://job.example"},
		Workspace: ws, Home: home, Tmp: tmp,
		Env:     []string{"PATH=/usr/bin:/bin", "A=base"},
		Gateway: &session.Gateway{Link: link, Server: stubGateway{}},
	}
	plan, err := session.Prepare(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", link.Port)
	if link.Port == 0 {
		t.Fatal("the link's port was not chosen")
	}
	if want := base + "/llm/anthropic"; launched.Endpoint != want || launched.Workspace != ws || launched.Home != home {
		t.Errorf("launch %+v, want endpoint %s, workspace %s, home %s", launched, want, ws, home)
	}
	wantEnv := []string{"PATH=/usr/bin:/bin", "A=command", "ANTHROPIC_API_KEY=placeholder", "HTTPS_PROXY=" + base, modeEnv + "=env"}
	if !slices.Equal(plan.Spec.Env, wantEnv) {
		t.Errorf("env %q\nwant %q", plan.Spec.Env, wantEnv)
	}
	if len(plan.Spec.Argv) < 5 || plan.Spec.Argv[0] != init || plan.Spec.Argv[1] != "sandbox-init" || plan.Spec.Argv[4] != "--" {
		t.Errorf("argv %q: not behind the relay", plan.Spec.Argv)
	}
	if !slices.Contains(plan.Spec.ReadOnly, init) {
		t.Errorf("read-only %q lacks the relay's executable %s", plan.Spec.ReadOnly, init)
	}
	port := link.Port
	if _, err := session.Prepare(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if link.Port != port {
		t.Errorf("second launch moved the relay from port %d to %d", port, link.Port)
	}
}

// The harness runs as root and writes into directories the agent owns:
// nothing the agent planted there is written through.
func TestFilesNotWrittenThroughPlantedLinks(t *testing.T) {
	cases := []struct {
		name    string
		plant   func(t *testing.T, ws, home, victimDir string)
		home    map[string][]byte
		ws      map[string][]byte
		files   func(ws string) []session.File
		wantErr string // "" : the launch goes on, with the file replaced
	}{
		{
			name: "file link in home",
			plant: func(t *testing.T, ws, home, v string) {
				os.Symlink(filepath.Join(v, "victim"), filepath.Join(home, "config.toml"))
			},
			home: map[string][]byte{"config.toml": []byte("harness")},
		},
		{
			name: "file link in workspace, the extra file",
			plant: func(t *testing.T, ws, home, v string) {
				os.Symlink(filepath.Join(v, "victim"), filepath.Join(ws, "timer.sh"))
			},
			files: func(ws string) []session.File {
				return []session.File{{Dir: ws, Name: "timer.sh", Data: []byte("harness"), Perm: 0o755}}
			},
		},
		{
			name: "directory link out of home",
			plant: func(t *testing.T, ws, home, v string) {
				os.Symlink(v, filepath.Join(home, ".codex"))
			},
			home:    map[string][]byte{".codex/victim": []byte("harness")},
			wantErr: "write .codex/victim",
		},
		{
			name:    "a path that escapes",
			home:    map[string][]byte{"../victim": []byte("harness")},
			wantErr: "escapes",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ws, home, tmp := dirs(t)
			victimDir := t.TempDir()
			victim := filepath.Join(victimDir, "victim")
			if err := os.WriteFile(victim, []byte("host data"), 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.plant != nil {
				tc.plant(t, ws, home, victimDir)
			}
			cfg := session.Config{Backend: none.New(), Scaffold: fake{mode: "exit:0", home: tc.home, ws: tc.ws},
				Workspace: ws, Home: home, Tmp: tmp, Env: []string{"PATH=/usr/bin:/bin"}, Timeout: time.Minute}
			if tc.files != nil {
				cfg.Files = tc.files(ws)
			}
			plan, err := session.Prepare(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			s, err := plan.Start(context.Background(), nil, nil)
			if err == nil {
				s.Wait(context.Background())
				s.Destroy()
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("start: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("start: %v, want an error containing %q", err, tc.wantErr)
			}
			if got, _ := os.ReadFile(victim); string(got) != "host data" {
				t.Errorf("the harness wrote through the agent's link: victim now %q", got)
			}
			if tc.wantErr == "" {
				for rel := range tc.home {
					if fi, err := os.Lstat(filepath.Join(home, rel)); err != nil || !fi.Mode().IsRegular() {
						t.Errorf("%s in home: %v, %v; want the harness's regular file", rel, fi, err)
					}
				}
			}
		})
	}
}

// The agent CLI's installation: found on the search path, shown read-only
// with node for an npm package, run by its absolute path under Resolve; a
// missing CLI is a NotInstalledError only when required; a CLI already
// shown read-only adds nothing.
func TestInstall(t *testing.T) {
	root := t.TempDir()
	// An npm prefix: bin/agent -> ../lib/node_modules/agent/cli.js, and a node.
	pkg := filepath.Join(root, "prefix", "lib", "node_modules", "agent")
	nodeDir := filepath.Join(root, "node", "bin")
	for _, d := range []string{pkg, filepath.Join(root, "prefix", "bin"), nodeDir} {
		os.MkdirAll(d, 0o755)
	}
	os.WriteFile(filepath.Join(pkg, "cli.js"), []byte("#!/usr/bin/env node\n"), 0o755)
	os.Symlink("../lib/node_modules/agent/cli.js", filepath.Join(root, "prefix", "bin", "agent"))
	os.WriteFile(filepath.Join(nodeDir, "node"), []byte("#!/bin/sh\n"), 0o755)
	searchPath := filepath.Join(root, "prefix", "bin") + ":" + nodeDir
	bin := filepath.Join(root, "prefix", "bin", "agent")
	sh := cliutil.InstallPaths("/bin/sh") // /bin, and /usr/bin where /bin links there
	npm := []string{filepath.Join(root, "prefix", "bin"), filepath.Dir(filepath.Join(pkg, "cli.js")), filepath.Join(root, "prefix", "lib", "node_modules"), nodeDir}

	cases := []struct {
		name     string
		cmd      string
		install  session.Install
		readOnly []string
		wantRO   []string
		wantArg0 string
		wantPath string
		wantErr  bool
	}{
		{"npm CLI on the sandbox's PATH", "agent", session.Install{}, nil, npm, "agent", searchPath, false},
		{"npm CLI, resolved", "agent", session.Install{Path: searchPath, Resolve: true}, []string{"/opt/x"},
			append([]string{"/opt/x"}, npm...), bin, filepath.Join(root, "prefix", "bin") + ":" + nodeDir, false},
		{"not found, not required", "missing-agent", session.Install{}, nil, nil, "missing-agent", searchPath, false},
		{"not found, required", "missing-agent", session.Install{Required: true}, nil, nil, "", "", true},
		{"already shown", bin, session.Install{AlwaysNode: true}, []string{bin}, []string{bin}, bin, searchPath, false},
		{"system CLI: no node unless asked", "/bin/sh", session.Install{}, nil, sh, "/bin/sh", searchPath, false},
		{"system CLI, node asked for", "/bin/sh", session.Install{AlwaysNode: true}, nil, append(slices.Clone(sh), nodeDir), "/bin/sh", searchPath, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ws, home, tmp := dirs(t)
			in := tc.install
			sc := fake{commandFn: func(agent.Launch) (agent.Command, error) {
				return agent.Command{Argv: []string{tc.cmd, "--flag"}}, nil
			}}
			plan, err := session.Prepare(context.Background(), session.Config{Backend: none.New(), Scaffold: sc,
				Workspace: ws, Home: home, Tmp: tmp, Install: &in, ReadOnly: tc.readOnly, Env: []string{"PATH=" + searchPath}})
			if tc.wantErr {
				var nie *session.NotInstalledError
				if !errors.As(err, &nie) || nie.Command != tc.cmd || nie.Agent != "fake" {
					t.Fatalf("err %v, want a NotInstalledError for %s", err, tc.cmd)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(plan.Spec.ReadOnly, tc.wantRO) {
				t.Errorf("read-only %q\nwant %q", plan.Spec.ReadOnly, tc.wantRO)
			}
			if plan.Spec.Argv[0] != tc.wantArg0 || plan.Command.Argv[0] != tc.wantArg0 {
				t.Errorf("argv[0] %q (command %q), want %q", plan.Spec.Argv[0], plan.Command.Argv[0], tc.wantArg0)
			}
			if got := plan.Spec.Env[0]; got != "PATH="+tc.wantPath {
				t.Errorf("env starts %q, want PATH=%s", got, tc.wantPath)
			}
		})
	}
}

// A backend that enforces no limits reports each one asked for as not
// enforced, never silently.
func TestLimitsNotEnforcedAreSaid(t *testing.T) {
	ws, home, tmp := dirs(t)
	plan, err := session.Prepare(context.Background(), session.Config{Backend: none.New(), Scaffold: fake{mode: "exit:0"},
		Workspace: ws, Home: home, Tmp: tmp, Env: []string{"PATH=/usr/bin:/bin"},
		Limits: sandbox.Limits{MemoryBytes: 1 << 30, Pids: 100}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := plan.Start(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	s.Wait(context.Background())
	got := s.Limits()
	want := []sandbox.LimitStatus{
		{Name: sandbox.LimitMemory, Value: 1 << 30, How: "not enforced: the none backend enforces no limits"},
		{Name: sandbox.LimitPids, Value: 100, How: "not enforced: the none backend enforces no limits"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("limits %+v\nwant %+v", got, want)
	}
}

// A scaffold that fails or builds nothing is an error naming the agent.
func TestPrepareErrors(t *testing.T) {
	ws, home, tmp := dirs(t)
	cases := []struct {
		name string
		sc   agent.Scaffold
		want string
	}{
		{"scaffold error", fake{commandFn: func(agent.Launch) (agent.Command, error) { return agent.Command{}, errors.New("no model") }}, "agent fake: no model"},
		{"empty command", fake{commandFn: func(agent.Launch) (agent.Command, error) { return agent.Command{}, nil }}, "agent fake: the scaffold built an empty command"},
	}
	for _, tc := range cases {
		_, err := session.Prepare(context.Background(), session.Config{Backend: none.New(), Scaffold: tc.sc, Workspace: ws, Home: home, Tmp: tmp})
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
}

// A gateway without its link or server is refused before anything runs.
func TestGatewayIncomplete(t *testing.T) {
	ws, home, tmp := dirs(t)
	for _, g := range []*session.Gateway{{Server: stubGateway{}}, {Link: &sandbox.Gateway{Init: "/bin/true", SocketDir: t.TempDir()}}} {
		_, err := session.Prepare(context.Background(), session.Config{Backend: none.New(), Scaffold: fake{mode: "exit:0"},
			Workspace: ws, Home: home, Tmp: tmp, Gateway: g})
		if err == nil || !strings.Contains(err.Error(), "link and its server") {
			t.Errorf("gateway %+v: err %v, want it refused", g, err)
		}
	}
}
