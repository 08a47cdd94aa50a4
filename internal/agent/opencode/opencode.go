// Package opencode launches OpenCode headless (the PostTrainBench
// invocation, see shared/fixtures/AGENT_CLIS.md).
package opencode

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/agent/cliutil"
)

// Files: the project config in the workspace, the auth store under HOME.
const (
	ConfigFile = "opencode.json"
	AuthFile   = ".local/share/opencode/auth.json"
	// ProviderName is the provider pointing at the injected endpoint.
	ProviderName = "ptb"
	// KeyEnv is the variable holding the placeholder credential.
	KeyEnv = "PTB_MODEL_API_KEY"
)

// Options configures the scaffold.
type Options struct {
	Bin string // the opencode executable (default "opencode")
	// Auth, when set, is an auth.json (provider credentials) written into
	// HOME as a secret; used when the launch has no injected endpoint.
	Auth []byte
	// Cost is the price per million tokens written into the injected
	// provider's model entry so OpenCode reports costs (nil: none).
	Cost *Cost
	// Native says the injected endpoint serves the model's own provider's
	// API (the run gateway's LLM route for anthropic, openai or google):
	// that built-in provider is pointed at it, instead of the
	// OpenAI-compatible provider "ptb".
	Native bool
}

// nativeAPI is the path each built-in provider's SDK appends its API to.
var nativeAPI = map[string]string{"anthropic": "/v1", "openai": "/v1", "google": "/v1beta"}

// NativeConfig returns opencode.json pointing the built-in provider at
// endpoint (the gateway's route for it), with the placeholder key, and
// declaring model there.
func NativeConfig(endpoint, provider, model string) ([]byte, error) {
	api, ok := nativeAPI[provider]
	if !ok {
		return nil, fmt.Errorf("opencode: provider %q has no native endpoint (want anthropic, openai or google)", provider)
	}
	c := map[string]any{
		"$schema":    "https://opencode.ai/config.json",
		"permission": "allow",
		"provider": map[string]any{provider: map[string]any{
			"options": map[string]any{
				"baseURL": cliutil.BaseURL(endpoint) + api,
				"apiKey":  "{env:" + KeyEnv + "}",
			},
			"models": map[string]any{model: map[string]any{"name": model}},
		}},
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode opencode config: %w", err)
	}
	return append(b, '\n'), nil
}

// Cost is OpenCode's per-model price, USD per million tokens.
type Cost struct {
	Input  float64 `json:"input"`
	Output float64 `json:"output"`
}

// Scaffold launches OpenCode.
type Scaffold struct{ o Options }

var _ agent.Scaffold = (*Scaffold)(nil)

// New returns the OpenCode scaffold.
func New(o Options) *Scaffold {
	if o.Bin == "" {
		o.Bin = "opencode"
	}
	return &Scaffold{o: o}
}

// Name implements agent.Scaffold.
func (s *Scaffold) Name() string { return Info.Name }

// Version implements agent.Scaffold.
func (s *Scaffold) Version(ctx context.Context) string { return cliutil.Version(ctx, s.o.Bin) }

// Config returns opencode.json: every permission allowed and, when endpoint
// is set, a provider "ptb" (@ai-sdk/openai-compatible, Chat Completions)
// serving model there.
func Config(endpoint, model string, cost *Cost) ([]byte, error) {
	c := map[string]any{
		"$schema":    "https://opencode.ai/config.json",
		"permission": "allow",
	}
	if endpoint != "" {
		m := map[string]any{"name": model, "limit": map[string]any{"context": 200000, "output": 32000}}
		if cost != nil {
			m["cost"] = cost
		}
		c["provider"] = map[string]any{ProviderName: map[string]any{
			"npm":  "@ai-sdk/openai-compatible",
			"name": "ptb endpoint",
			"options": map[string]any{
				"baseURL": cliutil.BaseURL(endpoint) + "/v1",
				"apiKey":  "{env:" + KeyEnv + "}",
			},
			"models": map[string]any{model: m},
		}}
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode opencode config: %w", err)
	}
	return append(b, '\n'), nil
}

// Command implements agent.Scaffold:
// opencode run --model PROVIDER/MODEL --format json [--continue] PROMPT.
// The model string is "provider/model"; with an injected endpoint the
// provider becomes "ptb" and the model part is served there.
func (s *Scaffold) Command(ctx context.Context, l agent.Launch) (agent.Command, error) {
	provider, model, ok := strings.Cut(l.Model, "/")
	if !ok || provider == "" || model == "" {
		return agent.Command{}, fmt.Errorf("opencode: agent model %q: want provider/model (e.g. anthropic/claude-sonnet-4-5)", l.Model)
	}
	_, native := nativeAPI[provider]
	native = native && s.o.Native && l.Endpoint != ""
	if l.Endpoint != "" && !native {
		provider = ProviderName
	}
	argv := []string{s.o.Bin, "run", "--model", provider + "/" + model, "--format", "json"}
	prompt := l.Prompt
	if l.Continue {
		argv = append(argv, "--continue")
		prompt = l.Note
	}
	argv = append(argv, prompt)
	cfg, err := Config(l.Endpoint, model, s.o.Cost)
	if native {
		cfg, err = NativeConfig(l.Endpoint, provider, model)
	}
	if err != nil {
		return agent.Command{}, err
	}
	h := l.Home
	cmd := agent.Command{
		Argv: argv,
		Env: []string{"HOME=" + h, "TERM=dumb",
			"XDG_CONFIG_HOME=" + h + "/.config", "XDG_DATA_HOME=" + h + "/.local/share",
			"XDG_CACHE_HOME=" + h + "/.cache", "XDG_STATE_HOME=" + h + "/.local/state",
			"OPENCODE_DISABLE_AUTOUPDATE=1", "OPENCODE_DISABLE_MODELS_FETCH=1",
			"OPENCODE_DISABLE_LSP_DOWNLOAD=1", "OPENCODE_DISABLE_SHARE=1"},
		WorkspaceFiles: map[string][]byte{ConfigFile: cfg},
	}
	switch {
	case l.Endpoint != "":
		cmd.Env = append(cmd.Env, KeyEnv+"="+cliutil.Placeholder)
	case s.o.Auth != nil:
		cmd.HomeFiles = map[string][]byte{AuthFile: s.o.Auth}
		cmd.Secrets = []string{AuthFile}
	}
	return cmd, nil
}
