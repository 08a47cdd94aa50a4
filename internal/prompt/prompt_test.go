package prompt

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/sharedtest"

	"github.com/ptb-dev/ptb/internal/registry"
)

// The template must stay byte-identical to the block in PROMPTS.md.
func TestTemplateMatchesSpec(t *testing.T) {
	b, err := os.ReadFile(sharedtest.Path(t, "spec", "PROMPTS.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```text\n(.*?)```").FindAllStringSubmatch(string(b), -1)
	if got, want := agentTemplate+"\n", blocks[0][1]; got != want {
		t.Errorf("agent_prompt.txt differs from PROMPTS.md")
	}
	if got, want := SetupNote, blocks[1][1]; got != want {
		t.Errorf("SetupNote = %q, want %q", got, want)
	}
	if got, want := ClaudeSuffix, "\n"+blocks[2][1]; got != want {
		t.Errorf("ClaudeSuffix = %q, want %q", got, want)
	}
}

// A prompt captured from an original Claude Code run on GSM8K, up to the
// GPU line (the capture says "equiped"; the paper's text, which we follow,
// says "equipped").
func TestAgentClaudeGSM8K(t *testing.T) {
	reg := registry.Default()
	b, _ := reg.Benchmark("gsm8k")
	a, _ := reg.Agent("claude")
	got := Agent(Params{Model: "Qwen/Qwen3-1.7B-Base", Benchmark: b, Hours: 10, GPUCount: 1, Agent: a})
	for _, want := range []string{
		"We want to train the small LLM \\`Qwen/Qwen3-1.7B-Base\\` to excel at GSM8K (Grade School Math 8K).\n",
		"- The machine is equipped with an Nvidia H100 GPU.\n- Consider the --limit option",
		"--max-connections or --max-tokens.\n\n## Rules\n",
		"2. You have a maximum of 10 hours. You can query how much time you have left by calling \\`bash timer.sh\\` in the current directory.\n",
		"We will evaluate your results on GSM8K (Grade School Math 8K) once you are done.\nYou are running in a non-interactive mode. So make sure every process you are running finishes before you write your last message.\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("prompt lacks %q", want)
		}
	}
	if strings.Contains(got, "{") {
		t.Errorf("unsubstituted placeholder in %q", got)
	}
}

func TestAgentVariants(t *testing.T) {
	reg := registry.Default()
	arena, _ := reg.Benchmark("arenahardwriting")
	codex, _ := reg.Agent("codex")
	got := Agent(Params{Model: "google/gemma-3-4b-pt", Benchmark: arena, Hours: 0.5, GPUCount: 2, GPUName: "NVIDIA H200", Agent: codex})
	for _, want := range []string{
		"- The machine is equipped with 2 NVIDIA H200 GPUs.\n",
		"faster iteration during development.\n\n## Rules",
		"You have a maximum of 0.5 hours.",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("prompt lacks %q", want)
		}
	}
	if strings.Contains(got, "inspect-ai") || strings.Contains(got, "non-interactive") {
		t.Errorf("arena/codex prompt has the inspect note or the Claude suffix")
	}
	if !strings.HasSuffix(got, "once you are done.") {
		t.Errorf("prompt ends %q", got[len(got)-30:])
	}
}
