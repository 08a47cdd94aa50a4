package codex

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/ptb-dev/ptb/internal/agent"
)

func TestCommand(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		launch   agent.Launch
		wantArgv []string
		wantEnv  []string
		secrets  []string
		wantErr  string
	}{
		{
			name:   "endpoint injection, effort from the model string",
			launch: agent.Launch{Prompt: "P", Model: "gpt-5.1-codex-max:xhigh", Home: "/h", Endpoint: "http://127.0.0.1:9/"},
			wantArgv: []string{"codex", "--search", "exec", "--json", "-c", "model_reasoning_summary=detailed",
				"-c", "model_reasoning_effort=xhigh", "--skip-git-repo-check", "--yolo", "--model", "gpt-5.1-codex-max", "P"},
			wantEnv: []string{"HOME=/h", "TERM=dumb", "CODEX_HOME=/h/.codex", "PTB_MODEL_API_KEY=ptb-placeholder-key"},
		},
		{
			name:   "continue resumes the last session with the note",
			opts:   Options{Effort: "low", Auth: []byte(`{"tokens":{}}`)},
			launch: agent.Launch{Prompt: "P", Model: "gpt-5.2", Home: "/h", Continue: true, Note: "go on"},
			wantArgv: []string{"codex", "--search", "exec", "--json", "-c", "model_reasoning_summary=detailed",
				"-c", "model_reasoning_effort=low", "--skip-git-repo-check", "--yolo", "--model", "gpt-5.2", "resume", "--last", "go on"},
			wantEnv: []string{"HOME=/h", "TERM=dumb", "CODEX_HOME=/h/.codex"},
			secrets: []string{AuthFile},
		},
		{name: "bad effort", launch: agent.Launch{Model: "gpt-5:max"}, wantErr: "reasoning effort"},
		{name: "no model", launch: agent.Launch{}, wantErr: "no agent model"},
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
			if !reflect.DeepEqual(cmd.Env, tt.wantEnv) {
				t.Errorf("env = %q\nwant  %q", cmd.Env, tt.wantEnv)
			}
			if !reflect.DeepEqual(cmd.Secrets, tt.secrets) {
				t.Errorf("secrets = %q, want %q", cmd.Secrets, tt.secrets)
			}
			var cfg map[string]any
			if err := toml.Unmarshal(cmd.HomeFiles[ConfigFile], &cfg); err != nil {
				t.Fatalf("config.toml: %v\n%s", err, cmd.HomeFiles[ConfigFile])
			}
			if cfg["check_for_update_on_startup"] != false || cfg["analytics"].(map[string]any)["enabled"] != false {
				t.Errorf("config.toml does not turn off updates and analytics:\n%s", cmd.HomeFiles[ConfigFile])
			}
			if tt.launch.Endpoint != "" {
				p := cfg["model_providers"].(map[string]any)[ProviderName].(map[string]any)
				if cfg["model_provider"] != ProviderName || p["base_url"] != "http://127.0.0.1:9/v1" ||
					p["wire_api"] != "responses" || p["env_key"] != KeyEnv {
					t.Errorf("config.toml provider wrong:\n%s", cmd.HomeFiles[ConfigFile])
				}
			} else if _, ok := cfg["model_provider"]; ok {
				t.Errorf("config.toml sets a provider without an endpoint:\n%s", cmd.HomeFiles[ConfigFile])
			}
		})
	}
}
