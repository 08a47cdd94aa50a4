package cli

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/eval/pyexec"
	"github.com/ptb-dev/ptb/internal/sandbox/bwrap"
)

// TestEvalHumanEvalInterpreterAndSandbox: `ptb eval --task humaneval` runs
// the programs with --python (a venv under a home directory the sandbox
// hides: the completion passes only when sys.prefix is that venv) and
// records it with its version; --unsafe-no-sandbox runs them unsandboxed
// even where bubblewrap works, and says so.
func TestEvalHumanEvalInterpreterAndSandbox(t *testing.T) {
	if err := bwrap.New().Check(context.Background()); err != nil {
		t.Skipf("bubblewrap unavailable: %v", err)
	}
	host, err := pyexec.Resolve(context.Background(), "python3", pyexec.HostEnv())
	if err != nil {
		t.Skipf("no python3: %v", err)
	}
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	venv := filepath.Join(home, "u", "venv")
	if out, err := exec.Command(host.Path, "-m", "venv", "--without-pip", venv).CombinedOutput(); err != nil {
		t.Skipf("cannot make a venv: %v: %s", err, out)
	}
	t.Setenv("HOME", home)
	body := "    import sys\n    assert sys.prefix == " + pyQuote(venv) + ", sys.prefix\n" +
		"    for i in range(len(numbers)):\n        for j in range(i + 1, len(numbers)):\n" +
		"            if abs(numbers[i] - numbers[j]) < threshold:\n                return True\n    return False\n"
	line, _ := json.Marshal(map[string]string{"id": "HumanEval/0", "completion": body})
	responses := filepath.Join(dir, "responses.jsonl")
	if err := os.WriteFile(responses, append(line, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	py := filepath.Join(venv, "bin", "python")
	for _, c := range []struct {
		name        string
		args        []string
		wantCode    int
		wantSandbox string
		wantErr     string
	}{
		{"bwrap", nil, 0, "bwrap", ""},
		{"unsafe-no-sandbox", []string{"--unsafe-no-sandbox"}, 0, "none", ""},
		{"unsafe-no-sandbox with --sandbox bwrap", []string{"--unsafe-no-sandbox", "--sandbox", "bwrap"}, 2, "", "cannot be combined with --sandbox bwrap"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "eval")
			args := append([]string{"eval", "--task", "humaneval", "--responses", responses, "--python", py,
				"--data-dir", sharedDatasets(t), "--limit", "1", "--out", out, "--json"}, c.args...)
			code, stdout, stderr := runPTB(t, args...)
			if code != c.wantCode {
				t.Fatalf("exit %d, want %d\nstderr: %s", code, c.wantCode, stderr)
			}
			if c.wantErr != "" {
				if !strings.Contains(stderr, c.wantErr) {
					t.Errorf("stderr %q, want %q", stderr, c.wantErr)
				}
				return
			}
			var sum struct{ Accuracy float64 }
			var raw map[string]json.RawMessage
			if err := json.Unmarshal([]byte(stdout), &raw); err != nil {
				t.Fatal(err)
			}
			var progs map[string]any
			json.Unmarshal(raw["programs"], &progs)
			json.Unmarshal(raw["accuracy"], &sum.Accuracy)
			if sum.Accuracy != 1 {
				t.Errorf("accuracy %v, want 1 (the program ran with another interpreter?)\nstderr: %s", sum.Accuracy, stderr)
			}
			if progs["python"] != py || progs["python_version"] != host.Version || progs["sandbox"] != c.wantSandbox || progs["unsandboxed"] != (c.wantSandbox == "none") {
				t.Errorf("programs record %v", progs)
			}
			if c.wantSandbox == "none" && !strings.Contains(stderr, "warning: unsandboxed: humaneval programs") {
				t.Errorf("no unsandboxed warning; stderr: %s", stderr)
			}
			if !strings.HasPrefix(host.Version, "3.10") && !strings.Contains(stderr, "not the original's 3.10") {
				t.Errorf("no warning about Python %s; stderr: %s", host.Version, stderr)
			}
			b, _ := os.ReadFile(filepath.Join(out, "eval.json"))
			if !strings.Contains(string(b), `"python_version": "`+host.Version+`"`) {
				t.Errorf("eval.json does not record the interpreter: %s", b)
			}
		})
	}
}

func pyQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "\\'") + "'" }
