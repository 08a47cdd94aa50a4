// Package prompt renders the agent prompt of PostTrainBench exactly as the
// paper's harness did (shared/spec/PROMPTS.md). agent_prompt.txt is the
// template verbatim, quirks included: the backslash before each backtick
// reached the agents in the original runs and is kept.
package prompt

import (
	_ "embed"
	"fmt"
	"strconv"
	"strings"

	"github.com/ptb-dev/ptb/internal/registry"
)

//go:embed agent_prompt.txt
var agentTemplate string

// SetupNote is {setup_other} for the benchmarks the original evaluated with
// inspect-ai.
const SetupNote = "- A final note: the evaluate.py script sometimes outputs ERROR warnings. Do not be alarmed by this, this is normal behavior for inspect-ai. Also if you run into issues with the evaluate.py script, this is likely due to memory constraints on the GPU. In this case please decrease --max-connections or --max-tokens.\n"

// ClaudeSuffix is appended for Claude Code, which runs non-interactively.
const ClaudeSuffix = "\nYou are running in a non-interactive mode. So make sure every process you are running finishes before you write your last message.\n"

// Params are the values substituted into the template.
type Params struct {
	Model     string             // base model hub id
	Benchmark registry.Benchmark // its Display text is {benchmark}
	Hours     float64
	GPUCount  int    // 0 is treated as 1
	GPUName   string // e.g. "Nvidia H100"; "" means Nvidia H100 as in the paper
	Agent     registry.Agent
}

// GPUInfo renders {gpu_info}.
func GPUInfo(n int, name string) string {
	if name == "" {
		name = "Nvidia H100"
	}
	if n <= 1 {
		return fmt.Sprintf("- The machine is equipped with an %s GPU.", name)
	}
	return fmt.Sprintf("- The machine is equipped with %d %s GPUs.", n, name)
}

// FormatHours renders {num_hours}: 10 -> "10", 0.5 -> "0.5".
func FormatHours(h float64) string {
	return strconv.FormatFloat(h, 'f', -1, 64)
}

// Agent renders the agent prompt.
func Agent(p Params) string {
	setup := ""
	if p.Benchmark.Inspect {
		setup = SetupNote
	}
	r := strings.NewReplacer(
		"{model}", p.Model,
		"{benchmark}", p.Benchmark.Display,
		"{num_hours}", FormatHours(p.Hours),
		"{gpu_info}", GPUInfo(p.GPUCount, p.GPUName),
		"{setup_other}", setup,
	)
	out := r.Replace(agentTemplate)
	if p.Agent.PromptSuffix == "claude" {
		out += ClaudeSuffix
	}
	return out
}
