package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/result"
)

// Resuming a finished run changes nothing; --redo evaluate reruns the
// evaluation (and the record) with new settings, recorded beside the old.
func TestResumeFinishedAndRedo(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "s.yaml")
	os.WriteFile(script, []byte("steps:\n  - model: final_model\nfinal: done\n"), 0o644)
	resp := filepath.Join(dir, "r.jsonl")
	os.WriteFile(resp, []byte(`{"id": 0, "completion": "ANSWER: 18"}`+"\n"+`{"id": 1, "completion": "ANSWER: 4"}`+"\n"), 0o644)
	out := filepath.Join(dir, "runs")
	code, _, stderr := runPTB(t, "run", "--agent", "scripted", "--script", script, "--sandbox", "none",
		"--base-model", "qwen3-1.7b", "--benchmark", "gsm8k", "--hours", "0.01", "--eval-backend", "none", "--out", out)
	if code != 0 {
		t.Fatalf("run exit %d: %s", code, stderr)
	}
	runs, _ := filepath.Glob(filepath.Join(out, "*"))
	run := runs[0]
	before, _ := os.ReadFile(filepath.Join(run, "result.json"))
	manBefore, _ := os.ReadFile(filepath.Join(run, "manifest.json"))

	code, stdout, stderr := runPTB(t, "run", "--resume", run)
	after, _ := os.ReadFile(filepath.Join(run, "result.json"))
	manAfter, _ := os.ReadFile(filepath.Join(run, "manifest.json"))
	if code != 0 || !bytes.Equal(before, after) || !bytes.Equal(manBefore, manAfter) {
		t.Errorf("resuming a finished run: exit %d, result.json changed %v, manifest changed %v\n%s", code, !bytes.Equal(before, after), !bytes.Equal(manBefore, manAfter), stderr)
	}
	if !strings.Contains(stderr, "is finished; nothing to resume") || !strings.Contains(stdout, "record ") {
		t.Errorf("resume of a finished run says:\n%s\n%s", stderr, stdout)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--resume", run, "--eval-backend", "url"}, "add --redo STAGE"},
		{[]string{"run", "--resume", run, "--redo", "solve"}, `stage "solve" cannot be redone`},
		{[]string{"run", "--resume", run, "--redo", "evaluate", "--hours", "3"}, "--hours cannot be combined with --resume"},
		{[]string{"run", "--redo", "evaluate"}, "--redo needs --resume"},
		{[]string{"run", "--resume", run, "--redo", "evaluate", "--eval-backend", "url"}, "eval backend url needs a base URL"},
	} {
		if code, _, stderr := runPTB(t, c.args...); code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("ptb %s: exit %d, want 2 and %q\n%s", strings.Join(c.args, " "), code, c.want, stderr)
		}
	}
	if after, _ := os.ReadFile(filepath.Join(run, "result.json")); !bytes.Equal(before, after) {
		t.Fatal("a refused redo changed result.json")
	}

	code, stdout, stderr = runPTB(t, "run", "--resume", run, "--redo", "evaluate", "--eval-backend", "replay", "--eval-responses", resp, "--eval-limit", "2")
	if code != 0 {
		t.Fatalf("redo exit %d\n%s\n%s", code, stdout, stderr)
	}
	r, err := result.Read(filepath.Join(run, "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Evaluation == nil || r.Evaluation.Backend != "replay" || r.Score == nil || *r.Score != 0.5 || r.Spec.EvalBackend != "replay" {
		t.Fatalf("after the redo: evaluation %+v, score %v, spec %+v", r.Evaluation, r.Score, r.Spec)
	}
	if len(r.Redos) != 1 || strings.Join(r.Redos[0].Stages, ",") != "evaluate,record" {
		t.Fatalf("redos %+v", r.Redos)
	}
	got := map[string][2]any{}
	for _, ch := range r.Redos[0].Changes {
		got[ch.Field] = [2]any{ch.Old, ch.New}
	}
	if got["eval.backend"] != [2]any{"none", "replay"} || got["eval.limit"] != [2]any{nil, float64(2)} || got["eval.responses"][1] != resp {
		t.Errorf("changes %+v", r.Redos[0].Changes)
	}
	if r.Stages[result.StageSolve] != mustResult(t, before).Stages[result.StageSolve] {
		t.Errorf("the solve stage changed: %+v", r.Stages[result.StageSolve])
	}
	if r.Created != mustResult(t, before).Created {
		t.Errorf("created_at changed")
	}
}

func mustResult(t *testing.T, b []byte) *result.Result {
	t.Helper()
	p := filepath.Join(t.TempDir(), "r.json")
	os.WriteFile(p, b, 0o644)
	r, err := result.Read(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Recorded responses covering part of the benchmark warn and record the
// coverage; a responses file with an id twice is refused, naming the line.
func TestRunPartialResponses(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "s.yaml")
	os.WriteFile(script, []byte("steps:\n  - model: final_model\nfinal: done\n"), 0o644)
	var b strings.Builder
	for i := 0; i < 60; i++ {
		b.WriteString(`{"id": ` + strconv.Itoa(i) + `, "completion": "ANSWER: 0"}` + "\n")
	}
	partial := filepath.Join(dir, "partial.jsonl")
	os.WriteFile(partial, []byte(b.String()), 0o644)
	dup := filepath.Join(dir, "dup.jsonl")
	os.WriteFile(dup, []byte(`{"id": 0, "completion": "a"}`+"\n"+`{"id": 1, "completion": "b"}`+"\n"+`{"id": "0", "completion": "c"}`+"\n"), 0o644)
	args := func(resp string) []string {
		return []string{"run", "--agent", "scripted", "--script", script, "--sandbox", "none", "--base-model", "qwen3-1.7b",
			"--benchmark", "gsm8k", "--hours", "0.01", "--eval-backend", "replay", "--eval-responses", resp, "--out", filepath.Join(t.TempDir(), "runs"), "--json"}
	}
	code, stdout, stderr := runPTB(t, args(partial)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "1259 of 1319 samples had no recorded response") {
		t.Errorf("no coverage warning on stderr:\n%s", stderr)
	}
	p := filepath.Join(dir, "r.json")
	os.WriteFile(p, []byte(stdout), 0o644)
	r, err := result.Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if r.Evaluation == nil || r.Evaluation.Missing != 1259 || r.Evaluation.Coverage == nil || *r.Evaluation.Coverage < 0.0454 || *r.Evaluation.Coverage > 0.0456 {
		t.Errorf("evaluation %+v", r.Evaluation)
	}
	if !strings.Contains(strings.Join(r.Warnings, "\n"), "partial evaluation: 1259 of 1319") {
		t.Errorf("warnings %q", r.Warnings)
	}
	code, _, stderr = runPTB(t, args(dup)...)
	if code != exitStageFailed || !strings.Contains(stderr, dup+`:3: duplicate id "0" (first on line 1)`) {
		t.Errorf("duplicate ids: exit %d\n%s", code, stderr)
	}
}

// The evaluation's progress, written to a log rather than a terminal, is
// plain lines in one unit with no carriage-return frames.
func TestEvalProgressPlainWhenNotTTY(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for i := 0; i < 20; i++ {
		b.WriteString(`{"id": ` + strconv.Itoa(i) + `, "completion": "ANSWER: 1"}` + "\n")
	}
	resp := filepath.Join(dir, "r.jsonl")
	os.WriteFile(resp, []byte(b.String()), 0o644)
	code, _, stderr := runPTB(t, "eval", "--task", "gsm8k", "--responses", resp, "--limit", "20", "--out", filepath.Join(dir, "out"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(stderr, "\r") || !strings.Contains(stderr, "gsm8k: 20/20 samples (100%)") {
		t.Errorf("progress on a non-terminal:\n%q", stderr)
	}
}
