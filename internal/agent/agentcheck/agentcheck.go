// Package agentcheck runs one short scripted session of an agent CLI inside a
// sandbox (what `ptb doctor --agents` reports): the scripted model server
// asks for one shell call that writes out.txt, then answers "done". A
// check passes when the file exists, the trace shows one tool call and the
// final message, and the CLI exits 0; otherwise the reason is the CLI's own
// error text, or what the model server saw when the CLI hung.
package agentcheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/agent/cliutil"
	"github.com/ptb-dev/ptb/internal/agent/session"
	"github.com/ptb-dev/ptb/internal/agentinfo"
	"github.com/ptb-dev/ptb/internal/modelserver"
	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/trace"
)

// Statuses of a Result.
const (
	Pass = "pass"
	Fail = "fail"
	Skip = "skip" // the CLI is not installed
)

// DefaultTimeout is how long a session may take. Codex, Gemini and
// OpenCode hang forever on an endpoint they cannot use, so it is enforced.
const DefaultTimeout = 120 * time.Second

// Prompt is the session's prompt; the scripted model ignores it.
const Prompt = "Create out.txt containing hello"

// Options configures a check.
type Options struct {
	Model   string        // the agent model; "" means the adapter's agentinfo CheckModel, else "scripted-model"
	Timeout time.Duration // hard limit on the session; 0 means DefaultTimeout
	// Path is the search path (colon separated) for a command given by bare
	// name, and the start of PATH inside the sandbox; "" means $PATH.
	Path string
	// ReadOnly are extra host paths the CLI needs, made visible read-only
	// (the bwrap sandbox hides /root and /home). The directories holding
	// the resolved executable, its npm package and node are added.
	ReadOnly []string
	// Install is the hint given when the executable is missing, e.g.
	// "npm install -g @google/gemini-cli".
	Install string
	// Dir is where the session's temporary directory is made ("" means
	// the system default); it is removed afterwards.
	Dir string
}

// Result is the outcome of one check.
type Result struct {
	Agent    string        `json:"agent"`
	Status   string        `json:"status"` // pass | fail | skip
	Reason   string        `json:"reason,omitempty"`
	Version  string        `json:"version,omitempty"`
	Sandbox  string        `json:"sandbox"`
	Duration time.Duration `json:"duration_ns"`
	// Requests is how many HTTP requests the scripted server answered.
	Requests int `json:"requests"`
}

// Check runs the two-turn scripted session of sc in sb. It never returns an
// error: every failure, including the harness's own, is a Result with
// status fail and a reason.
func Check(ctx context.Context, sb sandbox.Backend, sc agent.Scaffold, o Options) Result {
	start := time.Now()
	r := Result{Agent: sc.Name(), Sandbox: sb.Capabilities().Name}
	reason, status := run(ctx, sb, sc, o, &r)
	r.Status, r.Reason = status, reason
	r.Duration = time.Since(start)
	return r
}

func run(ctx context.Context, sb sandbox.Backend, sc agent.Scaffold, o Options, r *Result) (reason, status string) {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Path == "" {
		o.Path = os.Getenv("PATH")
	}
	model := o.Model
	if model == "" {
		if i, ok := agentinfo.Lookup(sc.Name()); ok {
			model = i.CheckModel
		}
	}
	if model == "" {
		model = "scripted-model"
	}

	root, err := os.MkdirTemp(o.Dir, "ptb-agentcheck-")
	if err != nil {
		return fmt.Sprintf("make temporary directory: %v", err), Fail
	}
	defer os.RemoveAll(root)
	ws, home, tmp := filepath.Join(root, "workspace"), filepath.Join(root, "home"), filepath.Join(root, "tmp")
	for _, d := range []string{ws, home, tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Sprintf("make %s: %v", d, err), Fail
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Sprintf("listen for the scripted model server: %v", err), Fail
	}
	srv := modelserver.New(modelserver.DefaultScript(), nil)
	sctx, stopServer := context.WithCancel(ctx)
	defer stopServer()
	go srv.Serve(sctx, ln)

	// The CLI is found on o.Path and run by its absolute path, its
	// directory and node's first on the sandbox's PATH.
	plan, err := session.Prepare(ctx, session.Config{
		Backend:   sb,
		Scaffold:  sc,
		Launch:    agent.Launch{Prompt: Prompt, Model: model, Endpoint: "http://" + ln.Addr().String()},
		Workspace: ws,
		Home:      home,
		Tmp:       tmp,
		Install:   &session.Install{Path: o.Path, Required: true, Resolve: true, AlwaysNode: true},
		Env:       []string{"PATH=" + o.Path + ":/usr/local/bin:/usr/bin:/bin"}, // deduplicated under Resolve
		ReadOnly:  o.ReadOnly,
		Network:   sandbox.NetworkHost,
		Timeout:   o.Timeout,
		Grace:     5 * time.Second,
	})
	var missing *session.NotInstalledError
	if errors.As(err, &missing) {
		reason := "not installed"
		if o.Install != "" {
			reason += " (" + o.Install + ")"
		}
		return reason + ": " + missing.Err.Error(), Skip
	}
	if err != nil {
		return err.Error(), Fail
	}
	if r.Version = sc.Version(ctx); r.Version == "" {
		r.Version = cliutil.Version(ctx, plan.Bin) // the scaffold may name a CLI off the host's PATH
	}

	var stdout, stderr lockedBuffer
	s, err := plan.Start(ctx, &stdout, &stderr)
	if err != nil {
		return err.Error(), Fail
	}
	defer s.Destroy()
	exit, werr := s.Wait(ctx)
	st := srv.Stats()
	r.Requests = st.Requests
	sum, serr := trace.Summarize(bytes.NewReader(stdout.Bytes()), traceAgent(sc.Name()), "", nil)
	if serr != nil {
		sum = nil
	}
	said := CLIError(sum, stderr.String(), stdout.Bytes())

	if exit.Reason == session.ReasonInterrupted {
		return fmt.Sprintf("interrupted: %v", ctx.Err()), Fail
	}
	if werr != nil && exit.Reason == "" {
		return fmt.Sprintf("wait for the CLI: %v", werr), Fail
	}
	if exit.Reason == session.ReasonDeadline {
		secs := int(o.Timeout.Round(time.Second) / time.Second)
		var msg string
		switch {
		case st.Requests == 0:
			msg = fmt.Sprintf("timed out after %d s with no model request", secs)
		case st.Scripted == 0:
			msg = fmt.Sprintf("timed out after %d s: it contacted the model server (%d requests) but never asked for a scripted turn", secs, st.Requests)
		default:
			msg = fmt.Sprintf("timed out after %d s: it contacted the model server (%d requests, %d scripted turns, %d tool calls served) but did not finish",
				secs, st.Requests, st.Scripted, st.ToolCalls)
		}
		if said != "" {
			msg += "; last error: " + said
		}
		return msg, Fail
	}

	if exit.Code != 0 {
		how := fmt.Sprintf("exit code %d", exit.Code)
		if exit.Signal != "" {
			how = "killed by " + exit.Signal
		}
		if said == "" {
			said = "no error text on stdout or stderr"
		}
		if st.Requests == 0 {
			return fmt.Sprintf("%s with no model request: %s", how, said), Fail
		}
		return fmt.Sprintf("%s: %s", how, said), Fail
	}

	var problems []string
	got, err := os.ReadFile(filepath.Join(ws, "out.txt"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		problems = append(problems, fmt.Sprintf("the tool call did not run (out.txt missing; the server served %d tool calls)", st.ToolCalls))
	case err != nil:
		problems = append(problems, fmt.Sprintf("read out.txt: %v", err))
	case strings.TrimSpace(string(got)) != "hello":
		problems = append(problems, fmt.Sprintf("out.txt holds %q, want \"hello\"", truncate(string(got), 80)))
	}
	switch {
	case sum == nil:
		problems = append(problems, fmt.Sprintf("read trace: %v", serr))
	default:
		if sum.ToolCalls != 1 {
			problems = append(problems, fmt.Sprintf("the trace shows %d tool calls, want 1", sum.ToolCalls))
		}
		if sum.FinalMessage != "done" {
			problems = append(problems, fmt.Sprintf("the trace's final message is %q, want \"done\"", truncate(sum.FinalMessage, 80)))
		}
	}
	if len(problems) > 0 {
		msg := "exit code 0 but " + strings.Join(problems, "; ")
		if said != "" {
			msg += "; last error: " + said
		}
		return msg, Fail
	}
	return "", Pass
}

// traceAgent is the trace format to decode: the scaffold's own when the
// trace package knows it (by name, or the format its agentinfo names),
// else "", detected from the trace.
func traceAgent(name string) string {
	format := name
	if i, ok := agentinfo.Lookup(name); ok {
		format = i.TraceFormat()
	}
	if slices.Contains(trace.Agents(), format) {
		return name
	}
	return ""
}

// CLIError returns the CLI's own error text: the trace's last error
// event, else the most telling line of stderr, else the last line of stdout
// that is not JSON.
func CLIError(sum *trace.Summary, stderr string, stdout []byte) string {
	if sum != nil && sum.Error != nil && sum.Events > 0 {
		return truncate(oneLine(*sum.Error), 300)
	}
	if l := tellingLine(stderr); l != "" {
		return l
	}
	var last string
	for _, l := range strings.Split(string(stdout), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "{") {
			last = l
		}
	}
	return truncate(last, 300)
}

var (
	errorWords = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)error|invalid|denied|not found|cannot|can't|unable|failed|refused|unauthori|forbidden|missing`)
	})
	// noise is stack frames, node's version banner, source excerpts.
	noise = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(at |Node\.js v|\^+$|\(Use .node --trace)`) })
)

// tellingLine picks from stderr the last line that reads like an error,
// else its last line that is not noise.
func tellingLine(stderr string) string {
	var lines []string
	for _, l := range strings.Split(stderr, "\n") {
		if l = strings.TrimSpace(l); l != "" && !noise().MatchString(l) {
			lines = append(lines, l)
		}
	}
	for i := len(lines) - 1; i >= 0; i-- {
		if errorWords().MatchString(lines[i]) {
			return truncate(lines[i], 300)
		}
	}
	if len(lines) > 0 {
		return truncate(lines[len(lines)-1], 300)
	}
	return ""
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// lockedBuffer is a bytes.Buffer safe for the sandbox's copier and the
// reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

var _ io.Writer = (*lockedBuffer)(nil)

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

func (l *lockedBuffer) String() string { return string(l.Bytes()) }
