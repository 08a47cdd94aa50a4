package claude

import (
	"context"
	"reflect"
	"slices"
	"testing"

	"github.com/ptb-dev/ptb/internal/agent"
)

func TestCommand(t *testing.T) {
	quiet := []string{"HOME=/h", "TERM=dumb", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1", "DISABLE_AUTOUPDATER=1",
		"DISABLE_TELEMETRY=1", "DISABLE_ERROR_REPORTING=1", "IS_SANDBOX=1", "BASH_MAX_TIMEOUT_MS=36000000"}
	tests := []struct {
		name     string
		opts     Options
		launch   agent.Launch
		wantArgv []string
		wantEnv  []string
		files    []string
		secrets  []string
	}{
		{
			name:   "endpoint injection with a placeholder key",
			launch: agent.Launch{Prompt: "do it", Model: "claude-sonnet-4-5", Home: "/h", Endpoint: "http://127.0.0.1:8701/v1"},
			wantArgv: []string{"claude", "--print", "--verbose", "--model", "claude-sonnet-4-5", "--output-format", "stream-json",
				"--dangerously-skip-permissions", "do it"},
			wantEnv: append(slices.Clone(quiet), "ANTHROPIC_BASE_URL=http://127.0.0.1:8701", "ANTHROPIC_API_KEY=ptb-placeholder-key"),
		},
		{
			name:   "subscription credentials are a secret file; continue",
			opts:   Options{Bin: "/opt/claude", Credentials: []byte(`{"claudeAiOauth":{}}`)},
			launch: agent.Launch{Prompt: "do it", Model: "claude-opus-4-5", Home: "/h", Continue: true, Note: "keep going"},
			wantArgv: []string{"/opt/claude", "--print", "--verbose", "--model", "claude-opus-4-5", "--output-format", "stream-json",
				"--dangerously-skip-permissions", "--continue", "keep going"},
			wantEnv: quiet,
			files:   []string{CredentialsFile},
			secrets: []string{CredentialsFile},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, err := New(tt.opts).Command(context.Background(), tt.launch)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cmd.Argv, tt.wantArgv) {
				t.Errorf("argv = %q\nwant   %q", cmd.Argv, tt.wantArgv)
			}
			if !reflect.DeepEqual(cmd.Env, tt.wantEnv) {
				t.Errorf("env = %q\nwant  %q", cmd.Env, tt.wantEnv)
			}
			var files []string
			for k := range cmd.HomeFiles {
				files = append(files, k)
			}
			if !reflect.DeepEqual(files, tt.files) || !reflect.DeepEqual(cmd.Secrets, tt.secrets) {
				t.Errorf("files %q secrets %q, want %q %q", files, cmd.Secrets, tt.files, tt.secrets)
			}
		})
	}
	if _, err := New(Options{}).Command(context.Background(), agent.Launch{}); err == nil {
		t.Error("no model accepted")
	}
}
