package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/ptb-dev/ptb/internal/eval/evaltest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/pinned"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/sandbox/bwrap"
)

// standInVLLM is a Python stand-in for `vllm` (its #! line names the host's
// real interpreter, which may live under a hidden home): `--version`
// answers a version off the original's pin; `serve` tries what code in
// final_model could (read a host file, write beside final_model, print the
// environment), then serves an OpenAI-compatible API that answers every
// question "The answer is 18.".
const standInVLLM = `import json, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
if sys.argv[1] == "--version":
    print("INFO detected platform cuda")
    print("0.10.2")
    sys.exit(0)
args = sys.argv[2:]
flag = lambda n: args[args.index(n) + 1]
model = sys.argv[2]
attack = json.load(open(os.path.join(model, "attack.json")))
try:
    print("ATTACK read:", open(attack["read"]).read(), flush=True)
except OSError as e:
    print("ATTACK read blocked:", e, flush=True)
try:
    open(os.path.join(model, attack["write"]), "w").write("pwned")  # relative: to final_model
    print("ATTACK write: done", flush=True)
except OSError as e:
    print("ATTACK write blocked:", e, flush=True)
print("ATTACK env:", dict(os.environ), flush=True)
class H(BaseHTTPRequestHandler):
    def reply(self, obj):
        b = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def do_GET(self):
        if self.path == "/health":
            return self.reply({})
        if self.headers.get("Authorization") != "Bearer " + flag("--api-key"):
            return self.send_error(401)
        self.reply({"data": [{"id": model}]})
    def do_POST(self):
        if self.headers.get("Authorization") != "Bearer " + flag("--api-key"):
            return self.send_error(401)
        self.rfile.read(int(self.headers["Content-Length"]))
        self.reply({"choices": [{"index": 0, "message": {"role": "assistant", "content": "The answer is 18."}}]})
    def log_message(self, *a):
        pass
print("stand-in vllm listening", flush=True)
ThreadingHTTPServer(("127.0.0.1", int(flag("--port"))), H).serve_forever()
`

// needPinnedTemplates points every pinned store the commands make at a
// local mirror of test templates and judge prompts (evaltest.NewMirror),
// pinned by their own digests: the real files cannot be fetched offline.
// The pinned package's opt-in TestRealPins checks the real ones.
func needPinnedTemplates(t *testing.T) {
	t.Helper()
	m := evaltest.NewMirror(t)
	pinTable = m.Table
	t.Cleanup(func() { pinTable = nil })
	t.Setenv(pinned.EnvBaseURL, m.URL)
	t.Setenv("PTB_CACHE", t.TempDir())
}

// serverPrereqs skips without bwrap or python3, points the pinned stores
// at the test mirror, and returns the real interpreter python3 resolves
// to (as a line of output).
func serverPrereqs(t *testing.T) []byte {
	t.Helper()
	if err := bwrap.New().Check(context.Background()); err != nil {
		t.Skip(err)
	}
	needPinnedTemplates(t)
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	real, err := exec.Command(py, "-c", "import os, sys; print(os.path.realpath(sys.executable))").Output()
	if err != nil {
		t.Fatal(err)
	}
	return real
}

// TestEvalServerSandboxed runs `ptb eval --backend vllm` with a stand-in
// vllm through the real command: bwrap, `ptb sandbox-init` relaying the
// server's socket, the interpreter's install found and bound. The
// evaluation completes, the stand-in reads no host file, writes nothing
// beside final_model, sees none of ptb's secrets, and its version off the
// pin is recorded and warned about.
func TestEvalServerSandboxed(t *testing.T) {
	real := serverPrereqs(t)
	t.Setenv("OPENAI_API_KEY", "sk-cli-harness-secret")
	t.Setenv("HF_TOKEN", "hf_cli_harness_secret")
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.txt")
	model := filepath.Join(dir, "run", "collect", "final_model")
	beside := filepath.Join(dir, "run", "collect", "pwned")
	vllm := filepath.Join(dir, "bin", "vllm")
	for p, s := range map[string]string{
		secret:                              "host secret",
		filepath.Join(model, "config.json"): `{"architectures": ["Qwen3ForCausalLM"]}`,
		filepath.Join(model, "attack.json"): `{"read": "` + secret + `", "write": "` + beside + `"}`,
		vllm:                                "#!" + strings.TrimSpace(string(real)) + "\n" + standInVLLM,
	} {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(s), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "run", "eval")
	code, stdout, stderr := runPTB(t, "eval", "--task", "gsm8k", "--backend", "vllm", "--vllm", vllm, "--model", model,
		"--data-dir", sharedDatasets(t), "--limit", "5", "--max-tokens", "64", "--gpus", "none", "--out", out, "--json")
	log, _ := os.ReadFile(filepath.Join(out, "server.log"))
	if code != 0 {
		t.Fatalf("exit %d\nstderr: %s\nserver.log: %s", code, stderr, log)
	}
	var sum struct {
		Scored int `json:"scored"`
		Server struct {
			Version, Sandbox string
			Unsandboxed      bool
		} `json:"server"`
	}
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Scored != 5 || sum.Server.Version != "0.10.2" || sum.Server.Sandbox != "bwrap" || sum.Server.Unsandboxed {
		t.Errorf("summary %+v", sum)
	}
	if !strings.Contains(stderr, "warning: vllm 0.10.2 is not the original's pinned 0.11.0") {
		t.Errorf("no warning about the version; stderr: %s", stderr)
	}
	if !strings.Contains(string(log), "ATTACK read blocked") || !strings.Contains(string(log), "ATTACK write blocked") || strings.Contains(string(log), "host secret") {
		t.Errorf("the stand-in reached the host:\n%s", log)
	}
	if _, err := os.Lstat(beside); err == nil {
		t.Errorf("the stand-in wrote %s", beside)
	}
	for _, s := range []string{"sk-cli-harness-secret", "hf_cli_harness_secret"} {
		if strings.Contains(string(log), s) {
			t.Errorf("the stand-in's environment held %s", s)
		}
	}
	var st map[string]any
	b, _ := os.ReadFile(filepath.Join(out, "eval.json"))
	if json.Unmarshal(b, &st) != nil || st["server"] == nil {
		t.Errorf("eval.json has no server record: %s", b)
	}
}

// TestRunEvaluatesInTheSandbox: in `ptb run`, the final evaluation's
// server runs in the job's sandbox backend. Code in the agent's
// final_model (the stand-in reads attack.json from it) cannot read
// another run's files under the output root, nor write beside
// final_model; result.json records the server, its version and the
// warning about the pin.
func TestRunEvaluatesInTheSandbox(t *testing.T) {
	real := serverPrereqs(t)
	data, err := filepath.EvalSymlinks(sharedDatasets(t))
	if err != nil {
		t.Fatal(err)
	}
	// Outside /tmp, which the sandbox replaces anyway.
	base, err := os.MkdirTemp("/var/tmp", "ptb-eval-sandbox-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	out := filepath.Join(base, "runs")
	other := filepath.Join(out, "other-run", "collect", "secret.txt")
	bin := filepath.Join(base, "bin")
	for p, s := range map[string]string{other: "another run's secret", filepath.Join(bin, "vllm"): "#!" + strings.TrimSpace(string(real)) + "\n" + standInVLLM} {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(s), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	script := filepath.Join(base, "s.yaml")
	os.WriteFile(script, []byte(`steps:
  - model: final_model
  - write: {path: final_model/attack.json, content: '{"read": "`+other+`", "write": "../pwned"}'}
final: done
`), 0o644)
	code, stdout, stderr := runPTB(t, "run", "--agent", "scripted", "--script", script, "--base-model", "qwen3-1.7b",
		"--benchmark", "gsm8k", "--hours", "0.01", "--eval-backend", "vllm", "--eval-limit", "3", "--data-dir", data,
		"--out", out, "--json")
	logs, _ := filepath.Glob(filepath.Join(out, "gsm8k_*", "eval", "server.log"))
	var log []byte
	if len(logs) == 1 {
		log, _ = os.ReadFile(logs[0])
	}
	if code != 0 {
		t.Fatalf("exit %d: %s\nserver.log: %s", code, stderr, log)
	}
	var r result.Result
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	if r.Evaluation == nil || r.Evaluation.Samples != 3 || r.Evaluation.Server == nil {
		t.Fatalf("evaluation %+v; server.log: %s", r.Evaluation, log)
	}
	s := r.Evaluation.Server
	if s.Sandbox != "bwrap" || s.Unsandboxed || s.Version != "0.10.2" || s.PinnedVersion != "0.11.0" || len(s.Warnings) != 1 {
		t.Errorf("evaluation.server %+v", s)
	}
	if !strings.Contains(string(log), "ATTACK read blocked") || strings.Contains(string(log), "another run's secret") {
		t.Errorf("the server read another run's file:\n%s", log)
	}
	if !strings.Contains(string(log), "ATTACK write blocked") {
		t.Errorf("the server wrote beside final_model:\n%s", log)
	}
	for _, l := range strings.Split(string(log), "\n") {
		if strings.HasPrefix(l, "ATTACK read") || strings.HasPrefix(l, "ATTACK write") {
			t.Log(l)
		}
	}
	if found, _ := filepath.Glob(filepath.Join(out, "gsm8k_*", "collect", "pwned")); len(found) > 0 {
		t.Errorf("the server wrote %s", found)
	}
}

func TestEvalGPUs(t *testing.T) {
	t.Setenv("CUDA_VISIBLE_DEVICES", "3,1")
	cases := []struct {
		in      string
		want    []int
		wantErr string
	}{
		{"none", nil, ""},
		{"0,2", []int{0, 2}, ""},
		{"auto", []int{3, 1}, ""},
		{"zero", nil, `--gpus: "zero" is not a GPU index`},
	}
	for _, c := range cases {
		got, err := evalGPUs(c.in)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("evalGPUs(%q) error %v, want %q", c.in, err, c.wantErr)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("evalGPUs(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	code, _, stderr := runPTB(t, "eval", "--task", "gsm8k", "--model", t.TempDir(), "--sandbox", "docker")
	if code != 2 || !strings.Contains(stderr, `unknown sandbox "docker"`) {
		t.Errorf("--sandbox docker: exit %d, %s", code, stderr)
	}
}
