package opencode

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/agent"
)

func TestCommand(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		launch   agent.Launch
		wantArgv []string
		wantKey  bool
		provider bool
		secrets  []string
		wantErr  string
	}{
		{
			name:     "endpoint injection serves the model under provider ptb",
			opts:     Options{Cost: &Cost{Input: 1, Output: 2}},
			launch:   agent.Launch{Prompt: "P", Model: "anthropic/claude-sonnet-4-5", Home: "/h", Endpoint: "http://127.0.0.1:8704"},
			wantArgv: []string{"opencode", "run", "--model", "ptb/claude-sonnet-4-5", "--format", "json", "P"},
			wantKey:  true, provider: true,
		},
		{
			name:     "provider's own endpoint with auth.json; continue",
			opts:     Options{Auth: []byte(`{}`)},
			launch:   agent.Launch{Prompt: "P", Model: "openai/gpt-5", Home: "/h", Continue: true, Note: "N"},
			wantArgv: []string{"opencode", "run", "--model", "openai/gpt-5", "--format", "json", "--continue", "N"},
			secrets:  []string{AuthFile},
		},
		{name: "model without provider", launch: agent.Launch{Model: "gpt-5"}, wantErr: "provider/model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, err := New(tt.opts).Command(context.Background(), tt.launch)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cmd.Argv, tt.wantArgv) {
				t.Errorf("argv = %q\nwant   %q", cmd.Argv, tt.wantArgv)
			}
			env := strings.Join(cmd.Env, " ")
			for _, want := range []string{"HOME=/h", "XDG_CONFIG_HOME=/h/.config", "XDG_DATA_HOME=/h/.local/share",
				"OPENCODE_DISABLE_AUTOUPDATE=1", "OPENCODE_DISABLE_MODELS_FETCH=1", "OPENCODE_DISABLE_LSP_DOWNLOAD=1", "OPENCODE_DISABLE_SHARE=1"} {
				if !strings.Contains(env, want) {
					t.Errorf("env lacks %s", want)
				}
			}
			if got := strings.Contains(env, KeyEnv+"=ptb-placeholder-key"); got != tt.wantKey {
				t.Errorf("placeholder key in env = %v, want %v", got, tt.wantKey)
			}
			if !reflect.DeepEqual(cmd.Secrets, tt.secrets) {
				t.Errorf("secrets = %q, want %q", cmd.Secrets, tt.secrets)
			}
			var cfg map[string]any
			if err := json.Unmarshal(cmd.WorkspaceFiles[ConfigFile], &cfg); err != nil {
				t.Fatal(err)
			}
			if cfg["permission"] != "allow" {
				t.Errorf("opencode.json permission = %v", cfg["permission"])
			}
			p, _ := cfg["provider"].(map[string]any)
			if (p != nil) != tt.provider {
				t.Fatalf("provider block present = %v, want %v", p != nil, tt.provider)
			}
			if tt.provider {
				ptb := p[ProviderName].(map[string]any)
				opts := ptb["options"].(map[string]any)
				if ptb["npm"] != "@ai-sdk/openai-compatible" || opts["baseURL"] != "http://127.0.0.1:8704/v1" ||
					opts["apiKey"] != "{env:"+KeyEnv+"}" || ptb["models"].(map[string]any)["claude-sonnet-4-5"] == nil {
					t.Errorf("provider = %v", ptb)
				}
			}
		})
	}
}

// Behind the run's gateway, OpenCode's own provider is pointed at the
// gateway's route for it; "ptb/NAME" stays the OpenAI-compatible provider.
func TestCommandNative(t *testing.T) {
	s := New(Options{Native: true})
	for _, c := range []struct {
		model, endpoint, wantModel, provider, baseURL string
	}{
		{"anthropic/claude-opus-4-6", "http://127.0.0.1:18080/llm/anthropic", "anthropic/claude-opus-4-6", "anthropic", "http://127.0.0.1:18080/llm/anthropic/v1"},
		{"google/gemini-2.5-pro", "http://127.0.0.1:18080/llm/gemini", "google/gemini-2.5-pro", "google", "http://127.0.0.1:18080/llm/gemini/v1beta"},
		{"openai/gpt-5", "http://127.0.0.1:18080/llm/openai", "openai/gpt-5", "openai", "http://127.0.0.1:18080/llm/openai/v1"},
		{"ptb/scripted-model", "http://127.0.0.1:18080/llm/openai", "ptb/scripted-model", "ptb", "http://127.0.0.1:18080/llm/openai/v1"},
	} {
		cmd, err := s.Command(context.Background(), agent.Launch{Prompt: "p", Model: c.model, Workspace: "/w", Home: "/h", Endpoint: c.endpoint})
		if err != nil {
			t.Fatal(err)
		}
		if got := cmd.Argv[3]; got != c.wantModel {
			t.Errorf("%s: --model %s, want %s", c.model, got, c.wantModel)
		}
		var cfg struct {
			Provider map[string]struct {
				Options struct {
					BaseURL string `json:"baseURL"`
					APIKey  string `json:"apiKey"`
				} `json:"options"`
			} `json:"provider"`
		}
		if err := json.Unmarshal(cmd.WorkspaceFiles[ConfigFile], &cfg); err != nil {
			t.Fatal(err)
		}
		p, ok := cfg.Provider[c.provider]
		if !ok || p.Options.BaseURL != c.baseURL || p.Options.APIKey != "{env:"+KeyEnv+"}" {
			t.Errorf("%s: provider config %+v, want %s at %s with the placeholder key", c.model, cfg.Provider, c.provider, c.baseURL)
		}
		if !strings.Contains(strings.Join(cmd.Env, " "), KeyEnv+"=ptb-placeholder-key") || len(cmd.Secrets) != 0 {
			t.Errorf("%s: env %v secrets %v", c.model, cmd.Env, cmd.Secrets)
		}
	}
}
