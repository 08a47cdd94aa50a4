package modelinfo

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The original evaluated $EVAL_DIR/final_model: the architecture decides
// the template, not the names of the directories above it.
func TestModelTypeIgnoresParentDirectories(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gsm8k_smollm3-3b_claude_s0", "collect", "final_model")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"architectures":["Qwen2ForCausalLM"]}`), 0o644)
	if got := ModelType(dir); got != "qwen" {
		t.Errorf("ModelType = %q, want qwen (from architectures[0])", got)
	}
	named := filepath.Join(t.TempDir(), "Qwen3-1.7B")
	os.MkdirAll(named, 0o755)
	if got := ModelType(named); got != "qwen" {
		t.Errorf("ModelType(%s) = %q, want qwen (from the directory's name)", named, got)
	}
}

func TestArchitectureFamily(t *testing.T) {
	cases := []struct {
		archs []string
		want  string
	}{
		{nil, ""},
		{[]string{"Qwen3ForCausalLM"}, "qwen"},
		{[]string{"LlamaForCausalLM"}, "llama"},
		{[]string{"Gemma3ForConditionalGeneration"}, "gemma"},
		{[]string{"SmolLM3ForCausalLM"}, "smollm"},
		{[]string{"MistralForCausalLM", "LlamaForCausalLM"}, ""}, // only architectures[0]
		{[]string{"GemmaLlamaHybrid"}, "gemma"},                  // gemma is checked first
	}
	for _, c := range cases {
		if got := ArchitectureFamily(c.archs); got != c.want {
			t.Errorf("ArchitectureFamily(%v) = %q, want %q", c.archs, got, c.want)
		}
	}
}

// FuzzConfigArchitectures feeds arbitrary config.json files to the reader
// the evaluation picks its chat template with: no panic, and malformed
// JSON is refused with the file's line, column and byte.
// Seeds: testdata/fuzz/FuzzConfigArchitectures.
func FuzzConfigArchitectures(f *testing.F) {
	f.Add([]byte(`{"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ConfigArchitectures(dir)
		var m map[string]json.RawMessage
		if json.Unmarshal(data, &m) != nil {
			if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "config.json")) || !(strings.Contains(err.Error(), "line ") || strings.Contains(err.Error(), "empty")) {
				t.Fatalf("malformed config.json: got %v", err)
			}
		}
		ModelType(dir) // never panics
	})
}
