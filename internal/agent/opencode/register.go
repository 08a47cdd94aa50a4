package opencode

import (
	"fmt"
	"strings"

	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/agentinfo"
)

// Info is what ptb knows about OpenCode (registered in init). Its key and
// provider follow the provider prefix of the model (provider/model).
var Info = agentinfo.Info{
	Name:         "opencode",
	Display:      "OpenCode",
	NPM:          "opencode-ai@1.18.33", // shared/fixtures/AGENT_CLIS.md
	ExampleModel: "anthropic/claude-opus-4-6",
	CheckModel:   "ptb/scripted-model",
	KeyEnv:       keyEnv,
	LoginFile:    "~/.local/share/opencode/auth.json",
	Provider:     provider,
}

func init() {
	agent.Register(agent.Adapter{Info: Info, New: func(o agent.Options) agent.Scaffold {
		return New(Options{Bin: o.Bin, Auth: o.Credentials, Native: o.Gateway})
	}})
}

// keyVars are OpenCode's key variables by the provider prefix of its model.
var keyVars = map[string][]string{
	"anthropic":  {"ANTHROPIC_API_KEY"},
	"openai":     {"OPENAI_API_KEY"},
	"google":     {"GEMINI_API_KEY", "GOOGLE_GENERATIVE_AI_API_KEY"},
	"openrouter": {"OPENROUTER_API_KEY"},
}

func keyEnv(model string) []string {
	p, _, _ := strings.Cut(model, "/")
	if v := keyVars[p]; v != nil {
		return v
	}
	return []string{strings.ToUpper(p) + "_API_KEY"}
}

// provider: OpenCode's built-in provider is pointed at the gateway's route
// for it (Options.Native); "ptb/NAME" is the OpenAI-compatible provider,
// for a custom --endpoint.
func provider(model string) (string, error) {
	p, _, _ := strings.Cut(model, "/")
	switch p {
	case "openai", "ptb":
		return agentinfo.ProviderOpenAI, nil
	case "anthropic":
		return agentinfo.ProviderAnthropic, nil
	case "google":
		return agentinfo.ProviderGemini, nil
	}
	return "", fmt.Errorf("agent opencode: model %q: through the gateway OpenCode's provider must be anthropic, openai or google (or ptb for an OpenAI-compatible --endpoint)", model)
}
