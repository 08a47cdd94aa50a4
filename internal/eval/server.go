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
)

// server is a running inference server.
type server interface {
	BaseURL() string
	APIKey() string
	Model() string
	// Healthy returns nil when the server answers, restarting it if it died.
	Healthy(ctx context.Context) error
	Close() error
}

// HealthTimeout bounds how long a server may take to come up.
var healthTimeout = 20 * time.Minute

func startServer(ctx context.Context, o Options, info task.Info) (server, error) {
	if o.ModelPath == "" {
		return nil, fmt.Errorf("backend %s needs a model directory (--model)", o.Backend)
	}
	if o.Backend == BackendHF {
		return nil, errors.New("the hf backend is not available in this build; use --backend vllm or --backend url")
	}
	v := &vllm{o: o, info: info, key: randomKey()}
	if err := v.start(ctx); err != nil {
		return nil, err
	}
	return v, nil
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

// ModelType is the original's chat-template choice: the model path's name,
// else config.json's architectures[0] (EVAL_SPEC §1.1).
func ModelType(modelPath string) string {
	p := strings.ToLower(modelPath)
	for _, t := range []string{"qwen", "llama", "gemma", "smollm"} {
		if strings.Contains(p, t) {
			return t
		}
	}
	b, err := os.ReadFile(filepath.Join(modelPath, "config.json"))
	if err != nil {
		return ""
	}
	var c struct {
		Architectures []string `json:"architectures"`
	}
	if json.Unmarshal(b, &c) != nil || len(c.Architectures) == 0 {
		return ""
	}
	a := strings.ToLower(c.Architectures[0])
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

// VLLMArgs is the `vllm serve` command line of the original (spec 1.1), on
// 127.0.0.1 instead of 0.0.0.0.
func VLLMArgs(o Options, info task.Info, port int, key string) []string {
	args := []string{"serve", o.ModelPath, "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--api-key", key}
	if info.Style == task.StyleScript {
		args = append(args, "--trust-remote-code")
	} else {
		args = append(args, "--gpu-memory-utilization", info.GPUMemory)
	}
	mt := ModelType(o.ModelPath)
	if o.TemplatesDir != "" {
		if f := ChatTemplateFile(mt, info.Tools); f != "" {
			args = append(args, "--chat-template", filepath.Join(o.TemplatesDir, f))
		}
	}
	if info.Tools {
		parser := "hermes"
		if mt == "llama" {
			parser = "llama3_json"
		}
		args = append(args, "--enable-auto-tool-choice", "--tool-call-parser", parser)
	}
	return args
}

type vllm struct {
	o    Options
	info task.Info
	key  string

	restartMu sync.Mutex
	mu        sync.Mutex
	cmd       *exec.Cmd
	exited    chan struct{}
	port      int
	restarts  int
}

func (v *vllm) BaseURL() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return "http://127.0.0.1:" + strconv.Itoa(v.port) + "/v1"
}
func (v *vllm) APIKey() string { return v.key }
func (v *vllm) Model() string  { return v.o.ModelPath }

func (v *vllm) start(ctx context.Context) error {
	bin := v.o.VLLM
	if bin == "" {
		bin = "vllm"
	}
	port, err := freePort()
	if err != nil {
		return fmt.Errorf("find a free port: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(v.o.OutDir, ServerLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open server log: %w", err)
	}
	cmd := exec.Command(bin, VLLMArgs(v.o, v.info, port, v.key)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	fmt.Fprintf(logf, "ptb: starting %s %s\n", bin, strings.Join(cmd.Args[1:], " "))
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s (is vLLM installed? try --backend url): %w", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	v.mu.Lock()
	v.cmd, v.exited, v.port = cmd, exited, port
	v.mu.Unlock()
	return v.waitHealthy(ctx, exited)
}

func (v *vllm) waitHealthy(ctx context.Context, exited chan struct{}) error {
	deadline := time.Now().Add(healthTimeout)
	url := "http://127.0.0.1:" + strconv.Itoa(v.port) + "/health"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("vllm exited before it was healthy; see %s", filepath.Join(v.o.OutDir, ServerLog))
		case <-ctx.Done():
			v.Close()
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			v.Close()
			return fmt.Errorf("vllm not healthy after %s; see %s", healthTimeout, filepath.Join(v.o.OutDir, ServerLog))
		}
	}
}

// Healthy restarts the server (at most 3 times) if it died.
func (v *vllm) Healthy(ctx context.Context) error {
	v.restartMu.Lock()
	defer v.restartMu.Unlock()
	v.mu.Lock()
	exited := v.exited
	v.mu.Unlock()
	select {
	case <-exited:
	default:
		return nil
	}
	if v.restarts >= 3 {
		return errors.New("vllm died 3 times; giving up")
	}
	v.restarts++
	return v.start(ctx)
}

// Close stops the server: SIGTERM to its process group, 10 s, then SIGKILL.
func (v *vllm) Close() error {
	v.mu.Lock()
	cmd, exited := v.cmd, v.exited
	v.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return nil
	}
	select {
	case <-exited:
		return nil
	default:
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	return nil
}
