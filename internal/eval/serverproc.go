package eval

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ptb-dev/ptb/internal/eval/task"
	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/relay"
)

// server is a running inference server.
type server interface {
	BaseURL() string
	APIKey() string
	Model() string
	// HTTP is the client that reaches the server (over its unix socket).
	HTTP() *http.Client
	// Record says what ran and how it was contained.
	Record() ServerRecord
	// Recover is called after a request failed with a retryable error. It
	// returns nil once the server answers /health again, restarting it if
	// it died; an error means the server is gone for good.
	Recover(ctx context.Context) error
	// Close stops the server and every process it started.
	Close() error
}

// healthTimeout bounds how long a server may take to come up; healthPoll is
// how often /health is asked meanwhile.
var (
	healthTimeout  = 20 * time.Minute
	healthPoll     = 500 * time.Millisecond
	stopGrace      = 10 * time.Second
	versionTimeout = 2 * time.Minute
)

// maxRestarts bounds restarts of a server that died during an evaluation.
const maxRestarts = 3

// serverHost is the host name in the server's URLs: requests never leave
// the harness by TCP, they go over the relayed unix socket.
const serverHost = "inference-server"

// startServer starts the inference server of o.Backend inside o.Sandbox
// (sandboxed.go says what it sees) and waits until it is healthy.
func startServer(ctx context.Context, o Options, info task.Info) (*procServer, error) {
	if o.ModelPath == "" {
		return nil, fmt.Errorf("backend %s needs a model directory (--model)", o.Backend)
	}
	if o.Sandbox == nil {
		return nil, fmt.Errorf("backend %s runs code from the model directory and needs a sandbox backend; none was given", o.Backend)
	}
	var err error
	if o.ModelPath, err = filepath.Abs(o.ModelPath); err != nil {
		return nil, err
	}
	if o.OutDir, err = filepath.Abs(o.OutDir); err != nil {
		return nil, err
	}
	if _, err := os.Stat(o.ModelPath); err != nil {
		return nil, fmt.Errorf("model directory: %w", err)
	}
	dirs, err := makeServerDirs(o.OutDir)
	if err != nil {
		return nil, err
	}
	p := &procServer{o: o, key: randomKey(), sb: o.Sandbox, dirs: dirs, tmpl: chatTemplate(o, info)}
	p.cleanup = dirs.remove
	if p.tmpl != "" {
		// The server is given the file by this path, bound read-only.
		if p.tmpl, err = filepath.Abs(p.tmpl); err == nil {
			_, err = os.Stat(p.tmpl)
		}
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("chat template for the server: %w (check --templates-dir)", err)
		}
	}
	if err := p.setup(ctx, info); err != nil {
		p.Close()
		return nil, err
	}
	p.probeVersion(ctx)
	if err := p.start(ctx); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// setup finds what the server runs and sees: the executable, its install,
// the ptb binary that relays its socket, its arguments.
func (p *procServer) setup(ctx context.Context, info task.Info) error {
	o := p.o
	caps := p.sb.Capabilities()
	p.isolated = caps.Isolated
	self := o.PTB
	if self == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the ptb binary for sandbox-init: %w", err)
		}
		self = exe
	}
	if real, err := filepath.EvalSymlinks(self); err == nil {
		self = real
	}
	p.self = self
	hostEnv := installQueryEnv(o.ServerEnv)
	b, err := LookupBackend(o.Backend)
	if err != nil {
		return err
	}
	sb, ok := b.(serverBackend)
	if !ok {
		return fmt.Errorf("backend %s does not start a server", o.Backend)
	}
	p.launcher = sb.l
	if err := sb.l.configure(ctx, p, info, hostEnv); err != nil {
		return err
	}
	p.record.Sandbox, p.record.Unsandboxed = caps.Name, !caps.Isolated
	p.record.GPUs = append([]int{}, o.GPUs...)
	p.record.Executable = p.inst.Argv0
	p.hc = &http.Client{Timeout: 8 * time.Hour, Transport: unixTransport(p.dirs.sock(), o.concurrency())}
	return nil
}

// unixTransport sends every request over the unix socket at path.
func unixTransport(path string, conc int) *http.Transport {
	t := transport(conc)
	t.Proxy = nil
	t.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) { return relay.DialUnix(ctx, path) }
	return t
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

// procServer is an inference server run in the sandbox backend:
// `ptb sandbox-init` relays the server's socket directory to its TCP port
// inside, then runs `vllm serve` or the embedded transformers server.
type procServer struct {
	o           Options
	launcher    serverLauncher // vllm or hf
	key         string
	name        string // in messages: "vllm", "hf server"
	sb          sandbox.Backend
	isolated    bool       // the backend isolates (own network namespace, remapped paths)
	dirs        serverDirs // private home, /tmp, socket directory, code
	self        string     // the ptb binary (sandbox-init)
	inst        install    // the server's executable and what of the host it needs
	tmpl        string     // the chat template file passed to the server, if any
	args        func(port int) []string
	versionArgs []string
	hc          *http.Client
	record      ServerRecord
	cleanup     func() // removes what startServer made; nil = nothing

	restartMu sync.Mutex // one restart at a time; Recover callers queue on it
	restarts  int

	mu     sync.Mutex
	proc   sandbox.Process
	exited chan struct{} // closed when the sandbox's leader exited and what was left was killed
	port   int
	closed bool
}

func (p *procServer) BaseURL() string      { return "http://" + serverHost + "/v1" }
func (p *procServer) APIKey() string       { return p.key }
func (p *procServer) Model() string        { return p.o.ModelPath }
func (p *procServer) HTTP() *http.Client   { return p.hc }
func (p *procServer) Record() ServerRecord { return p.record }

func (p *procServer) logPath() string { return filepath.Join(p.o.OutDir, ServerLog) }

// errExited: the process exited before it answered /health.
var errExited = errors.New("server process exited")

// serverPort is the server's port inside an isolating sandbox (a network
// namespace of its own, so any port is free): vLLM's default.
const serverPort = 8000

// start runs the server (on the port of the last run, if any) and waits
// until it is healthy.
func (p *procServer) start(ctx context.Context) error {
	p.mu.Lock()
	port, closed := p.port, p.closed
	p.mu.Unlock()
	if closed {
		return fmt.Errorf("%s: server closed", p.name)
	}
	if port == 0 {
		port = serverPort
		if !p.isolated {
			// On the host's network the port must be free there.
			var err error
			if port, err = freePort(); err != nil {
				return fmt.Errorf("find a free port: %w", err)
			}
		}
	}
	logf, err := os.OpenFile(p.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open server log: %w", err)
	}
	spec := p.spec(p.serveArgv(port))
	spec.Stdout, spec.Stderr = logf, logf
	fmt.Fprintf(logf, "ptb: starting %s in the %s sandbox (gpus %v): %s\n", p.name, p.record.Sandbox, spec.GPUs, strings.Join(spec.Argv, " "))
	if err := p.dirs.freshTmp(); err != nil {
		logf.Close()
		return err
	}
	err = p.sb.Capabilities().Supports(spec)
	var proc sandbox.Process
	if err == nil {
		proc, err = p.sb.Start(ctx, spec)
	}
	if err != nil {
		fmt.Fprintf(logf, "ptb: %v\n", err)
		logf.Close()
		return fmt.Errorf("start %s in the %s sandbox: %w", p.name, p.record.Sandbox, err)
	}
	exited := make(chan struct{})
	go func() {
		ex, err := proc.Wait(context.Background())
		// Whatever the server left (vLLM's engine processes hold GPU
		// memory) goes with it.
		_ = proc.Destroy()
		fmt.Fprintf(logf, "ptb: %s exited: %s\n", p.name, exitText(ex, err))
		logf.Close()
		close(exited)
	}()
	p.mu.Lock()
	p.proc, p.exited, p.port = proc, exited, port
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

func exitText(ex sandbox.Exit, err error) string {
	switch {
	case err != nil:
		return err.Error()
	case ex.Signal != "":
		return "killed by " + ex.Signal
	}
	return "exit status " + strconv.Itoa(ex.Code)
}

// waitHealthy polls /health until it answers 200 (nil), the process exits
// (errExited), the deadline passes or ctx ends.
func (p *procServer) waitHealthy(ctx context.Context, exited chan struct{}, deadline time.Time) error {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: p.hc.Transport}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+serverHost+"/health", nil)
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

// Close stops the server: SIGTERM to its process tree, stopGrace, then
// SIGKILL. It waits until the process has exited.
func (p *procServer) Close() error {
	p.mu.Lock()
	proc, exited := p.proc, p.exited
	already := p.closed
	p.closed = true
	p.mu.Unlock()
	if proc != nil {
		select {
		case <-exited:
		default:
			_ = proc.Stop(stopGrace)
			<-exited
		}
	}
	if !already && p.cleanup != nil {
		p.cleanup()
	}
	return nil
}
