package eval

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ptb-dev/ptb/internal/eval/task"
	"github.com/ptb-dev/ptb/internal/jsonpos"
	"github.com/ptb-dev/ptb/internal/safeio"
)

// server is a running inference server.
type server interface {
	BaseURL() string
	APIKey() string
	Model() string
	// Recover is called after a request failed with a retryable error. It
	// returns nil once the server answers /health again, restarting it (on
	// the same port) if it died; an error means the server is gone for good.
	Recover(ctx context.Context) error
	// Close stops the server and every process it started.
	Close() error
}

// healthTimeout bounds how long a server may take to come up; healthPoll is
// how often /health is asked meanwhile.
var (
	healthTimeout = 20 * time.Minute
	healthPoll    = 500 * time.Millisecond
	stopGrace     = 10 * time.Second
)

// maxRestarts bounds restarts of a server that died during an evaluation.
const maxRestarts = 3

func startServer(ctx context.Context, o Options, info task.Info) (server, error) {
	if o.ModelPath == "" {
		return nil, fmt.Errorf("backend %s needs a model directory (--model)", o.Backend)
	}
	p := &procServer{o: o, key: randomKey()}
	switch o.Backend {
	case BackendHF:
		dir, err := os.MkdirTemp("", "ptb-hf-server-")
		if err != nil {
			return nil, fmt.Errorf("write hf server: %w", err)
		}
		script := filepath.Join(dir, HFServerFile)
		if err := os.WriteFile(script, hfServerPy, 0o644); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("write hf server: %w", err)
		}
		py := o.HFPython
		if py == "" {
			py = "python3"
		}
		p.name, p.bin, p.cleanup = "hf server", py, func() { os.RemoveAll(dir) }
		p.args = func(port int) []string { return append([]string{script}, HFArgs(o, info, port, p.key)...) }
		p.hint = "is python3 with torch and transformers installed? set --hf-python"
	default:
		p.name, p.bin = "vllm", o.VLLM
		if p.bin == "" {
			p.bin = "vllm"
		}
		p.args = func(port int) []string { return VLLMArgs(o, info, port, p.key) }
		p.hint = "is vLLM installed? try --backend hf or --backend url"
	}
	if err := p.start(ctx); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func randomKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ModelType is the original's chat-template choice (EVAL_SPEC 1.1): the
// model directory's name if it names a family, else config.json's
// architectures[0]. Only the directory's own name is looked at: the
// original evaluated $EVAL_DIR/final_model, so in practice the
// architecture decided, and ptb's run directories (whose names carry the
// base model's) must not decide in its place.
func ModelType(modelPath string) string {
	p := strings.ToLower(filepath.Base(filepath.Clean(modelPath)))
	for _, t := range []string{"qwen", "llama", "gemma", "smollm"} {
		if strings.Contains(p, t) {
			return t
		}
	}
	archs, err := ConfigArchitectures(modelPath)
	if err != nil {
		return ""
	}
	return ArchitectureFamily(archs)
}

// maxConfigJSON bounds config.json (real ones are a few KiB).
const maxConfigJSON = 16 << 20

// ConfigArchitectures reads config.json's architectures in modelPath. The
// file is opened with safeio (no link followed, no FIFO waited on, at most
// 16 MiB); a malformed one is an error with the file, line, column and
// byte offset.
func ConfigArchitectures(modelPath string) ([]string, error) {
	p := filepath.Join(modelPath, "config.json")
	b, err := safeio.ReadFile(p, maxConfigJSON)
	if err != nil {
		return nil, err
	}
	var c struct {
		Architectures []string `json:"architectures"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, jsonpos.Error(p, b, 0, err)
	}
	return c.Architectures, nil
}

// ArchitectureFamily is the template family config.json's architectures[0]
// selects (gemma, llama, qwen or smollm, checked in that order), or "".
func ArchitectureFamily(architectures []string) string {
	if len(architectures) == 0 {
		return ""
	}
	a := strings.ToLower(architectures[0])
	for _, t := range []string{"gemma", "llama", "qwen", "smollm"} {
		if strings.Contains(a, t) {
			return t
		}
	}
	return ""
}

// ChatTemplateFile is the template file name for a model type and task.
func ChatTemplateFile(modelType string, tools bool) string {
	switch modelType {
	case "qwen":
		return "qwen3.jinja"
	case "gemma":
		if tools {
			return "gemma3_tool_calling.jinja"
		}
		return "gemma3.jinja"
	case "smollm":
		return "smollm.jinja"
	case "llama":
		return "llama3.jinja"
	}
	return ""
}

// chatTemplate is the --chat-template file for the model and task: ptb's
// pinned copy, chosen and verified by Run (resolveTemplate) before any
// server starts; "" only when no server of ptb's is started.
func chatTemplate(o Options, info task.Info) string {
	return o.tmplPath
}

// VLLMArgs is the `vllm serve` command line of the original (spec 1.1) in
// inspect's order (host, api key, the task's model args, then the port), on
// 127.0.0.1 instead of 0.0.0.0. ArenaHard and HealthBench start vLLM
// themselves: port, --trust-remote-code, api key, template.
func VLLMArgs(o Options, info task.Info, port int, key string) []string {
	tmpl := chatTemplate(o, info)
	if info.Style == task.StyleScript {
		args := []string{"serve", o.ModelPath, "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--trust-remote-code", "--api-key", key}
		if tmpl != "" {
			args = append(args, "--chat-template", tmpl)
		}
		return args
	}
	args := []string{"serve", o.ModelPath, "--host", "127.0.0.1", "--api-key", key}
	if info.GPUMemory != "" {
		args = append(args, "--gpu-memory-utilization", info.GPUMemory)
	}
	if tmpl != "" {
		args = append(args, "--chat-template", tmpl)
	}
	if info.Tools {
		parser := "hermes"
		if ModelType(o.ModelPath) == "llama" {
			parser = "llama3_json"
		}
		args = append(args, "--enable-auto-tool-choice", "--tool-call-parser", parser)
	}
	return append(args, "--port", strconv.Itoa(port))
}

// procServer is an inference server run as a child process in its own
// process group: `vllm serve` or the embedded transformers server.
type procServer struct {
	o       Options
	key     string
	name    string // in messages: "vllm", "hf server"
	bin     string // executable
	args    func(port int) []string
	hint    string // what to check when the executable does not start
	cleanup func() // removes what startServer wrote; nil = nothing

	restartMu sync.Mutex // one restart at a time; Recover callers queue on it
	restarts  int

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited and its group is killed
	port   int
	closed bool
}

func (p *procServer) BaseURL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return "http://127.0.0.1:" + strconv.Itoa(p.port) + "/v1"
}
func (p *procServer) APIKey() string { return p.key }
func (p *procServer) Model() string  { return p.o.ModelPath }

func (p *procServer) logPath() string { return filepath.Join(p.o.OutDir, ServerLog) }

// errExited: the process exited before it answered /health.
var errExited = errors.New("server process exited")

// start runs the server (on the port of the last run, if any, so that
// clients keep their URL) and waits until it is healthy.
func (p *procServer) start(ctx context.Context) error {
	p.mu.Lock()
	port, closed := p.port, p.closed
	p.mu.Unlock()
	if closed {
		return fmt.Errorf("%s: server closed", p.name)
	}
	if port == 0 {
		var err error
		if port, err = freePort(); err != nil {
			return fmt.Errorf("find a free port: %w", err)
		}
	}
	logf, err := os.OpenFile(p.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open server log: %w", err)
	}
	cmd := exec.Command(p.bin, p.args(port)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	fmt.Fprintf(logf, "ptb: starting %s %s\n", p.bin, strings.Join(cmd.Args[1:], " "))
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s (%s): %w", p.bin, p.hint, err)
	}
	exited := make(chan struct{})
	go func() {
		err := cmd.Wait()
		// Whatever the server left in its group (vLLM's engine processes
		// hold GPU memory) goes with it.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		fmt.Fprintf(logf, "ptb: %s exited: %v\n", p.name, exitText(err))
		logf.Close()
		close(exited)
	}()
	p.mu.Lock()
	p.cmd, p.exited, p.port = cmd, exited, port
	closed = p.closed
	p.mu.Unlock()
	if closed { // Close ran while the process was starting
		p.Close()
		return fmt.Errorf("%s: server closed", p.name)
	}
	err = p.waitHealthy(ctx, exited, time.Now().Add(healthTimeout))
	switch {
	case errors.Is(err, errExited):
		return fmt.Errorf("%s exited before it was healthy; see %s", p.name, p.logPath())
	case err != nil && ctx.Err() == nil:
		return fmt.Errorf("%s not healthy after %s; see %s", p.name, healthTimeout, p.logPath())
	}
	return err
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// waitHealthy polls /health until it answers 200 (nil), the process exits
// (errExited), the deadline passes or ctx ends.
func (p *procServer) waitHealthy(ctx context.Context, exited chan struct{}, deadline time.Time) error {
	url := p.healthURL()
	hc := &http.Client{Timeout: 10 * time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errExited
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(healthPoll):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not healthy after %s", p.name, healthTimeout)
		}
	}
}

func (p *procServer) healthURL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return "http://127.0.0.1:" + strconv.Itoa(p.port) + "/health"
}

func (p *procServer) Recover(ctx context.Context) error {
	p.restartMu.Lock()
	defer p.restartMu.Unlock()
	p.mu.Lock()
	exited, closed := p.exited, p.closed
	p.mu.Unlock()
	if closed {
		return fmt.Errorf("%s: server closed", p.name)
	}
	err := p.waitHealthy(ctx, exited, time.Now().Add(healthTimeout))
	if err == nil || !errors.Is(err, errExited) {
		return err
	}
	if p.restarts >= maxRestarts {
		return fmt.Errorf("%s died %d times; giving up; see %s", p.name, p.restarts+1, p.logPath())
	}
	p.restarts++
	if err := p.start(ctx); err != nil {
		return fmt.Errorf("restart %s: %w", p.name, err)
	}
	return nil
}

// Close stops the server: SIGTERM to its process group, stopGrace, then
// SIGKILL. It waits until the process has exited.
func (p *procServer) Close() error {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	already := p.closed
	p.closed = true
	p.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		select {
		case <-exited:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(stopGrace):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-exited
			}
		}
	}
	if !already && p.cleanup != nil {
		p.cleanup()
	}
	return nil
}
