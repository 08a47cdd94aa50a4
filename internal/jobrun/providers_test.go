package jobrun

import (
	"testing"

	"github.com/ptb-dev/ptb/internal/agentinfo"
	"github.com/ptb-dev/ptb/internal/gateway"
)

// The providers adapters name (agentinfo) are the gateway's LLM routes.
func TestAgentProvidersAreGatewayRoutes(t *testing.T) {
	for _, c := range []struct{ info, gw string }{
		{agentinfo.ProviderAnthropic, gateway.Anthropic},
		{agentinfo.ProviderOpenAI, gateway.OpenAI},
		{agentinfo.ProviderGemini, gateway.Gemini},
	} {
		if c.info != c.gw {
			t.Errorf("agentinfo provider %q, gateway route %q", c.info, c.gw)
		}
	}
	for _, c := range []struct{ agent, model, want string }{
		{"claude", "claude-opus-4-6", gateway.Anthropic},
		{"codex", "gpt-5.1-codex", gateway.OpenAI},
		{"gemini", "gemini-3-pro-preview", gateway.Gemini},
		{"opencode", "anthropic/claude-opus-4-6", gateway.Anthropic},
		{"opencode", "ptb/scripted-model", gateway.OpenAI},
		{"opencode", "google/gemini-2.5-pro", gateway.Gemini},
		{"scripted", "", ""},
	} {
		got, err := agentProvider(c.agent, c.model)
		if err != nil || got != c.want {
			t.Errorf("agentProvider(%s, %s) = %q, %v; want %q", c.agent, c.model, got, err, c.want)
		}
	}
	if _, err := agentProvider("opencode", "mistral/large"); err == nil {
		t.Error("agentProvider(opencode, mistral/large): no error")
	}
}
