package gemini

import (
	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/agentinfo"
)

// Info is what ptb knows about Gemini CLI (registered in init).
var Info = agentinfo.Info{
	Name:         "gemini",
	Display:      "Gemini CLI",
	NPM:          "@google/gemini-cli@0.61.0", // shared/fixtures/AGENT_CLIS.md
	ExampleModel: "gemini-3-pro-preview",
	CheckModel:   "gemini-2.5-pro",
	KeyEnv:       func(string) []string { return []string{"GEMINI_API_KEY", "GOOGLE_API_KEY"} },
	LoginFile:    "~/.gemini/oauth_creds.json",
	Provider:     func(string) (string, error) { return agentinfo.ProviderGemini, nil },
}

func init() {
	agent.Register(agent.Adapter{Info: Info, New: func(o agent.Options) agent.Scaffold {
		return New(Options{Bin: o.Bin, Credentials: o.Credentials})
	}})
}
