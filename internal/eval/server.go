package eval

import (
	"strconv"

	"github.com/ptb-dev/ptb/internal/eval/task"
	"github.com/ptb-dev/ptb/internal/modelinfo"
)

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
		if modelinfo.ModelType(o.ModelPath) == "llama" {
			parser = "llama3_json"
		}
		args = append(args, "--enable-auto-tool-choice", "--tool-call-parser", parser)
	}
	return append(args, "--port", strconv.Itoa(port))
}
