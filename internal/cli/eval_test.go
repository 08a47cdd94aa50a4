package cli

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
    open(attack["write"], "w").write("pwned")
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

// TestEvalServerSandboxed runs `ptb eval --backend vllm` with a stand-in
// vllm through the real command: bwrap, `ptb sandbox-init` relaying the
// server's socket, the interpreter's install found and bound. The
// evaluation completes, the stand-in reads no host file, writes nothing
// beside final_model, sees none of ptb's secrets, and its version off the
// pin is recorded and warned about.
func TestEvalServerSandboxed(t *testing.T) {
	if err := bwrap.New().Check(context.Background()); err != nil {
		t.Skip(err)
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	real, err := exec.Command(py, "-c", "import os, sys; print(os.path.realpath(sys.executable))").Output()
	if err != nil {
		t.Fatal(err)
	}
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
