package registry

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWeightPins(t *testing.T) {
	p := filepath.Join(t.TempDir(), "reg.yaml")
	yaml := `version: 1
models:
  - id: Qwen/Qwen3-1.7B-Base
    short: qwen3-1.7b
    instruct: Qwen/Qwen3-1.7B
    template: qwen3
    weights_sha256:
      model.safetensors: "aa"
    instruct_weights_sha256:
      model.safetensors: "bb"
`
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		repo, want string
		ok         bool
	}{
		{"Qwen/Qwen3-1.7B-Base", "aa", true},
		{"qwen/qwen3-1.7b", "bb", true},
		{"Qwen/Qwen3-4B-Base", "", false},
	}
	for _, tt := range tests {
		got, ok := r.WeightPins(tt.repo)
		if ok != tt.ok || got["model.safetensors"] != tt.want {
			t.Errorf("WeightPins(%s) = %v, %v; want %q, %v", tt.repo, got, ok, tt.want, tt.ok)
		}
	}
}
