package eval

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/eval/evaltest"
	"github.com/ptb-dev/ptb/internal/eval/pyexec"
	"github.com/ptb-dev/ptb/internal/eval/task"
	"github.com/ptb-dev/ptb/internal/modelinfo"
	"github.com/ptb-dev/ptb/internal/sandbox/none"
	"github.com/ptb-dev/ptb/internal/sandbox/relay"
)

// The test binary plays, by its arguments, every program the evaluation
// starts: `ptb sandbox-init ...` (the relay in front of the server),
// `vllm serve MODEL ...` and `vllm --version`, `python3 .../server.py ...`
// (the hf server) and "fake-engine-core", a process the server started
// (vLLM's engine core) that ignores SIGTERM. The server reads how to
// behave from MODEL/fake.json (the model directory is the one thing every
// sandbox shows it); the environment is not used, since the harness passes
// the server an allowlist only.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch a := os.Args[1]; {
		case a == "sandbox-init":
			os.Exit(fakeSandboxInit(os.Args[2:]))
		case a == pyexec.WorkerCommand:
			os.Exit(pyexec.Main(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
		case a == "--version":
			fmt.Println("INFO 11-29 12:00:00 [__init__.py:216] Automatically detected platform cuda.")
			fmt.Println("0.11.0")
			os.Exit(0)
		case a == "serve" || filepath.Base(a) == HFServerFile:
			fakeServerMain()
			os.Exit(0)
		case a == "fake-engine-core":
			signal.Ignore(syscall.SIGTERM)
			time.Sleep(time.Hour)
			os.Exit(0)
		}
	}
	os.Exit(m.Run())
}

// fakeSandboxInit is `ptb sandbox-init --forward F... -- ARGV...`.
func fakeSandboxInit(args []string) int {
	var fs []relay.Forward
	for len(args) >= 2 && args[0] == "--forward" {
		f, err := relay.ParseForward(args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		fs = append(fs, f)
		args = args[2:]
	}
	if len(args) == 0 || args[0] != "--" {
		fmt.Fprintf(os.Stderr, "fake sandbox-init: bad arguments %q\n", args)
		return 2
	}
	return relay.Init(context.Background(), fs, args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr)
}

// fakeConfig is MODEL/fake.json.
type fakeConfig struct {
	Dir        string   `json:"dir"`        // where to record starts ("" = nowhere)
	DieAfter   int      `json:"die_after"`  // >0: the first instance exits without answering its (n+1)th chat request
	DieAlways  bool     `json:"die_always"` // every instance does so at its first
	FailStart  bool     `json:"fail_start"` // exit at once
	Attack     bool     `json:"attack"`     // try the attacks below and print what they gave
	ReadFiles  []string `json:"read"`       // host files to read
	WriteFiles []string `json:"write"`      // host files to create
}

// fakeRecord is what each fake server start appends to DIR/starts.jsonl.
type fakeRecord struct {
	Argv     []string `json:"argv"`
	ScriptOK bool     `json:"script_ok"` // argv[0] holds the embedded server.py
	Pids     []int    `json:"pids"`      // the server and its child
}

// fakeServerMain serves /health (after a short start-up), /v1/models and
// /v1/chat/completions, answering "instance N", as fake.json says.
func fakeServerMain() {
	args := os.Args[1:]
	fmt.Printf("fake server: argv %q\n", args)
	flag := func(name string) string {
		for i, a := range args {
			if a == name && i+1 < len(args) {
				return args[i+1]
			}
		}
		return ""
	}
	model := flag("--model")
	if args[0] == "serve" {
		model = args[1]
	}
	var cfg fakeConfig
	if b, err := os.ReadFile(filepath.Join(model, "fake.json")); err == nil {
		if err := json.Unmarshal(b, &cfg); err != nil {
			fmt.Println("fake server: fake.json:", err)
			os.Exit(1)
		}
	}
	if cfg.Attack {
		attack(cfg)
	}
	if t := flag("--chat-template"); t != "" {
		b, err := os.ReadFile(t)
		fmt.Printf("fake server: chat template %q: %q %v\n", t, b, err)
	}
	if cfg.FailStart {
		fmt.Println("fake server: CUDA out of memory")
		os.Exit(1)
	}
	child := exec.Command(os.Args[0], "fake-engine-core")
	if err := child.Start(); err != nil {
		fmt.Println("fake server:", err)
		os.Exit(1)
	}
	rec := fakeRecord{Argv: args, Pids: []int{os.Getpid(), child.Process.Pid}}
	if len(args) > 0 {
		b, err := os.ReadFile(args[0])
		rec.ScriptOK = err == nil && bytes.Equal(b, hfServerPy)
	}
	instance := 1
	if cfg.Dir != "" {
		line, _ := json.Marshal(rec)
		f, err := os.OpenFile(filepath.Join(cfg.Dir, "starts.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Println("fake server:", err)
			os.Exit(1)
		}
		_, _ = f.Write(append(line, '\n'))
		f.Close()
		b, _ := os.ReadFile(filepath.Join(cfg.Dir, "starts.jsonl"))
		instance = bytes.Count(b, []byte("\n"))
	}
	dieAfter := int64(-1)
	if cfg.DieAfter > 0 && instance == 1 {
		dieAfter = int64(cfg.DieAfter)
	}
	if cfg.DieAlways {
		dieAfter = 0
	}
	key := flag("--api-key")
	start := time.Now()
	var served atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		if time.Since(start) < 100*time.Millisecond {
			http.Error(w, "loading", http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+key {
			http.Error(w, `{"error":{"message":"unauthorized"}}`, http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/v1/models" {
			_ = json.NewEncoder(w).Encode(map[string]any{"data": []any{map[string]any{"id": model}}})
			return
		}
		if n := served.Add(1); dieAfter >= 0 && n > dieAfter {
			fmt.Printf("fake server %d: dying at request %d\n", instance, n)
			os.Exit(3)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"index": 0,
			"message": map[string]any{"role": "assistant", "content": fmt.Sprintf("instance %d", instance)}}}})
	})
	l, err := net.Listen("tcp", "127.0.0.1:"+flag("--port"))
	if err != nil {
		fmt.Println("fake server:", err)
		os.Exit(1)
	}
	fmt.Printf("fake server %d listening\n", instance)
	_ = http.Serve(l, mux)
}

// attack is what code in final_model could do when the server loads it
// (vLLM under --trust-remote-code runs the model directory's Python): read
// host files, write beside final_model and elsewhere, and look for the
// harness's secrets in its environment. It prints what it got.
func attack(cfg fakeConfig) {
	for _, p := range cfg.ReadFiles {
		if b, err := os.ReadFile(p); err == nil {
			fmt.Printf("ATTACK read %s: %q\n", p, b)
		} else {
			fmt.Printf("ATTACK read %s blocked: %v\n", p, err)
		}
	}
	for _, p := range cfg.WriteFiles {
		if err := os.WriteFile(p, []byte("pwned"), 0o644); err == nil {
			fmt.Printf("ATTACK write %s: done\n", p)
		} else {
			fmt.Printf("ATTACK write %s blocked: %v\n", p, err)
		}
	}
	fmt.Printf("ATTACK env: %q\n", os.Environ())
}

func readStarts(t *testing.T, dir string) []fakeRecord {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "starts.jsonl"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []fakeRecord
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var r fakeRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// gone reports whether pid has exited (a zombie counts as exited).
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// checkGone fails unless every pid exits soon: SIGKILL takes effect
// asynchronously, so this waits up to 10 s.
func checkGone(t *testing.T, starts []fakeRecord) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, r := range starts {
		for _, pid := range r.Pids {
			for !gone(pid) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if !gone(pid) {
				t.Errorf("process %d (of start %v) still running", pid, r.Argv)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

// fakeSetup makes a Qwen-typed model directory (by config.json, as
// final_model is) holding the fake's fake.json, and a templates directory.
// The server runs under the none backend, so that the test can see its
// process ids.
func fakeSetup(t *testing.T, backend string, cfg fakeConfig) (Options, string) {
	t.Helper()
	old := healthPoll
	healthPoll = 20 * time.Millisecond
	t.Cleanup(func() { healthPoll = old })
	fake := t.TempDir()
	cfg.Dir = fake
	model := filepath.Join(t.TempDir(), "final_model")
	if err := os.MkdirAll(model, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(model, "config.json"), []byte(`{"architectures": ["Qwen3ForCausalLM"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(model, "fake.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return Options{
		Task: "gsm8k", OutDir: t.TempDir(), Pinned: evaltest.NewMirror(t).Store(t), Sandbox: none.New(),
		Target:   Target{Backend: backend, ModelPath: model},
		Data:     Data{Limit: 12},
		Requests: Requests{Concurrency: 2, MaxTokens: 100, Sleep: noSleep},
		Server:   Server{VLLM: os.Args[0], HFPython: os.Args[0]},
	}, fake
}

// TestServerLifecycle runs gsm8k on a server started by ptb that dies after
// five requests: the exact command line, the wait for /health, the log,
// one restart on the same port that finishes the remaining samples within
// the same ladder attempt, and no process left afterwards. The same suite
// runs for both backends that start a server.
func TestServerLifecycle(t *testing.T) {
	data := dataDir(t)
	for _, backend := range []string{BackendVLLM, BackendHF} {
		t.Run(backend, func(t *testing.T) {
			o, fake := fakeSetup(t, backend, fakeConfig{DieAfter: 5})
			o.DataDir = data
			sum, err := Run(context.Background(), o)
			starts := readStarts(t, fake)
			checkGone(t, starts)
			if err != nil {
				t.Fatal(err)
			}
			if len(starts) != 2 {
				t.Fatalf("%d server starts, want 2 (one restart)", len(starts))
			}
			argv := starts[0].Argv
			if len(argv) < 4 {
				t.Fatalf("argv %q", argv)
			}
			key, port := "", argv[len(argv)-1]
			tmpl := filepath.Join(o.OutDir, TemplateDir, "qwen3.jinja")
			var want []string
			if backend == BackendVLLM {
				key = argv[5]
				want = []string{"serve", o.ModelPath, "--host", "127.0.0.1", "--api-key", key, "--gpu-memory-utilization", "0.3", "--chat-template", tmpl, "--port", port}
			} else {
				key, port = argv[8], argv[6]
				want = []string{argv[0], "--model", o.ModelPath, "--host", "127.0.0.1", "--port", port, "--api-key", key, "--chat-template", tmpl}
				if filepath.Base(argv[0]) != HFServerFile || !starts[0].ScriptOK {
					t.Errorf("server script %s does not hold the embedded server.py", argv[0])
				}
				if _, err := os.Stat(argv[0]); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("server script %s left behind: %v", argv[0], err)
				}
			}
			if len(key) != 32 {
				t.Errorf("api key %q", key)
			}
			if _, err := strconv.Atoi(port); err != nil {
				t.Errorf("port %q", port)
			}
			if !reflect.DeepEqual(argv, want) {
				t.Errorf("argv\n got %q\nwant %q", argv, want)
			}
			if !reflect.DeepEqual(starts[1].Argv, argv) {
				t.Errorf("restart argv %q, want the first (same port and key)", starts[1].Argv)
			}
			if sum.Scored != 12 {
				t.Errorf("scored %d", sum.Scored)
			}
			done, _ := readScored(filepath.Join(o.OutDir, SamplesFile))
			byInstance := map[string]int{}
			for _, sc := range done {
				byInstance[sc.Output.Content]++
			}
			// The crash may lose an answer already written (as a real one
			// would); it is then asked again of the restarted server.
			if n1, n2 := byInstance["instance 1"], byInstance["instance 2"]; n1+n2 != 12 || n1 > 5 || n2 < 7 {
				t.Errorf("answers by instance %v, want at most 5 by the first and the rest by the restarted one", byInstance)
			}
			// eval.json records the server (here: unsandboxed, under none);
			// a resumed evaluation with nothing left to do reports it again
			// without starting one.
			rec := recordedServer(o.OutDir)
			if rec == nil || rec.Backend != backend || rec.Sandbox != "none" || !rec.Unsandboxed || !reflect.DeepEqual(rec, sum.Server) {
				t.Errorf("eval.json server %+v, summary %+v", rec, sum.Server)
			}
			if backend == BackendVLLM && (rec.Version != "0.11.0" || rec.PinnedVersion != PinnedVLLM) {
				t.Errorf("vllm version %q (pin %q), want 0.11.0 from `vllm --version`", rec.Version, rec.PinnedVersion)
			}
			if len(sum.Warnings) == 0 || !strings.HasPrefix(sum.Warnings[0], "unsandboxed:") {
				t.Errorf("warnings %q, want the unsandboxed server named", sum.Warnings)
			}
			again, err := Run(context.Background(), o)
			if err != nil || !reflect.DeepEqual(again.Server, sum.Server) || len(readStarts(t, fake)) != 2 {
				t.Errorf("resumed: %v, server %+v, %d starts", err, again.Server, len(readStarts(t, fake)))
			}
			log, _ := os.ReadFile(filepath.Join(o.OutDir, ServerLog))
			for _, s := range []string{"ptb: starting", "fake server 1 listening", "fake server 1: dying at request 6", "fake server 2 listening", "exit status 3"} {
				if !strings.Contains(string(log), s) {
					t.Errorf("server.log lacks %q:\n%s", s, log)
				}
			}
		})
	}
}

func TestServerStartFails(t *testing.T) {
	o, fake := fakeSetup(t, BackendVLLM, fakeConfig{FailStart: true})
	o.DataDir = dataDir(t)
	_, err := Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "exited before it was healthy") || !strings.Contains(err.Error(), ServerLog) {
		t.Errorf("error %v", err)
	}
	log, _ := os.ReadFile(filepath.Join(o.OutDir, ServerLog))
	if !strings.Contains(string(log), "CUDA out of memory") {
		t.Errorf("server.log: %s", log)
	}
	if _, err := os.Stat(filepath.Join(o.OutDir, MetricsFile)); err == nil {
		t.Error("metrics.json written")
	}
	checkGone(t, readStarts(t, fake))
}

func TestServerGivesUpAfterRestarts(t *testing.T) {
	o, fake := fakeSetup(t, BackendVLLM, fakeConfig{DieAlways: true})
	o.DataDir = dataDir(t)
	o.Concurrency = 1
	_, err := Run(context.Background(), o)
	starts := readStarts(t, fake)
	checkGone(t, starts)
	if err == nil || !strings.Contains(err.Error(), "died 4 times") {
		t.Errorf("error %v", err)
	}
	if len(starts) != 1+maxRestarts {
		t.Errorf("%d starts, want %d", len(starts), 1+maxRestarts)
	}
}

func TestServerArgs(t *testing.T) {
	qwen := t.TempDir() + "/Qwen3-1.7B-final"
	gemma := t.TempDir() + "/gemma-3-4b"
	llama := t.TempDir() + "/Llama-3"
	tmpl := "/t"
	cases := []struct {
		task, model string
		want        string
	}{
		{"gsm8k", qwen, "serve Q --host 127.0.0.1 --api-key K --gpu-memory-utilization 0.3 --chat-template /t/qwen3.jinja --port 8000"},
		{"humaneval", qwen, "serve Q --host 127.0.0.1 --api-key K --gpu-memory-utilization 0.3 --chat-template /t/qwen3.jinja --port 8000"},
		{"aime2025", qwen, "serve Q --host 127.0.0.1 --api-key K --gpu-memory-utilization 0.8 --chat-template /t/qwen3.jinja --port 8000"},
		{"gpqamain", gemma, "serve Q --host 127.0.0.1 --api-key K --gpu-memory-utilization 0.8 --chat-template /t/gemma3.jinja --port 8000"},
		{"bfcl", qwen, "serve Q --host 127.0.0.1 --api-key K --gpu-memory-utilization 0.8 --chat-template /t/qwen3.jinja --enable-auto-tool-choice --tool-call-parser hermes --port 8000"},
		{"bfcl", gemma, "serve Q --host 127.0.0.1 --api-key K --gpu-memory-utilization 0.8 --chat-template /t/gemma3_tool_calling.jinja --enable-auto-tool-choice --tool-call-parser hermes --port 8000"},
		{"bfcl", llama, "serve Q --host 127.0.0.1 --api-key K --gpu-memory-utilization 0.8 --chat-template /t/llama3.jinja --enable-auto-tool-choice --tool-call-parser llama3_json --port 8000"},
		{"arenahardwriting", qwen, "serve Q --host 127.0.0.1 --port 8000 --trust-remote-code --api-key K --chat-template /t/qwen3.jinja"},
	}
	for _, c := range cases {
		tk, err := task.New(c.task, "", task.Config{})
		if err != nil {
			t.Fatal(err)
		}
		o := Options{tmplPath: tmpl + "/" + ChatTemplateFile(modelinfo.ModelType(c.model), tk.Info().Tools), Target: Target{ModelPath: c.model}}
		got := strings.Join(VLLMArgs(o, tk.Info(), 8000, "K"), " ")
		if want := strings.Replace(c.want, " Q ", " "+c.model+" ", 1); got != want {
			t.Errorf("%s %s:\n got %s\nwant %s", c.task, filepath.Base(c.model), got, want)
		}
		if c.task == "bfcl" {
			h := strings.Join(HFArgs(o, tk.Info(), 8000, "K"), " ")
			if !strings.HasPrefix(h, "--model "+c.model+" --host 127.0.0.1 --port 8000 --api-key K --chat-template /t/") {
				t.Errorf("hf args %s", h)
			}
		}
	}
}
