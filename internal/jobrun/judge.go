package jobrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/agent/session"
	"github.com/ptb-dev/ptb/internal/gateway"
	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/rundir"
	"github.com/ptb-dev/ptb/internal/safeio"
	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/trace"
)

// sandboxJudge runs the paper's LLM judge: an agent CLI (Codex by default,
// as in the original) over a copy of the workspace, in the sandbox, with
// a hard timeout. It implements audit.JudgeRunner.
type sandboxJudge struct {
	sb     sandbox.Backend
	sc     agent.Scaffold
	spec   job.JudgeSpec
	dir    rundir.Dir // the run: each judge run's trace, stderr and gateway logs go under its audit directory (rundir.JudgeTrace, ...)
	hidden []string   // host paths the judge must not see (other runs, test data)
	log    *slog.Logger
	self   string              // the ptb executable (the gateway link's init)
	getenv func(string) string // the harness's environment: the judge's API key, PATH

	mu sync.Mutex
	n  int
}

// RunJudge runs the judge CLI over dir and returns its final message,
// decoded from its stdout by the CLI's trace decoder: the verdict is read
// from there, never from a file the judge (or something in the agent's
// workspace) wrote into dir.
func (j *sandboxJudge) RunJudge(ctx context.Context, dir, prompt string) (string, error) {
	j.mu.Lock()
	j.n++
	n := j.n
	j.mu.Unlock()
	if err := j.run(ctx, n, dir, prompt); err != nil {
		return "", err
	}
	return judgeFinalMessage(j.dir.Path(rundir.JudgeTrace(n)), j.sc.Name(), j.spec.Model)
}

// maxJudgeTrace bounds the judge's stdout read back for its final message.
const maxJudgeTrace = 256 << 20

// judgeFinalMessage decodes the final message from a judge CLI's stdout.
func judgeFinalMessage(path, agent, model string) (string, error) {
	f, fi, err := safeio.Open(path)
	if err != nil {
		return "", fmt.Errorf("judge output: %w", err)
	}
	defer f.Close()
	if fi.Size() > maxJudgeTrace {
		return "", fmt.Errorf("judge output %s: %d bytes, over %d", path, fi.Size(), maxJudgeTrace)
	}
	s, err := trace.Summarize(io.LimitReader(f, maxJudgeTrace), agent, model, nil)
	if err != nil {
		return "", fmt.Errorf("decode judge output %s: %w", path, err)
	}
	if strings.TrimSpace(s.FinalMessage) == "" {
		return "", fmt.Errorf("judge output %s: no final message", path)
	}
	return s.FinalMessage, nil
}

func (j *sandboxJudge) run(ctx context.Context, n int, dir, prompt string) error {
	root, err := os.MkdirTemp("", "ptb-judge-home-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	home, tmp, sock := filepath.Join(root, "home"), filepath.Join(root, "tmp"), filepath.Join(root, "socket")
	for _, d := range []string{home, tmp, sock} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(root, 0o755); err != nil {
		return err
	}
	// The judge reads the agent's workspace: it is as untrusted as the
	// agent, so it gets a gateway of its own (its key stays there) and no
	// network but that gateway's LLM route.
	providers, err := GatewayProviders(job.Spec{Agent: j.sc.Name(), AgentModel: j.spec.Model, Endpoint: j.spec.Endpoint}, j.getenv)
	if err != nil {
		return fmt.Errorf("judge: %w", err)
	}
	gw, err := serveGateway(gateway.Config{
		LogDir:    j.dir.Path(rundir.JudgeGateway(n)),
		Providers: providers,
		Egress:    gateway.EgressConfig{Allow: []gateway.HostRule{}}, // nothing but the LLM route
		Hub:       gateway.HubConfig{Deny: []gateway.DenyRule{{Repo: "*/*", Reason: "the judge reads the workspace; it downloads nothing"}}},
		Logger:    j.log,
	}, filepath.Join(sock, sandbox.GatewaySocket))
	if err != nil {
		return fmt.Errorf("judge gateway: %w", err)
	}
	defer gw.Close()
	link := sandbox.Gateway{Init: j.self, SocketDir: sock}
	timeout := j.spec.Timeout
	if timeout <= 0 {
		timeout = job.DefaultJudgeTimeout
	}
	// The judge's directory is a copy of the agent's workspace: the
	// session writes into it without following anything the agent
	// planted. The judge CLI and, for an npm CLI, node are found on the
	// harness's PATH.
	path := j.getenv("PATH")
	plan, err := session.Prepare(ctx, session.Config{
		Backend:   j.sb,
		Scaffold:  j.sc,
		Launch:    agent.Launch{Prompt: prompt, Model: j.spec.Model},
		Workspace: dir,
		Home:      home,
		Tmp:       tmp,
		Install:   &session.Install{Path: path, Required: true, AlwaysNode: true},
		Env:       []string{"PATH=" + path, "HOME=" + home, "LANG=C.UTF-8", "TMPDIR=/tmp"},
		SortEnv:   true,
		Hidden:    j.hidden,
		Gateway:   &session.Gateway{Link: &link, Server: gw},
		Timeout:   timeout,
		Grace:     10 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("judge: %w", err)
	}
	if err := os.MkdirAll(j.dir.Path(rundir.AuditDir), 0o755); err != nil {
		return err
	}
	out, err := os.Create(j.dir.Path(rundir.JudgeTrace(n)))
	if err != nil {
		return err
	}
	defer out.Close()
	errf, err := os.Create(j.dir.Path(rundir.JudgeStderr(n)))
	if err != nil {
		return err
	}
	defer errf.Close()
	s, err := plan.Start(ctx, out, errf)
	if err != nil {
		return fmt.Errorf("judge: %w", err)
	}
	defer s.Destroy()
	ex, err := s.Wait(ctx)
	if ex.Reason == session.ReasonDeadline || ex.Reason == session.ReasonInterrupted && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("judge timed out after %s", timeout)
	}
	if ex.Reason == session.ReasonInterrupted {
		return ctx.Err()
	}
	if err != nil {
		return err
	}
	if ex.Code != 0 || ex.Signal != "" {
		b, _ := os.ReadFile(errf.Name())
		last := strings.TrimSpace(string(b))
		if i := strings.LastIndexByte(last, '\n'); i >= 0 {
			last = last[i+1:]
		}
		return fmt.Errorf("judge exited with %+v: %s", ex.Exit, last)
	}
	return nil
}
