package job

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/sandbox"
)

func TestNormalize(t *testing.T) {
	reg := registry.Default()
	s := Spec{Agent: "scripted", Script: "s.yaml", BaseModel: "qwen3-4b", Benchmark: "gsm8k"}
	if err := s.Normalize(reg); err != nil {
		t.Fatal(err)
	}
	if s.BaseModel != "Qwen/Qwen3-4B-Base" || s.Hours != DefaultHours || s.Grace != DefaultGrace ||
		s.Sandbox != "bwrap" || s.Network != "none" || s.Eval.Backend != "vllm" || !filepath.IsAbs(s.OutRoot) || filepath.Base(s.OutRoot) != "runs" || !filepath.IsAbs(s.Script) {
		t.Errorf("defaults not applied: %+v", s)
	}
	if got := s.Budget(); got != 10*time.Hour {
		t.Errorf("budget %v", got)
	}
	s.Hours = 0.5 / 3600
	if got := s.Budget(); got != 500*time.Millisecond {
		t.Errorf("fractional budget %v, want 500ms", got)
	}
}

func TestNormalizeErrors(t *testing.T) {
	reg := registry.Default()
	base := Spec{Agent: "scripted", Script: "s.yaml", BaseModel: "qwen3-4b", Benchmark: "gsm8k"}
	for _, c := range []struct {
		name string
		mod  func(*Spec)
		want string
	}{
		{"no agent", func(s *Spec) { s.Agent = "" }, "agent is required"},
		{"unknown agent", func(s *Spec) { s.Agent = "aider" }, `unknown agent "aider"`},
		{"unknown model", func(s *Spec) { s.BaseModel = "llama" }, "Qwen/Qwen3-1.7B-Base, Qwen/Qwen3-4B-Base"},
		{"unknown benchmark", func(s *Spec) { s.Benchmark = "mmlu" }, `unknown benchmark "mmlu"`},
		{"negative hours", func(s *Spec) { s.Hours = -1 }, "hours must be"},
		{"bad network", func(s *Spec) { s.Network = "bridge" }, `network "bridge": want none, gateway or host`},
		{"bad eval backend", func(s *Spec) { s.Eval.Backend = "tgi" }, "eval backend must be"},
		{"replay without file", func(s *Spec) { s.Eval.Backend = "replay" }, "needs a responses file"},
		{"scripted without script", func(s *Spec) { s.Script = "" }, "needs a script"},
		{"real agent without a model", func(s *Spec) { s.Agent = "claude" }, "--agent-model"},
		{"real agent without network", func(s *Spec) { s.Agent = "claude"; s.AgentModel = "m"; s.Network = "none" }, "--network gateway"},
		{"real key passed in", func(s *Spec) { s.PassEnv = []string{"ANTHROPIC_API_KEY"} }, "--env ANTHROPIC_API_KEY: a credential must not enter the sandbox"},
		{"token passed with a value", func(s *Spec) { s.Network = "gateway"; s.PassEnv = []string{"HF_TOKEN=hf_x"} }, "--env HF_TOKEN"},
		{"negative spend cap", func(s *Spec) { s.Gateway.SpendCapUSD = -1 }, "spend cap"},
		{"missing read-only path", func(s *Spec) { s.ReadOnly = []string{"/nonexistent/ptb"} }, "read-only path /nonexistent/ptb"},
	} {
		s := base
		c.mod(&s)
		err := s.Normalize(reg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to mention %q", c.name, err, c.want)
		}
	}
}

func TestNormalizeNetwork(t *testing.T) {
	reg := registry.Default()
	for _, c := range []struct {
		agent, model, asked string
		env                 []string
		want                string
	}{
		{"claude", "m", "", nil, "gateway"},
		{"codex", "m", "", nil, "gateway"},
		{"scripted", "", "", nil, "none"},
		{"scripted", "", "gateway", nil, "gateway"},
		{"claude", "m", "host", []string{"ANTHROPIC_API_KEY"}, "host"}, // debugging only, recorded
		{"claude", "m", "gateway", []string{"WANDB_MODE=offline"}, "gateway"},
	} {
		s := Spec{Agent: c.agent, AgentModel: c.model, Script: "s.yaml", BaseModel: "qwen3-4b", Benchmark: "gsm8k", Network: sandbox.Network(c.asked), PassEnv: c.env}
		if err := s.Normalize(reg); err != nil {
			t.Errorf("%+v: %v", c, err)
			continue
		}
		if string(s.Network) != c.want {
			t.Errorf("agent %s asked %q: network %q, want %q", c.agent, c.asked, s.Network, c.want)
		}
	}
}

func TestSecretEnv(t *testing.T) {
	for name, want := range map[string]bool{
		"ANTHROPIC_API_KEY": true, "openai_api_key": true, "GEMINI_API_KEY": true, "HF_TOKEN": true,
		"GITHUB_TOKEN": true, "AWS_SECRET": true, "PATH": false, "WANDB_MODE": false, "TOKENIZERS_PARALLELISM": false,
	} {
		if got := SecretEnv(name); got != want {
			t.Errorf("SecretEnv(%s) = %v, want %v", name, got, want)
		}
	}
}

func TestRunID(t *testing.T) {
	reg := registry.Default()
	at := time.Date(2026, 11, 27, 8, 1, 2, 0, time.FixedZone("CET", 3600))
	s := Spec{Agent: "claude", AgentModel: "Claude Opus/4.6", BaseModel: "Qwen/Qwen3-1.7B-Base", Benchmark: "gsm8k", Seed: 2}
	if got, want := RunID(s, reg, at), "gsm8k_qwen3-1.7b_claude-claude-opus-4.6_s2_20261127T070102Z"; got != want {
		t.Errorf("RunID = %q, want %q", got, want)
	}
	s.AgentModel = ""
	if got := RunID(s, reg, at); got != "gsm8k_qwen3-1.7b_claude_s2_20261127T070102Z" {
		t.Errorf("RunID without agent model = %q", got)
	}
}

func TestHashIgnoresRunTimeFields(t *testing.T) {
	a := Spec{Agent: "scripted", BaseModel: "Qwen/Qwen3-1.7B-Base", Benchmark: "gsm8k", Hours: 1, GPUs: []int{0}, OutRoot: "/a"}
	b := a
	b.GPUs, b.OutRoot = []int{3}, "/b"
	if a.Hash() != b.Hash() {
		t.Error("Hash changed with the GPUs or the output root")
	}
	b.Hours = 2
	if a.Hash() == b.Hash() {
		t.Error("Hash did not change with the hours")
	}
}
