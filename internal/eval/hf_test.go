package eval

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/eval/evaltest"
	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/sandbox/bwrap"
)

// TestHFServerPython runs the Python tests of the embedded server (request
// validation, generation-config defaults, hermes parsing, batching, the
// HTTP layer on a fake engine); they need no torch.
func TestHFServerPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-m", "unittest", "test_server")
	cmd.Dir = "hfserver"
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3 -m unittest test_server: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

func TestHFServerSourceEmbedded(t *testing.T) {
	b, err := os.ReadFile("hfserver/server.py")
	if err != nil {
		t.Fatal(err)
	}
	if string(HFServerSource()) != string(b) || len(b) == 0 {
		t.Error("embedded server.py differs from hfserver/server.py")
	}
}

// fakeHF is a stand-in for the hf backend's python3 (its #! line names a
// real interpreter): it runs the written-out server.py with a scripted
// engine in place of the model, answering the last message from
// MODEL/replies.json, and says where it runs. Asked for its libraries
// (-c), it names fake versions.
const fakeHF = `import json, os, socket, sys
if sys.argv[1] == "-c":
    print("transformers 0.0-fake, torch 0.0-fake")
    sys.exit(0)
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[1])))
import server
from http.server import ThreadingHTTPServer
args = sys.argv[2:]
flag = lambda n: args[args.index(n) + 1]
replies = json.load(open(os.path.join(flag("--model"), "replies.json")))
class Engine:
    max_model_len = 10**9
    def prompt_ids(self, messages, tools):
        return [ord(c) for c in messages[-1]["content"]]
    def decode(self, ids):
        return "".join(map(chr, ids))
    def generate(self, prompts, params, max_tokens):
        return [([ord(c) for c in replies.get(self.decode(p), "no idea")][:m], "stop") for p, m in zip(prompts, max_tokens)]
# vLLM's processes and torch's workers talk through shared memory.
from multiprocessing import shared_memory
shm = shared_memory.SharedMemory(create=True, size=1 << 20)
print("shared memory ok", flush=True)
print("fake hf server listening on host", socket.gethostname(), "with", " ".join(sorted(os.environ)), flush=True)
ThreadingHTTPServer((flag("--host"), int(flag("--port"))), server.App(Engine(), flag("--model"), flag("--api-key"), {}).handler()).serve_forever()
`

// TestHFBackendEndToEnd drives the hf backend through the real server.py
// HTTP layer (the model replaced by scripted replies) in the bwrap sandbox:
// the interpreter found on the host (under a hidden home, for pyenv) is
// bound in, the requests reach the server through its relayed socket, the
// server gets no harness secret, and the Go client's requests,
// vLLM-shaped responses and, for BFCL, hermes tool calls parsed by the
// server are scored by ptb.
func TestHFBackendEndToEnd(t *testing.T) {
	b := bwrap.New()
	if err := b.Check(context.Background()); err != nil {
		t.Skip(err)
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	q, err := queryPython(context.Background(), py, installQueryEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("OPENAI_API_KEY", "sk-harness-secret")
	data := dataDir(t)
	for _, name := range []string{"gsm8k", "bfcl"} {
		t.Run(name, func(t *testing.T) {
			n := 6
			replies, want := answers(t, name, data, n)
			texts := map[string]string{}
			for k, v := range replies {
				switch r := v.(type) {
				case string:
					texts[k] = r
				case []map[string]any:
					fn := r[0]["function"].(map[string]any)
					texts[k] = "<tool_call>\n{\"name\": \"" + fn["name"].(string) + "\", \"arguments\": " + fn["arguments"].(string) + "}\n</tool_call>"
				}
			}
			model := t.TempDir()
			b, _ := json.Marshal(texts)
			if err := os.WriteFile(filepath.Join(model, "replies.json"), b, 0o644); err != nil {
				t.Fatal(err)
			}
			fake := filepath.Join(t.TempDir(), "python")
			if err := os.WriteFile(fake, []byte("#!"+q.Executable+"\n"+fakeHF), 0o755); err != nil {
				t.Fatal(err)
			}
			old := healthPoll
			healthPoll = 20 * time.Millisecond
			t.Cleanup(func() { healthPoll = old })
			o := Options{
				Task: name, OutDir: t.TempDir(), Sandbox: bwrap.New(), Pinned: evaltest.NewMirror(t).Store(t),
				Target:   Target{Backend: BackendHF, ModelPath: model, BaseModel: &registry.Model{ID: "Qwen/Qwen3-1.7B-Base", Template: "qwen3"}},
				Data:     Data{DataDir: data, Limit: n},
				Requests: Requests{MaxTokens: 1000, Sleep: noSleep},
				Server:   Server{HFPython: fake, Hidden: []string{data}},
			}
			sum, err := Run(context.Background(), o)
			log, _ := os.ReadFile(filepath.Join(o.OutDir, ServerLog))
			if err != nil {
				t.Fatalf("%v\n%s", err, log)
			}
			if sum.Scored != n || !closeTo(sum.Accuracy, want) {
				t.Errorf("accuracy %v over %d, want %v over %d", sum.Accuracy, sum.Scored, want, n)
			}
			if !strings.Contains(string(log), "shared memory ok") {
				t.Errorf("no shared memory in the sandbox; server.log:\n%s", log)
			}
			if !strings.Contains(string(log), "fake hf server listening on host ptb-sandbox with ") {
				t.Errorf("the server did not run in the sandbox; server.log:\n%s", log)
			}
			if strings.Contains(string(log), "OPENAI_API_KEY") {
				t.Errorf("the server's environment held OPENAI_API_KEY:\n%s", log)
			}
			if got, want := sum.Server.Version, "transformers 0.0-fake, torch 0.0-fake"; got != want {
				t.Errorf("server version %q, want %q", got, want)
			}
			if sum.Server.Sandbox != "bwrap" || sum.Server.Unsandboxed || len(sum.Warnings) != 0 {
				t.Errorf("server record %+v, warnings %q", sum.Server, sum.Warnings)
			}
		})
	}
}
