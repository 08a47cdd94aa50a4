package registry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefault(t *testing.T) {
	r := Default()
	if len(r.Models) != 4 || len(r.Benchmarks) != 7 {
		t.Fatalf("built-in registry has %d models and %d benchmarks, want 4 and 7", len(r.Models), len(r.Benchmarks))
	}
	for _, c := range []struct{ name, id, instruct, template string }{
		{"qwen3-1.7b", "Qwen/Qwen3-1.7B-Base", "Qwen/Qwen3-1.7B", "qwen3"},
		{"Qwen/Qwen3-4B-Base", "Qwen/Qwen3-4B-Base", "Qwen/Qwen3-4B", "qwen3"},
		{"smollm3-3b", "HuggingFaceTB/SmolLM3-3B-Base", "HuggingFaceTB/SmolLM3-3B", "smollm"},
		{"GOOGLE/GEMMA-3-4B-PT", "google/gemma-3-4b-pt", "google/gemma-3-4b-it", "gemma3"},
	} {
		m, err := r.Model(c.name)
		if err != nil {
			t.Errorf("Model(%q): %v", c.name, err)
			continue
		}
		if m.ID != c.id || m.Instruct != c.instruct || m.Template != c.template {
			t.Errorf("Model(%q) = %+v", c.name, m)
		}
	}
	b, err := r.Benchmark("gsm8k")
	if err != nil || b.Display != "GSM8K (Grade School Math 8K)" || !b.Inspect {
		t.Errorf("gsm8k = %+v, %v", b, err)
	}
	if b, _ := r.Benchmark("healthbench"); b.Inspect {
		t.Errorf("healthbench was not evaluated with inspect in the original")
	}
	if _, err := r.Benchmark("mmlu"); err == nil || !strings.Contains(err.Error(), "known: aime2025") {
		t.Errorf("unknown benchmark error = %v, want the list of known ones", err)
	}
}

func TestLoadOverride(t *testing.T) {
	p := filepath.Join(t.TempDir(), "reg.yaml")
	os.WriteFile(p, []byte(`models:
  - id: Qwen/Qwen3-1.7B-Base
    short: q17
    instruct: Qwen/Qwen3-1.7B
    template: custom
  - id: meta-llama/Llama-3.2-1B
    instruct: meta-llama/Llama-3.2-1B-Instruct
    template: llama3
`), 0o644)
	r, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := r.Model("q17"); m.Template != "custom" {
		t.Errorf("override not applied: %+v", m)
	}
	if _, err := r.Model("meta-llama/Llama-3.2-1B"); err != nil {
		t.Errorf("added model missing: %v", err)
	}
	if len(r.Models) != 5 {
		t.Errorf("%d models, want 5", len(r.Models))
	}
}

func TestLoadRejectsBadFiles(t *testing.T) {
	for name, body := range map[string]string{
		"unknown field":    "models:\n  - id: x\n    templte: y\n",
		"missing template": "models:\n  - id: x\n",
		"missing display":  "benchmarks:\n  - name: x\n",
	} {
		p := filepath.Join(t.TempDir(), "reg.yaml")
		os.WriteFile(p, []byte(body), 0o644)
		_, err := Load(p)
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %q does not name the file", name, err)
		}
	}
}

func TestHubDenyList(t *testing.T) {
	p := filepath.Join(t.TempDir(), "reg.yaml")
	os.WriteFile(p, []byte(`hub_deny:
  - repo: openai/gsm8k
    type: dataset
    path_contains: test
    reason: changed reason
  - repo: someone/leak
    type: dataset
    reason: a copy of a test set
`), 0o644)
	r, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]HubDeny{}
	for _, d := range r.HubDenyList() {
		got[d.Type+":"+d.Repo] = d
	}
	for _, want := range []HubDeny{
		{Repo: "Qwen/Qwen3-1.7B", Type: "model", Reason: "instruct counterpart of Qwen/Qwen3-1.7B-Base"},
		{Repo: "google/gemma-3-4b-it", Type: "model", Reason: "instruct counterpart of google/gemma-3-4b-pt"},
		{Repo: "openai/gsm8k", Type: "dataset", PathContains: "test", Reason: "changed reason"},
		{Repo: "openai/openai_humaneval", Type: "dataset", Benchmark: "humaneval", Reason: "HumanEval test set"},
		{Repo: "math-ai/aime25", Type: "dataset", Benchmark: "aime2025", Reason: "AIME 2025 test set"},
		{Repo: "someone/leak", Type: "dataset", Reason: "a copy of a test set"},
	} {
		if g := got[want.Type+":"+want.Repo]; g != want {
			t.Errorf("%s: got %+v, want %+v", want.Repo, g, want)
		}
	}
	if n := len(r.HubDenyList()); n != 4+6+1 {
		t.Errorf("%d entries, want 11 (4 instruct, 6 built-in test sets, 1 added)", n)
	}
	os.WriteFile(p, []byte("hub_deny:\n  - repo: x/y\n    type: models\n    reason: r\n"), 0o644)
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "hub_deny[0]") {
		t.Errorf("bad type accepted: %v", err)
	}
}
