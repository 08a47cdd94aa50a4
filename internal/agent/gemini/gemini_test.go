package gemini

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/ptb-dev/ptb/internal/agent"
)

func TestCommand(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		launch   agent.Launch
		wantArgv []string
		wantEnv  []string
		wantAuth string
		secrets  []string
	}{
		{
			name:     "endpoint injection",
			launch:   agent.Launch{Prompt: "P", Model: "models/gemini-3-pro-preview", Home: "/h", Endpoint: "http://127.0.0.1:8703"},
			wantArgv: []string{"gemini", "--yolo", "--model", "models/gemini-3-pro-preview", "--output-format", "stream-json", "-p", "P"},
			wantEnv: []string{"HOME=/h", "TERM=dumb", "GEMINI_SANDBOX=false",
				"GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:8703", "GEMINI_API_KEY=ptb-placeholder-key"},
			wantAuth: "gemini-api-key",
		},
		{
			name:     "oauth credentials, resume",
			opts:     Options{Credentials: []byte(`{}`)},
			launch:   agent.Launch{Prompt: "P", Model: "gemini-2.5-pro", Home: "/h", Continue: true, Note: "N"},
			wantArgv: []string{"gemini", "--yolo", "--model", "gemini-2.5-pro", "--output-format", "stream-json", "--resume", "latest", "-p", "N"},
			wantEnv:  []string{"HOME=/h", "TERM=dumb", "GEMINI_SANDBOX=false"},
			wantAuth: "oauth-personal",
			secrets:  []string{CredentialsFile},
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
			if !reflect.DeepEqual(cmd.Secrets, tt.secrets) {
				t.Errorf("secrets = %q, want %q", cmd.Secrets, tt.secrets)
			}
			var s struct {
				Security struct {
					Auth        struct{ SelectedType string } `json:"auth"`
					FolderTrust struct{ Enabled *bool }       `json:"folderTrust"`
				} `json:"security"`
				Telemetry struct{ Enabled *bool } `json:"telemetry"`
			}
			if err := json.Unmarshal(cmd.HomeFiles[SettingsFile], &s); err != nil {
				t.Fatal(err)
			}
			if s.Security.Auth.SelectedType != tt.wantAuth || s.Security.FolderTrust.Enabled == nil ||
				*s.Security.FolderTrust.Enabled || s.Telemetry.Enabled == nil || *s.Telemetry.Enabled {
				t.Errorf("settings.json = %s", cmd.HomeFiles[SettingsFile])
			}
		})
	}
}
