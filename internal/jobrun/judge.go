package jobrun

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
	"sync"
	"time"

	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/agent/cliutil"
	"github.com/ptb-dev/ptb/internal/gateway"
	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/pipeline"
	"github.com/ptb-dev/ptb/internal/safeio"
	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/trace"
)

// sandboxJudge runs the paper's LLM judge: an agent CLI (Codex by default,
// as in the original) over a copy of the workspace, in the sandbox, with
// a hard timeout. It implements audit.JudgeRunner.
type sandboxJudge struct {
	sb       sandbox.Backend
	sc       agent.Scaffold
	spec     job.JudgeSpec
	traceDir string   // each run's stdout and stderr, and its gateway's logs, are kept here
	hidden   []string // host paths the judge must not see (other runs, test data)
	log      *slog.Logger
	self     string              // the ptb executable (the gateway link's init)
	getenv   func(string) string // the harness's environment: the judge's API key, PATH

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
	return judgeFinalMessage(filepath.Join(j.traceDir, fmt.Sprintf("judge-%d.jsonl", n)), j.sc.Name(), j.spec.Model)
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
		LogDir:    filepath.Join(j.traceDir, fmt.Sprintf("judge-%d-gateway", n)),
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
	base, err := link.URL(j.sb.Capabilities())
	if err != nil {
		return err
	}
	cmd, err := j.sc.Command(ctx, agent.Launch{Prompt: prompt, Model: j.spec.Model, Workspace: dir, Home: home, Endpoint: gw.Endpoint(base)})
	if err != nil {
		return fmt.Errorf("judge command: %w", err)
	}
	// The judge's directory is a copy of the agent's workspace: write
	// into it without following anything the agent planted.
	if err := pipeline.WriteFiles(home, cmd.HomeFiles, 0o600); err != nil {
		return err
	}
	if err := pipeline.WriteFiles(dir, cmd.WorkspaceFiles, 0o600); err != nil {
		return err
	}
	path := j.getenv("PATH")
	bin, err := cliutil.LookPath(cmd.Argv[0], path)
	if err != nil {
		return fmt.Errorf("judge agent %s: %w", j.sc.Name(), err)
	}
	if err := os.MkdirAll(j.traceDir, 0o755); err != nil {
		return err
	}
	out, err := os.Create(filepath.Join(j.traceDir, fmt.Sprintf("judge-%d.jsonl", n)))
	if err != nil {
		return err
	}
	defer out.Close()
	errf, err := os.Create(filepath.Join(j.traceDir, fmt.Sprintf("judge-%d.stderr", n)))
	if err != nil {
		return err
	}
	defer errf.Close()
	vars := gw.Env(base)
	for _, kv := range append([]string{"PATH=" + path, "HOME=" + home, "LANG=C.UTF-8", "TMPDIR=/tmp"}, cmd.Env...) {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v // the command's own variables win
	}
	var env []string
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		env = append(env, k+"="+vars[k])
	}
	spec, err := link.Apply(sandbox.Spec{
		Argv: cmd.Argv, Env: env, Dir: dir, Workspace: dir, Home: home, Tmp: tmp,
		ReadOnly: judgeReadOnly(bin, path), Hidden: j.hidden, Stdout: out, Stderr: errf,
	}, j.sb.Capabilities())
	if err != nil {
		return err
	}
	p, err := j.sb.Start(ctx, spec)
	if err != nil {
		return fmt.Errorf("start judge: %w", err)
	}
	defer p.Destroy()
	timeout := j.spec.Timeout
	if timeout <= 0 {
		timeout = job.DefaultJudgeTimeout
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ex, err := p.Wait(wctx)
	if errors.Is(err, context.DeadlineExceeded) {
		p.Stop(10 * time.Second)
		return fmt.Errorf("judge timed out after %s", timeout)
	}
	if err != nil {
		p.Stop(10 * time.Second)
		return err
	}
	if ex.Code != 0 || ex.Signal != "" {
		b, _ := os.ReadFile(errf.Name())
		last := strings.TrimSpace(string(b))
		if i := strings.LastIndexByte(last, '\n'); i >= 0 {
			last = last[i+1:]
		}
		return fmt.Errorf("judge exited with %+v: %s", ex, last)
	}
	return nil
}

// judgeReadOnly is what the judge's sandbox shows of the host besides the
// system directories: the judge CLI's installation and, for an npm CLI,
// the node that runs it.
func judgeReadOnly(bin, path string) []string {
	ro := cliutil.InstallPaths(bin)
	if node, err := cliutil.LookPath("node", path); err == nil {
		ro = append(ro, cliutil.InstallPaths(node)...)
	}
	return ro
}
