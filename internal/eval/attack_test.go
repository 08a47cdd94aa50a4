package eval

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/eval/evaltest"
	"github.com/ptb-dev/ptb/internal/sandbox/bwrap"
)

// TestServerAttack is the critical attack on the final evaluation: the
// server that loads final_model runs the model directory's code
// (--trust-remote-code; here a stand-in vllm plays that code). It tries to
// read a host secret outside the run, to write beside final_model and
// elsewhere on the host, and prints its environment looking for the
// harness's keys. Through the sandbox backend none of that works, and the
// evaluation still completes through the relayed socket.
func TestServerAttack(t *testing.T) {
	b := bwrap.New()
	if err := b.Check(context.Background()); err != nil {
		t.Skip(err)
	}
	old := healthPoll
	healthPoll = 20 * time.Millisecond
	t.Cleanup(func() { healthPoll = old })
	secrets := map[string]string{
		"OPENAI_API_KEY":    "sk-openai-harness-secret",
		"ANTHROPIC_API_KEY": "sk-ant-harness-secret",
		"HF_TOKEN":          "hf_harness_secret",
		"PTB_JUDGE_KEY":     "ptb-judge-harness-secret",
	}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	host := t.TempDir()
	secret := filepath.Join(host, "host-secret.txt")
	if err := os.WriteFile(secret, []byte("the host's secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	runDir := t.TempDir()
	model := filepath.Join(runDir, "collect", "final_model")
	if err := os.MkdirAll(model, 0o755); err != nil {
		t.Fatal(err)
	}
	// The test set with its answers: a server that read it could answer
	// every question right. The harness hides the evaluation data.
	shared, err := filepath.EvalSymlinks(evaltest.Datasets(t))
	if err != nil {
		t.Fatal(err)
	}
	testSet := filepath.Join(shared, "gsm8k", "test.jsonl")
	beside := filepath.Join(runDir, "collect", "pwned")
	inEval := filepath.Join(runDir, "eval", "pwned")
	elsewhere := filepath.Join(host, "pwned")
	inModel := filepath.Join(model, "pwned")
	cfg, _ := json.Marshal(fakeConfig{Attack: true, ReadFiles: []string{secret, testSet}, WriteFiles: []string{beside, elsewhere, inModel, inEval}})
	for name, s := range map[string]string{"config.json": `{"architectures": ["Qwen3ForCausalLM"]}`, "fake.json": string(cfg)} {
		if err := os.WriteFile(filepath.Join(model, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data := dataDir(t)
	o := Options{
		Pinned: evaltest.NewMirror(t).Store(t), Task: "gsm8k", OutDir: filepath.Join(runDir, "eval"), Sandbox: b,
		Target:   Target{Backend: BackendVLLM, ModelPath: model},
		Data:     Data{DataDir: data, Limit: 5},
		Requests: Requests{Concurrency: 2, MaxTokens: 100, Sleep: noSleep},
		Server:   Server{VLLM: os.Args[0], Hidden: []string{shared}},
	}
	sum, err := Run(context.Background(), o)
	log, _ := os.ReadFile(filepath.Join(o.OutDir, ServerLog))
	if err != nil {
		t.Fatalf("evaluation did not complete through the sandboxed server: %v\n%s", err, log)
	}
	if sum.Scored != 5 {
		t.Errorf("scored %d samples, want 5", sum.Scored)
	}
	// The pinned template reaches the server, bound read-only.
	if want := fmt.Sprintf("fake server: chat template %q: %q <nil>", filepath.Join(o.OutDir, TemplateDir, "qwen3.jinja"), evaltest.TemplateText("qwen3.jinja")); !strings.Contains(string(log), want) {
		t.Errorf("server.log lacks %s", want)
	}
	if !strings.Contains(string(log), "ATTACK env:") {
		t.Fatalf("the stand-in server did not run its attack:\n%s", log)
	}
	if strings.Contains(string(log), "the host's secret") {
		t.Errorf("the server read the host secret %s", secret)
	}
	if !strings.Contains(string(log), "ATTACK read "+testSet+" blocked") {
		t.Errorf("the server read the test set %s", testSet)
	}
	for _, p := range []string{beside, elsewhere, inModel, inEval} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("the server wrote %s on the host", p)
		}
		// Not even in the sandbox's own view of the host.
		if !strings.Contains(string(log), "ATTACK write "+p+" blocked") {
			t.Errorf("the server could write %s inside its sandbox", p)
		}
	}
	// What the server wrote inside its private /tmp and home is gone with it.
	if _, err := os.Lstat(filepath.Join(o.OutDir, ServerDir)); err == nil {
		t.Errorf("%s left behind", filepath.Join(o.OutDir, ServerDir))
	}
	// What the server wrote inside its private /tmp and home is gone with it.
	if _, err := os.Lstat(filepath.Join(o.OutDir, ServerDir)); err == nil {
		t.Errorf("%s left behind", filepath.Join(o.OutDir, ServerDir))
	}
	for k, v := range secrets {
		if strings.Contains(string(log), v) {
			t.Errorf("the server's environment held %s", k)
		}
	}
	t.Logf("server.log:\n%s", log)
}

// TestServerRestartsInSandbox: a sandboxed server that dies is restarted
// in a fresh sandbox behind the same socket, and the evaluation completes.
// Every instance dies at its 6th request, so 12 samples take three.
func TestServerRestartsInSandbox(t *testing.T) {
	b := bwrap.New()
	if err := b.Check(context.Background()); err != nil {
		t.Skip(err)
	}
	o, _ := fakeSetup(t, BackendVLLM, fakeConfig{DieAfter: 5})
	// No record of starts: the sandbox cannot write to the test's directory.
	cfg, _ := json.Marshal(fakeConfig{DieAfter: 5})
	if err := os.WriteFile(filepath.Join(o.ModelPath, "fake.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	o.Sandbox, o.DataDir, o.Concurrency = b, dataDir(t), 1
	sum, err := Run(context.Background(), o)
	log, _ := os.ReadFile(filepath.Join(o.OutDir, ServerLog))
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	if sum.Scored != 12 {
		t.Errorf("scored %d", sum.Scored)
	}
	if got := strings.Count(string(log), "ptb: starting vllm in the bwrap sandbox"); got != 3 {
		t.Errorf("%d starts, want 3:\n%s", got, log)
	}
	if got := strings.Count(string(log), "dying at request 6"); got != 2 {
		t.Errorf("%d deaths, want 2:\n%s", got, log)
	}
}
