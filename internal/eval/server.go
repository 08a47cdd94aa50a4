package eval

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ptb-dev/ptb/internal/eval/task"
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

// ChatTemplateFile is the template file name for a model type and task.
func ChatTemplateFile(modelType string, tools bool) string {
	switch modelType {
	case "qwen":
		return "qwen3.jinja"
	case "gemma":
		if tools {
			return "gemma3_tool_calling.jinja"
		}
		return "gemma3.jinja"
	case "smollm":
		return "smollm.jinja"
	case "llama":
		return "llama3.jinja"
	}
	return ""
}

// chatTemplate is the --chat-template file for the model and task: ptb's
// pinned copy, chosen and verified by Run (resolveTemplate) before any
// server starts; "" only when no server of ptb's is started.
func chatTemplate(o Options, info task.Info) string {
	return o.tmplPath
}

// VLLMArgs is the `vllm serve` command line of the original (spec 1.1) in
// inspect's order (host, api key, the task's model args, then the port), on
// 127.0.0.1 instead of 0.0.0.0. ArenaHard and HealthBench start vLLM
// themselves: port, --trust-remote-code, api key, template.
func VLLMArgs(o Options, info task.Info, port int, key string) []string {
	tmpl := chatTemplate(o, info)
	if info.Style == task.StyleScript {
		args := []string{"serve", o.ModelPath, "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--trust-remote-code", "--api-key", key}
		if tmpl != "" {
			args = append(args, "--chat-template", tmpl)
		}
		return args
	}
	args := []string{"serve", o.ModelPath, "--host", "127.0.0.1", "--api-key", key}
	if info.GPUMemory != "" {
		args = append(args, "--gpu-memory-utilization", info.GPUMemory)
	}
	if tmpl != "" {
		args = append(args, "--chat-template", tmpl)
	}
	if info.Tools {
		parser := "hermes"
		if ModelType(o.ModelPath) == "llama" {
			parser = "llama3_json"
		}
		args = append(args, "--enable-auto-tool-choice", "--tool-call-parser", parser)
	}
	return append(args, "--port", strconv.Itoa(port))
}
