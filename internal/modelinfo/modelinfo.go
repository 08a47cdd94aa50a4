// Package modelinfo reads what a model directory says about its family:
// config.json's architectures and the chat-template family the original
// harness chose from them. Evaluation picks its chat template with it; the
// audit compares a final model's family with its base model's. It reads
// agent-made files only through safeio, under a size bound.
package modelinfo

import (
	"encoding/json"
	"path/filepath"
	"strings"

	"github.com/ptb-dev/ptb/internal/jsonpos"
	"github.com/ptb-dev/ptb/internal/safeio"
)

// ModelType is the original's chat-template choice (EVAL_SPEC 1.1): the
// model directory's name if it names a family, else config.json's
// architectures[0]. Only the directory's own name is looked at: the
// original evaluated $EVAL_DIR/final_model, so in practice the
// architecture decided, and ptb's run directories (whose names carry the
// base model's) must not decide in its place.
func ModelType(modelPath string) string {
	p := strings.ToLower(filepath.Base(filepath.Clean(modelPath)))
	for _, t := range []string{"qwen", "llama", "gemma", "smollm"} {
		if strings.Contains(p, t) {
			return t
		}
	}
	archs, err := ConfigArchitectures(modelPath)
	if err != nil {
		return ""
	}
	return ArchitectureFamily(archs)
}

// maxConfigJSON bounds config.json (real ones are a few KiB).
const maxConfigJSON = 16 << 20

// ConfigArchitectures reads config.json's architectures in modelPath. The
// file is opened with safeio (no link followed, no FIFO waited on, at most
// 16 MiB); a malformed one is an error with the file, line, column and
// byte offset.
func ConfigArchitectures(modelPath string) ([]string, error) {
	p := filepath.Join(modelPath, "config.json")
	b, err := safeio.ReadFile(p, maxConfigJSON)
	if err != nil {
		return nil, err
	}
	var c struct {
		Architectures []string `json:"architectures"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, jsonpos.Error(p, b, 0, err)
	}
	return c.Architectures, nil
}

// ArchitectureFamily is the template family config.json's architectures[0]
// selects (gemma, llama, qwen or smollm, checked in that order), or "".
func ArchitectureFamily(architectures []string) string {
	if len(architectures) == 0 {
		return ""
	}
	a := strings.ToLower(architectures[0])
	for _, t := range []string{"gemma", "llama", "qwen", "smollm"} {
		if strings.Contains(a, t) {
			return t
		}
	}
	return ""
}
