package claude

import (
	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/agentinfo"
)

// Info is what ptb knows about Claude Code (registered in init).
var Info = agentinfo.Info{
	Name:         "claude",
	Display:      "Claude Code",
	NPM:          "@anthropic-ai/claude-code@2.1.197", // shared/fixtures/AGENT_CLIS.md
	ExampleModel: "claude-opus-4-6",
	CheckModel:   "claude-sonnet-4-5",
	KeyEnv: func(string) []string {
		return []string{"ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"}
	},
	LoginFile: "~/.claude/.credentials.json",
	Provider:  func(string) (string, error) { return agentinfo.ProviderAnthropic, nil },
}

func init() {
	agent.Register(agent.Adapter{Info: Info, New: func(o agent.Options) agent.Scaffold {
		return New(Options{Bin: o.Bin, Credentials: o.Credentials})
	}})
}
