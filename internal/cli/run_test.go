package cli

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/jobrun"
	"github.com/ptb-dev/ptb/internal/sharedtest"

	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/result"
)

// The test binary stands in for ptb inside the sandbox: the scripted agent
// is launched as `<self> agent-run scripted --script F`, the inference
// server behind `<self> sandbox-init --forward ... -- vllm serve ...`.
func TestMain(m *testing.M) {
	// Any first argument that is not a test flag is a ptb command (a child
	// ptb that a command under test started with os.Executable()).
	if len(os.Args) > 1 && (!strings.HasPrefix(os.Args[1], "-") || os.Getenv("PTB_TEST_AS_PTB") == "1") {
		os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func sharedDatasets(t *testing.T) string {
	t.Helper()
	sharedtest.Path(t, "datasets", "gsm8k", "test.jsonl")
	return filepath.Join(sharedtest.Dir(t), "datasets")
}

func TestRunUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run"}, "agent is required"},
		{[]string{"run", "--agent", "scripted", "--script", "x", "--base-model", "qwen3-1.7b", "--benchmark", "gsm8k", "--gpus", "zero"}, `--gpus: "zero" is not a GPU index`},
		{[]string{"run", "--agent", "codex", "--base-model", "llama", "--benchmark", "gsm8k"}, "unknown base model \"llama\""},
		{[]string{"run", "--resume", "/nonexistent/run"}, "not a run directory"},
		{[]string{"run", "--resume", "/nonexistent/run", "--hours", "2"}, "--hours cannot be combined with --resume"},
		{[]string{"run", "--hours"}, "flag needs an argument"},
		{[]string{"run", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"demo", "--data-dir", "/nonexistent"}, "--data-dir /nonexistent: not a directory"},
	} {
		code, _, stderr := runPTB(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("ptb %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(c.args, " "), code, stderr, c.want)
		}
	}
}

func TestHelpListsCommands(t *testing.T) {
	code, out, _ := runPTB(t, "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, cmd := range []string{"run", "demo", "doctor", "eval", "audit", "trace", "report", "import", "modelserver"} {
		if !strings.Contains(out, "\n  "+cmd+" ") {
			t.Errorf("--help does not list %q:\n%s", cmd, out)
		}
	}
	if strings.Contains(out, "agent-run") {
		t.Errorf("--help lists the hidden agent-run command")
	}
	code, out, _ = runPTB(t, "run", "--help")
	if code != 0 || !strings.Contains(out, "--resume string") || !strings.Contains(out, "ptb run --resume runs/") {
		t.Errorf("run --help: exit %d\n%s", code, out)
	}
}

// The demo runs a whole job and leaves a valid record with the score the
// stand-in responses earn (two in three correct).
func TestDemo(t *testing.T) {
	data := sharedDatasets(t)
	out := t.TempDir()
	code, stdout, stderr := runPTB(t, "demo", "--out", out, "--data-dir", data)
	if code != 0 {
		t.Fatalf("demo exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"score      0.6667 (gsm8k@faithful)", "verdict    unverified", "Stand-ins in this demo"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "stand-ins: the agent is the scripted agent") {
		t.Errorf("demo does not say what is a stand-in: %s", stderr)
	}
	runs, _ := filepath.Glob(filepath.Join(out, "runs", "*", "result.json"))
	if len(runs) != 1 {
		t.Fatalf("want one result.json, got %v", runs)
	}
	b, _ := os.ReadFile(runs[0])
	if err := result.ValidateJSON(b); err != nil {
		t.Fatalf("demo result.json: %v", err)
	}
	var r result.Result
	json.Unmarshal(b, &r)
	if r.Stages[result.StageAudit].Status != result.StatusDone || r.Stages[result.StageEvaluate].Status != result.StatusDone {
		t.Errorf("demo stages: %+v", r.Stages)
	}
	if r.Evaluation == nil || r.Evaluation.Samples != 60 {
		t.Errorf("evaluation = %+v", r.Evaluation)
	}
	md, err := os.ReadFile(filepath.Join(out, "report", "report.md"))
	if err != nil || !strings.Contains(string(md), "| 1 | demo (scripted agent) |") {
		t.Errorf("demo report: %v\n%s", err, md)
	}
}

// A registry override given at creation is kept for --resume: a redone
// prepare renders the same prompt.
func TestResumeKeepsRegistryOverride(t *testing.T) {
	if _, err := jobrun.SandboxBackend(context.Background(), "bwrap"); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	reg := filepath.Join(dir, "reg.yaml")
	os.WriteFile(reg, []byte("benchmarks:\n  - name: gsm8k\n    display: GSM8K (our own wording)\n    inspect: true\n"), 0o644)
	script := filepath.Join(dir, "s.yaml")
	os.WriteFile(script, []byte("steps:\n  - say: hi\nfinal: done\n"), 0o644)
	out := filepath.Join(dir, "runs")
	code, _, stderr := runPTB(t, "run", "--agent", "scripted", "--script", script, "--registry", reg,
		"--base-model", "qwen3-1.7b", "--benchmark", "gsm8k", "--hours", "0.01", "--eval-backend", "none", "--out", out)
	if code != exitNoFinalModel {
		t.Fatalf("exit %d, want %d (no final_model): %s", code, exitNoFinalModel, stderr)
	}
	runs, _ := filepath.Glob(filepath.Join(out, "*"))
	if len(runs) != 1 {
		t.Fatalf("runs: %v", runs)
	}
	run := runs[0]
	// Pretend the harness died before prepare finished.
	var man map[string]any
	b, _ := os.ReadFile(filepath.Join(run, "manifest.json"))
	json.Unmarshal(b, &man)
	for _, st := range []string{"prepare", "solve", "collect", "audit", "evaluate", "record"} {
		man["stages"].(map[string]any)[st] = map[string]any{"status": "pending"}
	}
	b, _ = json.Marshal(man)
	os.WriteFile(filepath.Join(run, "manifest.json"), b, 0o644)
	os.Remove(filepath.Join(run, "prompt.txt"))
	os.RemoveAll(filepath.Join(run, "trace"))
	if code, _, stderr := runPTB(t, "run", "--resume", run); code != exitNoFinalModel {
		t.Fatalf("resume exit %d: %s", code, stderr)
	}
	p, _ := os.ReadFile(filepath.Join(run, "prompt.txt"))
	if !strings.Contains(string(p), "to excel at GSM8K (our own wording).") {
		t.Errorf("the resumed prepare lost the registry override:\n%s", p)
	}
}

// The agent's evaluate.py runs the real evaluation from inside the sandbox:
// python3 hands over to ptb eval, which scores recorded completions here
// (replay), and the metrics land in the workspace.
func TestEvaluatePyInsideSandbox(t *testing.T) {
	if _, err := jobrun.SandboxBackend(context.Background(), "bwrap"); err != nil {
		t.Skip(err)
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not found")
	}
	data := sharedDatasets(t)
	dir := t.TempDir()
	inputs := filepath.Join(dir, "inputs")
	os.MkdirAll(inputs, 0o755)
	os.WriteFile(filepath.Join(inputs, "r.jsonl"), []byte(`{"id": 0, "completion": "ANSWER: 18"}`+"\n"), 0o644)
	script := filepath.Join(dir, "s.yaml")
	os.WriteFile(script, []byte(`steps:
  - run: "python3 evaluate.py --limit 2 --responses `+inputs+`/r.jsonl --data-dir `+data+` --json-output-file dev_metrics.json"
final: done
`), 0o644)
	out := filepath.Join(dir, "runs")
	code, _, stderr := runPTB(t, "run", "--agent", "scripted", "--script", script, "--ro", inputs, "--ro", data,
		"--env", "PTB_TEST_AS_PTB=1", "--env", "PTB_EVAL_BACKEND=replay",
		"--base-model", "qwen3-1.7b", "--benchmark", "gsm8k", "--hours", "0.01", "--eval-backend", "none", "--out", out)
	if code != exitNoFinalModel {
		t.Fatalf("exit %d, want %d (no final_model): %s", code, exitNoFinalModel, stderr)
	}
	runs, _ := filepath.Glob(filepath.Join(out, "*", "workspace", "dev_metrics.json"))
	if len(runs) != 1 {
		logs, _ := filepath.Glob(filepath.Join(out, "*", "trace", "output.log"))
		b, _ := os.ReadFile(logs[0])
		t.Fatalf("evaluate.py left no metrics in the workspace:\n%s", b)
	}
	b, _ := os.ReadFile(runs[0])
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || m["accuracy"] != 0.5 {
		t.Errorf("dev metrics %s (%v), want accuracy 0.5 (problem 0 answered right, problem 1 not at all)", b, err)
	}
}

// A run with the none backend says so everywhere: unsandboxed, host
// network, and never a clean verdict.
func TestRunUnsandboxedIsRecorded(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "s.yaml")
	os.WriteFile(script, []byte("steps:\n  - model: final_model\nfinal: done\n"), 0o644)
	code, stdout, stderr := runPTB(t, "run", "--agent", "scripted", "--script", script, "--sandbox", "none",
		"--base-model", "qwen3-1.7b", "--benchmark", "gsm8k", "--hours", "0.01", "--eval-backend", "none",
		"--out", filepath.Join(dir, "runs"), "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r result.Result
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	if !r.Sandbox.Unsandboxed || r.Sandbox.Backend != "none" || r.Sandbox.Network != "host" || r.Verdict == result.VerdictClean {
		t.Errorf("sandbox %+v, verdict %s", r.Sandbox, r.Verdict)
	}
	if !strings.Contains(strings.Join(r.Warnings, "\n"), "unsandboxed") {
		t.Errorf("warnings %q do not say the run was unsandboxed", r.Warnings)
	}
	if len(r.Sandbox.Limits) == 0 {
		t.Errorf("the record does not list the job's limits")
	}
	for _, l := range r.Sandbox.Limits {
		if l.Enforced || !strings.HasPrefix(l.How, "not enforced") {
			t.Errorf("limit %+v: the none backend enforces nothing, and the record must say so", l)
		}
	}
}

// A limit given with --limit is recorded with how bwrap enforced it.
func TestRunRecordsLimits(t *testing.T) {
	if _, err := jobrun.SandboxBackend(context.Background(), "bwrap"); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "s.yaml")
	os.WriteFile(script, []byte("steps:\n  - run: \"head -c 20000000 /dev/zero > /tmp/f; stat -c %s /tmp/f\"\nfinal: done\n"), 0o644)
	code, stdout, stderr := runPTB(t, "run", "--agent", "scripted", "--script", script, "--limit", "tmp=4M", "--limit", "pids=none",
		"--base-model", "qwen3-1.7b", "--benchmark", "gsm8k", "--hours", "0.01", "--eval-backend", "none",
		"--out", filepath.Join(dir, "runs"), "--json")
	if code != exitNoFinalModel { // the script leaves no final_model
		t.Fatalf("exit %d, want %d: %s", code, exitNoFinalModel, stderr)
	}
	var r result.Result
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	got := map[string]result.Limit{}
	for _, l := range r.Sandbox.Limits {
		got[l.Name] = l
	}
	if l := got["tmp"]; l.Value != 4<<20 || !l.Enforced || !strings.Contains(l.How, "tmpfs") {
		t.Errorf("tmp limit recorded as %+v", l)
	}
	if _, ok := got["pids"]; ok {
		t.Errorf("pids=none still recorded as a limit: %+v", got["pids"])
	}
	if l := got["disk"]; l.Value != float64(job.DefaultDiskBytes) || !strings.Contains(l.How, "watchdog") {
		t.Errorf("default disk limit recorded as %+v", l)
	}
	code, _, stderr = runPTB(t, "run", "--agent", "scripted", "--script", script, "--limit", "memory=lots",
		"--base-model", "qwen3-1.7b", "--benchmark", "gsm8k", "--eval-backend", "none", "--out", filepath.Join(dir, "runs"))
	if code != 2 || !strings.Contains(stderr, "--limit") || !strings.Contains(stderr, "memory") {
		t.Errorf("a bad --limit: exit %d, %q; want a usage error naming it", code, stderr)
	}
}

// The benchmark data the harness evaluates with, and a credentials file
// given to ptb, are not visible to the agent.
func TestHostDataHiddenFromAgent(t *testing.T) {
	if _, err := jobrun.SandboxBackend(context.Background(), "bwrap"); err != nil {
		t.Skip(err)
	}
	// Outside /tmp, which the sandbox replaces anyway.
	base, err := os.MkdirTemp("/var/tmp", "ptb-hidden-test-")
	if err != nil {
		t.Skip(err)
	}
	if os.Getenv("KEEP") == "" {
		defer os.RemoveAll(base)
	}
	data := filepath.Join(base, "datasets")
	os.MkdirAll(filepath.Join(data, "gsm8k"), 0o755)
	os.WriteFile(filepath.Join(data, "gsm8k", "test.jsonl"), []byte(`{"question":"secret test item"}`+"\n"), 0o644)
	cred := filepath.Join(base, "creds.json")
	os.WriteFile(cred, []byte(`{"token":"sk-real-looking"}`), 0o600)
	script := filepath.Join(base, "s.yaml")
	os.WriteFile(script, []byte(`steps:
  - run: "cat `+data+`/gsm8k/test.jsonl > seen.txt 2>&1; cat `+cred+` >> seen.txt 2>&1; true"
final: done
`), 0o644)
	out := filepath.Join(base, "runs")
	code, _, stderr := runPTB(t, "run", "--agent", "scripted", "--script", script, "--data-dir", data, "--credentials", cred,
		"--base-model", "qwen3-1.7b", "--benchmark", "gsm8k", "--hours", "0.01", "--eval-backend", "none", "--out", out)
	if code != exitNoFinalModel {
		t.Fatalf("exit %d, want %d (no final_model): %s", code, exitNoFinalModel, stderr)
	}
	seen, _ := filepath.Glob(filepath.Join(out, "*", "workspace", "seen.txt"))
	if len(seen) != 1 {
		logs, _ := filepath.Glob(filepath.Join(out, "*", "trace", "output.log"))
		var l []byte
		if len(logs) > 0 {
			l, _ = os.ReadFile(logs[0])
		}
		t.Fatalf("the agent left no seen.txt: %s %s", stderr, l)
	}
	b, _ := os.ReadFile(seen[0])
	if strings.Contains(string(b), "secret test item") || strings.Contains(string(b), "sk-real-looking") {
		t.Errorf("the agent read host data: %q", b)
	}
}
