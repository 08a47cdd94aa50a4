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

// fakeHF runs the written-out server.py with a scripted engine in place of
// the model: it answers the last message from PTB_FAKE_HF_REPLIES.
const fakeHF = `import json, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[1])))
import server
from http.server import ThreadingHTTPServer
args = sys.argv[2:]
flag = lambda n: args[args.index(n) + 1]
replies = json.load(open(os.environ["PTB_FAKE_HF_REPLIES"]))
class Engine:
    max_model_len = 10**9
    def prompt_ids(self, messages, tools):
        return [ord(c) for c in messages[-1]["content"]]
    def decode(self, ids):
        return "".join(map(chr, ids))
    def generate(self, prompts, params, max_tokens):
        return [([ord(c) for c in replies.get(self.decode(p), "no idea")][:m], "stop") for p, m in zip(prompts, max_tokens)]
print("fake hf server listening", flush=True)
ThreadingHTTPServer((flag("--host"), int(flag("--port"))), server.App(Engine(), flag("--model"), flag("--api-key"), {}).handler()).serve_forever()
`

// TestHFBackendEndToEnd drives the hf backend through the real server.py
// HTTP layer (the model replaced by scripted replies): the Go client's
// requests, vLLM-shaped responses and, for BFCL, hermes tool calls parsed by
// the server and scored by ptb.
func TestHFBackendEndToEnd(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
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
			dir := t.TempDir()
			b, _ := json.Marshal(texts)
			write := func(name, s string, mode os.FileMode) string {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, []byte(s), mode); err != nil {
					t.Fatal(err)
				}
				return p
			}
			t.Setenv("PTB_FAKE_HF_REPLIES", write("replies.json", string(b), 0o644))
			fake := write("fake_hf.py", fakeHF, 0o644)
			wrapper := write("python", "#!/bin/sh\nexec "+py+" "+fake+" \"$@\"\n", 0o755)
			old := healthPoll
			healthPoll = 20 * time.Millisecond
			t.Cleanup(func() { healthPoll = old })
			o := Options{Task: name, Backend: BackendHF, ModelPath: t.TempDir(), HFPython: wrapper, DataDir: data,
				Limit: n, MaxTokens: 1000, OutDir: t.TempDir(), Sleep: noSleep,
				BaseModel: &registry.Model{ID: "Qwen/Qwen3-1.7B-Base", Template: "qwen3"}, Pinned: evaltest.NewMirror(t).Store(t)}
			sum, err := Run(context.Background(), o)
			if err != nil {
				log, _ := os.ReadFile(filepath.Join(o.OutDir, ServerLog))
				t.Fatalf("%v\n%s", err, log)
			}
			if sum.Scored != n || !closeTo(sum.Accuracy, want) {
				t.Errorf("accuracy %v over %d, want %v over %d", sum.Accuracy, sum.Scored, want, n)
			}
			log, _ := os.ReadFile(filepath.Join(o.OutDir, ServerLog))
			if !strings.Contains(string(log), "fake hf server listening") {
				t.Errorf("server.log: %s", log)
			}
		})
	}
}
