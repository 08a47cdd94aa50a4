package cli

import (
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/campaign/local"
	"github.com/ptb-dev/ptb/internal/result"
)

// repoRoot is the module root (two levels above this package).
func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(wd, "..", "..")
}

// A fresh clone works alone: the binary, built static (CGO_ENABLED=0) as
// the README says, runs the demo in a directory with no shared/ anywhere
// above it, with a clean environment (no PTB_SHARED, no PTB_DATA_DIR, an
// empty cache, downloads off): the GSM8K test set comes from the binary.
func TestDemoFreshClone(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the ptb binary")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin", "ptb")
	build := exec.Command(gobin, "build", "-o", bin, "./cmd/ptb")
	build.Dir = repoRoot(t)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// One static binary: no dynamic loader, no shared libraries.
	if f, err := elf.Open(bin); err == nil {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s has an ELF interpreter: not a static binary", bin)
			}
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("%s links %v: not a static binary", bin, libs)
		}
		f.Close()
	}
	work := filepath.Join(tmp, "fresh")
	os.MkdirAll(work, 0o755)
	home := filepath.Join(tmp, "home")
	os.MkdirAll(home, 0o755)
	cmd := exec.Command(bin, "demo", "--out", "demo")
	cmd.Dir = work
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + home, "XDG_CACHE_HOME=" + filepath.Join(home, ".cache"), "HF_HUB_OFFLINE=1", "LANG=C.UTF-8"}
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("demo in a fresh directory: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr)
	}
	if !strings.Contains(string(out), "score      0.6667 (gsm8k@faithful)") {
		t.Errorf("demo output lacks the stand-in score:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(tmp, "shared")); err == nil {
		t.Fatal("the test itself made a shared/ directory")
	}
}

// fakeTool writes an executable shell script named name into dir.
func fakeTool(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// A misconfigured run is refused before its run directory exists, with
// every problem named and what to do about it.
func TestRunPreflightLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	// A stand-in nvidia-smi that knows one GPU, as `nvidia-smi -L` prints it.
	fakeTool(t, bin, "nvidia-smi", `[ "$1" = "-L" ] && echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-5c3b8f0e-1d2a-4b6c-9e7f-0a1b2c3d4e5f)"`)
	withClaude := filepath.Join(dir, "withclaude")
	os.MkdirAll(withClaude, 0o755)
	fakeTool(t, withClaude, "claude", "exit 0")
	script := filepath.Join(dir, "s.yaml")
	os.WriteFile(script, []byte("steps:\n  - say: hi\nfinal: done\n"), 0o644)
	base := []string{"--base-model", "qwen3-1.7b", "--benchmark", "gsm8k", "--eval-backend", "none", "--sandbox", "none"}
	for _, c := range []struct {
		name string
		path string
		env  map[string]string
		args []string
		want []string
	}{
		{"cli missing", bin, map[string]string{"ANTHROPIC_API_KEY": "x"}, []string{"--agent", "claude", "--agent-model", "claude-opus-4-6"},
			[]string{"the claude CLI is not installed", "npm install -g @anthropic-ai/claude-code@", "--agents-prefix"}},
		{"no credentials", withClaude + ":" + bin, nil, []string{"--agent", "claude", "--agent-model", "claude-opus-4-6"},
			[]string{"agent claude needs an API key", "set ANTHROPIC_API_KEY in ptb's environment", "--credentials"}},
		// Only under --network host does the key have to enter the sandbox.
		{"key set but not passed", withClaude + ":" + bin, map[string]string{"ANTHROPIC_API_KEY": "sk-test"}, []string{"--agent", "claude", "--agent-model", "claude-opus-4-6", "--network", "host"},
			[]string{"add --env ANTHROPIC_API_KEY"}},
		{"codex key named", bin, nil, []string{"--agent", "codex", "--agent-model", "gpt-5.1-codex"},
			[]string{"OPENAI_API_KEY", "the codex CLI is not installed"}},
		{"gemini key named", bin, nil, []string{"--agent", "gemini", "--agent-model", "gemini-3-pro-preview"},
			[]string{"GEMINI_API_KEY"}},
		{"script missing", bin, nil, []string{"--agent", "scripted", "--script", filepath.Join(dir, "nope.yaml")},
			[]string{"--script " + filepath.Join(dir, "nope.yaml") + ": no such file"}},
		{"gpu missing", bin, nil, []string{"--agent", "scripted", "--script", script, "--gpus", "0,3"},
			[]string{"GPU 3 does not exist here (GPUs on this machine: 0)"}},
		{"hours zero", bin, nil, []string{"--agent", "scripted", "--script", script, "--hours", "0"},
			[]string{"--hours 0: want a positive number"}},
		{"hours NaN", bin, nil, []string{"--agent", "scripted", "--script", script, "--hours", "NaN"},
			[]string{"--hours NaN: want a positive number"}},
		{"hours negative", bin, nil, []string{"--agent", "scripted", "--script", script, "--hours", "-1"},
			[]string{"want a positive number"}},
		{"base model missing", bin, nil, []string{"--agent", "scripted", "--script", script, "--base-model", ""},
			[]string{"base model is required (--base-model"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("PATH", c.path)
			for _, k := range []string{"ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "CODEX_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"} {
				t.Setenv(k, "")
			}
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			out := filepath.Join(t.TempDir(), "runs")
			args := append(append([]string{"run", "--out", out}, base...), c.args...)
			code, _, stderr := runPTB(t, args...)
			if code != 2 {
				t.Errorf("exit %d, want 2 (usage)\n%s", code, stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if _, err := os.Stat(out); err == nil {
				ents, _ := os.ReadDir(out)
				t.Errorf("a refused run left %s behind (%d entries)", out, len(ents))
			}
		})
	}
}

// The devices fall back to /dev/nvidiaN when nvidia-smi is missing.
func TestListGPUs(t *testing.T) {
	dev := t.TempDir()
	for _, n := range []string{"nvidia0", "nvidia2", "nvidiactl", "nvidia-uvm"} {
		os.WriteFile(filepath.Join(dev, n), nil, 0o644)
	}
	got, err := local.DetectGPUs(context.Background(), filepath.Join(dev, "no-nvidia-smi"), dev)
	if err != nil || len(got) != 2 || got[0] != 0 || got[1] != 2 {
		t.Errorf("DetectGPUs = %v, %v; want [0 2]", got, err)
	}
}

// A run's exit status says how it went: 0 with a final_model and every
// stage done, 4 when the agent left no final_model, 3 when a stage failed.
func TestRunExitCodes(t *testing.T) {
	dir := t.TempDir()
	withModel := filepath.Join(dir, "model.yaml")
	os.WriteFile(withModel, []byte("steps:\n  - model: final_model\nfinal: done\n"), 0o644)
	noModel := filepath.Join(dir, "nomodel.yaml")
	os.WriteFile(noModel, []byte("steps:\n  - say: nothing to leave\nfinal: done\n"), 0o644)
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte("{not json\n"), 0o644)
	for _, c := range []struct {
		name   string
		script string
		eval   []string
		want   int
		stderr string
	}{
		{"ok", withModel, []string{"--eval-backend", "none"}, 0, ""},
		{"no final_model", noModel, []string{"--eval-backend", "none"}, exitNoFinalModel, "left no final_model"},
		{"evaluate failed", withModel, []string{"--eval-backend", "replay", "--eval-responses", bad}, exitStageFailed, "stage evaluate failed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"run", "--agent", "scripted", "--script", c.script, "--sandbox", "none",
				"--base-model", "qwen3-1.7b", "--benchmark", "gsm8k", "--hours", "0.01", "--out", filepath.Join(t.TempDir(), "runs")}, c.eval...)
			code, stdout, stderr := runPTB(t, args...)
			if code != c.want || !strings.Contains(stderr, c.stderr) {
				t.Errorf("exit %d, want %d with %q\nstdout:\n%s\nstderr:\n%s", code, c.want, c.stderr, stdout, stderr)
			}
		})
	}
}

// When the agent CLI fails, the summary quotes the CLI's own error line.
func TestRunShowsAgentError(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	fakeTool(t, bin, "claude", `echo "loading config" >&2; echo "Invalid API key · Please run /login" >&2; exit 1`)
	t.Setenv("PATH", bin+":/usr/bin:/bin")
	code, stdout, stderr := runPTB(t, "run", "--agent", "claude", "--agent-model", "claude-opus-4-6", "--endpoint", "http://127.0.0.1:9",
		"--sandbox", "none", "--base-model", "qwen3-1.7b", "--benchmark", "gsm8k", "--hours", "0.01", "--eval-backend", "none",
		"--out", filepath.Join(dir, "runs"))
	if code != exitNoFinalModel {
		t.Errorf("exit %d, want %d\n%s", code, exitNoFinalModel, stderr)
	}
	if !strings.Contains(stdout, "agent said Invalid API key · Please run /login") {
		t.Errorf("summary does not quote the CLI:\n%s", stdout)
	}
}

// eval and audit validate their flags the way run does.
func TestEvalAuditValidation(t *testing.T) {
	ws := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"eval", "--task", "gsm8k", "--responses", "x.jsonl", "--limit", "-5"}, "--limit -5: want 0"},
		{[]string{"eval", "--task", "gsm8k", "--responses", "x.jsonl", "--data-dir", "/nonexistent"}, "--data-dir /nonexistent: not a directory"},
		{[]string{"audit", ws, "--task", "gsm8kk", "--base-model", "qwen3-1.7b"}, `unknown benchmark "gsm8kk"`},
		{[]string{"audit", ws, "--task", "gsm8k", "--base-model", "qwen3-17b"}, `unknown base model "qwen3-17b"`},
		{[]string{"demo", "--data-dir", "/nonexistent"}, "--data-dir /nonexistent: not a directory"},
	} {
		code, _, stderr := runPTB(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("ptb %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(c.args, " "), code, stderr, c.want)
		}
	}
	// The short name run accepts resolves to the hub id the checks compare.
	code, stdout, stderr := runPTB(t, "audit", ws, "--task", "gsm8k", "--base-model", "qwen3-1.7b", "--json")
	var rep struct {
		Base string `json:"base_model"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || rep.Base != "Qwen/Qwen3-1.7B-Base" {
		t.Errorf("audit --base-model qwen3-1.7b: exit %d, base %q (%v)\n%s", code, rep.Base, err, stderr)
	}
}

// `ptb audit RUN_DIR` re-audits against the data the run used (its
// job.json data dir), as the in-run audit did: both flag a workspace that
// holds a test item of that data.
func TestReauditUsesRunDataDir(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	os.MkdirAll(filepath.Join(data, "gsm8k"), 0o755)
	var rows, steps strings.Builder
	for i, animal := range []string{"gulls", "otters", "herons", "seals"} {
		item := fmt.Sprintf("A lighthouse keeper counts ninety-seven %s on Monday and thrice as many barnacles on Tuesday; how many creatures did keeper number %d count across both days in total?", animal, i)
		fmt.Fprintf(&rows, `{"question": %q, "answer": "388\n#### 388"}`+"\n", item)
		fmt.Fprintf(&steps, "  - run: \"echo '%s' >> train.txt\"\n", item)
	}
	os.WriteFile(filepath.Join(data, "gsm8k", "test.jsonl"), []byte(rows.String()), 0o644)
	script := filepath.Join(dir, "s.yaml")
	os.WriteFile(script, []byte("steps:\n"+steps.String()+"  - model: final_model\nfinal: done\n"), 0o644)
	out := filepath.Join(dir, "runs")
	code, _, stderr := runPTB(t, "run", "--agent", "scripted", "--script", script, "--sandbox", "none", "--data-dir", data,
		"--base-model", "qwen3-1.7b", "--benchmark", "gsm8k", "--hours", "0.01", "--eval-backend", "none", "--out", out, "--json")
	if code != 0 {
		t.Fatalf("run exit %d: %s", code, stderr)
	}
	runs, _ := filepath.Glob(filepath.Join(out, "*"))
	if len(runs) != 1 {
		t.Fatalf("runs %v", runs)
	}
	r, err := result.Read(filepath.Join(runs[0], "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(r.Flags, ""), "C") {
		t.Fatalf("the in-run audit did not flag contamination: flags %v", r.Flags)
	}
	code, stdout, _ := runPTB(t, "audit", runs[0], "--json")
	var rep struct {
		Flags []string `json:"letters"`
	}
	json.Unmarshal([]byte(stdout), &rep)
	if code == 0 || !strings.Contains(strings.Join(rep.Flags, ""), "C") {
		t.Errorf("re-audit: exit %d, flags %v; want the contamination flag the in-run audit raised\n%s", code, rep.Flags, stdout)
	}
}
