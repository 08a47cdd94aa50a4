package eval

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ptb-dev/ptb/internal/eval/task"
)

// Generate returns the model's output for s at maxTokens; ok is false when
// the backend has no output for s (a replay's missing response), which is
// scored as empty.
type Generate func(ctx context.Context, s task.Sample, maxTokens int) (out task.Output, ok bool, err error)

// generator is the package's name for Generate.
type generator = Generate

// InferenceBackend is where an evaluation's outputs come from: a server
// ptb starts in the sandbox (vllm, hf), one someone else runs (url), or
// recorded responses (replay). Backends are chosen by name (--backend,
// Options.Backend) through the registry: RegisterBackend, LookupBackend.
type InferenceBackend interface {
	// Name is the --backend value.
	Name() string
	// StartsServer says ptb starts the server: it is given ptb's pinned
	// chat template, and its ServerRecord goes into the summary.
	StartsServer() bool
	// Replays says the outputs are recorded, not generated: one attempt,
	// no max tokens recorded, and a resume never sets samples aside.
	Replays() bool
	// Open returns how outputs are obtained for info's samples and how to
	// stop it. hc is the client for the backend's requests (Options.HTTP,
	// or one with timeout, the per-request timeout of the task).
	Open(ctx context.Context, o Options, info task.Info, hc *http.Client, timeout time.Duration) (Generate, func(), error)
}

// backends is the registry of inference backends by name; it is filled by
// RegisterBackend from init functions only, so reads need no lock.
var backends = map[string]InferenceBackend{}

// RegisterBackend adds b under b.Name(); call it from an init function. A
// second backend with the same name panics (a programming error).
func RegisterBackend(b InferenceBackend) {
	if _, dup := backends[b.Name()]; dup {
		panic("eval: backend " + b.Name() + " registered twice")
	}
	backends[b.Name()] = b
}

// BackendNames lists the registered backends, sorted.
func BackendNames() []string {
	names := make([]string, 0, len(backends))
	for n := range backends {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// LookupBackend returns the backend called name ("" = url).
func LookupBackend(name string) (InferenceBackend, error) {
	if name == "" {
		name = BackendURL
	}
	if b, ok := backends[name]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("unknown backend %q (want %s)", name, orList(BackendNames()))
}

// orList writes names as "a, b, c or d".
func orList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

func init() {
	RegisterBackend(replayBackend{})
	RegisterBackend(urlBackend{})
	RegisterBackend(serverBackend{vllmLauncher{}})
	RegisterBackend(serverBackend{hfLauncher{}})
}

// StartsServer says whether the backend called name is one ptb starts
// in a sandbox (false for an unknown name: the evaluation fails when it
// asks for outputs).
func StartsServer(name string) bool {
	b, err := LookupBackend(name)
	return err == nil && b.StartsServer()
}

func (o Options) startsServer() bool { return StartsServer(o.Backend) }

// replays says whether o's backend replays recorded responses.
func (o Options) replays() bool {
	b, err := LookupBackend(o.Backend)
	return err == nil && b.Replays()
}

// replayBackend scores recorded responses (Options.Responses).
type replayBackend struct{}

func (replayBackend) Name() string       { return BackendReplay }
func (replayBackend) StartsServer() bool { return false }
func (replayBackend) Replays() bool      { return true }

func (replayBackend) Open(ctx context.Context, o Options, info task.Info, hc *http.Client, timeout time.Duration) (Generate, func(), error) {
	if o.Responses == "" {
		return nil, nil, errors.New("replay backend needs a responses file")
	}
	resp, err := ReadResponses(o.Responses)
	if err != nil {
		return nil, nil, err
	}
	return func(ctx context.Context, s task.Sample, _ int) (task.Output, bool, error) {
		out, ok := resp[s.ID]
		return out, ok, nil
	}, func() {}, nil
}

// urlBackend sends requests to a running OpenAI-compatible server
// (Options.BaseURL, APIKey, Model).
type urlBackend struct{}

func (urlBackend) Name() string       { return BackendURL }
func (urlBackend) StartsServer() bool { return false }
func (urlBackend) Replays() bool      { return false }

func (urlBackend) Open(ctx context.Context, o Options, info task.Info, hc *http.Client, timeout time.Duration) (Generate, func(), error) {
	if o.BaseURL == "" {
		return nil, nil, errors.New("url backend needs a base URL (--base-url)")
	}
	return o.clientGenerator(ctx, hc, o.BaseURL, o.APIKey, o.Model, info, nil)
}

// serverBackend starts an inference server in Options.Sandbox
// (serverproc.go) and sends requests to it over the relayed socket; its
// launcher says which server and how it is run.
type serverBackend struct{ l serverLauncher }

// serverLauncher is what differs between the servers ptb starts.
type serverLauncher interface {
	name() string
	// configure sets p's executable, install, arguments, version command
	// and record (procServer.setup does the rest).
	configure(ctx context.Context, p *procServer, info task.Info, hostEnv []string) error
	// version reads the version from the version command's output.
	version(out string) (string, error)
}

func (b serverBackend) Name() string     { return b.l.name() }
func (serverBackend) StartsServer() bool { return true }
func (serverBackend) Replays() bool      { return false }

func (b serverBackend) Open(ctx context.Context, o Options, info task.Info, hc *http.Client, timeout time.Duration) (Generate, func(), error) {
	srv, err := startServer(ctx, o, info)
	if err != nil {
		return nil, nil, err
	}
	if err := o.noteServer(srv.Record()); err != nil {
		srv.Close()
		return nil, nil, err
	}
	// The server's socket, with the request timeout of the task.
	shc := &http.Client{Timeout: timeout, Transport: srv.HTTP().Transport}
	gen, stop, err := o.clientGenerator(ctx, shc, srv.BaseURL(), srv.APIKey(), srv.Model(), info, srv.Recover)
	if err != nil {
		srv.Close()
		return nil, nil, err
	}
	return gen, func() {
		stop()
		srv.Close()
	}, nil
}

// vllmLauncher runs `vllm serve` (the original's server).
type vllmLauncher struct{}

func (vllmLauncher) name() string { return BackendVLLM }

func (vllmLauncher) configure(ctx context.Context, p *procServer, info task.Info, hostEnv []string) error {
	o := p.o
	bin := o.VLLM
	if bin == "" {
		bin = "vllm"
	}
	inst, err := findInstall(ctx, bin, false, hostEnv)
	if err != nil {
		return fmt.Errorf("vllm: %w (is vLLM installed? try --backend hf or --backend url)", err)
	}
	p.name, p.inst = "vllm", inst
	p.args = func(port int) []string { return VLLMArgs(o, info, port, p.key) }
	p.versionArgs = []string{"--version"}
	p.record = ServerRecord{Backend: BackendVLLM, PinnedVersion: PinnedVLLM}
	p.record.TrustRemoteCode = info.Style == task.StyleScript
	return nil
}

func (vllmLauncher) version(out string) (string, error) {
	if v := parseVLLMVersion(out); v != "" {
		return v, nil
	}
	return "", fmt.Errorf("no version in the output of vllm --version: %q", lastLine(out))
}

// hfLauncher runs ptb's embedded transformers server (eval/hfserver).
type hfLauncher struct{}

func (hfLauncher) name() string { return BackendHF }

func (hfLauncher) configure(ctx context.Context, p *procServer, info task.Info, hostEnv []string) error {
	o := p.o
	script := filepath.Join(p.dirs.Code, HFServerFile)
	if err := os.WriteFile(script, hfServerPy, 0o644); err != nil {
		return fmt.Errorf("write hf server: %w", err)
	}
	py := o.HFPython
	if py == "" {
		py = "python3"
	}
	inst, err := findInstall(ctx, py, true, hostEnv)
	if err != nil {
		return fmt.Errorf("hf server: %w (is python3 with torch and transformers installed? set --hf-python)", err)
	}
	p.name, p.inst = "hf server", inst
	p.args = func(port int) []string { return append([]string{script}, HFArgs(o, info, port, p.key)...) }
	p.versionArgs = []string{"-c", hfVersionScript}
	p.record = ServerRecord{Backend: BackendHF}
	return nil
}

func (hfLauncher) version(out string) (string, error) {
	return strings.TrimSpace(lastLine(out)), nil
}
