package codex

import (
	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/agentinfo"
)

// Info is what ptb knows about Codex CLI (registered in init).
var Info = agentinfo.Info{
	Name:         "codex",
	Display:      "Codex CLI",
	NPM:          "@openai/codex@0.171.0", // shared/fixtures/AGENT_CLIS.md
	ExampleModel: "gpt-5.1-codex:high",
	CheckModel:   "gpt-5.1-codex-max",
	KeyEnv:       func(string) []string { return []string{"OPENAI_API_KEY", "CODEX_API_KEY"} },
	LoginFile:    "~/.codex/auth.json",
	Provider:     func(string) (string, error) { return agentinfo.ProviderOpenAI, nil },
}

func init() {
	agent.Register(agent.Adapter{Info: Info, New: func(o agent.Options) agent.Scaffold {
		return New(Options{Bin: o.Bin, Auth: o.Credentials})
	}})
}
