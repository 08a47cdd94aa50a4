// Package gemini launches Gemini CLI headless (the PostTrainBench
// invocation, see shared/fixtures/AGENT_CLIS.md).
package gemini

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/agent/cliutil"
)

// Files relative to HOME.
const (
	SettingsFile    = ".gemini/settings.json"
	CredentialsFile = ".gemini/oauth_creds.json"
)

// Options configures the scaffold.
type Options struct {
	Bin string // the gemini executable (default "gemini")
	// Credentials, when set, is an OAuth credentials file
	// (~/.gemini/oauth_creds.json) written into HOME as a secret; used
	// when the launch has no injected endpoint.
	Credentials []byte
}

// Scaffold launches Gemini CLI.
type Scaffold struct{ o Options }

var _ agent.Scaffold = (*Scaffold)(nil)

// New returns the Gemini CLI scaffold.
func New(o Options) *Scaffold {
	if o.Bin == "" {
		o.Bin = "gemini"
	}
	return &Scaffold{o: o}
}

// Name implements agent.Scaffold.
func (s *Scaffold) Name() string { return Info.Name }

// Version implements agent.Scaffold.
func (s *Scaffold) Version(ctx context.Context) string { return cliutil.Version(ctx, s.o.Bin) }

// Settings returns ~/.gemini/settings.json for authType (gemini-api-key or
// oauth-personal): folder trust off (else YOLO is silently downgraded),
// auto-update, usage statistics and telemetry off.
func Settings(authType string) []byte {
	v := map[string]any{
		"security": map[string]any{
			"auth":        map[string]any{"selectedType": authType},
			"folderTrust": map[string]any{"enabled": false},
		},
		"general":   map[string]any{"enableAutoUpdate": false, "enableAutoUpdateNotification": false},
		"privacy":   map[string]any{"usageStatisticsEnabled": false},
		"telemetry": map[string]any{"enabled": false},
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	return append(b, '\n')
}

// Command implements agent.Scaffold:
// GEMINI_SANDBOX=false gemini --yolo --model M --output-format stream-json
// [--resume latest] -p PROMPT.
func (s *Scaffold) Command(ctx context.Context, l agent.Launch) (agent.Command, error) {
	if l.Model == "" {
		return agent.Command{}, fmt.Errorf("gemini: no agent model given (e.g. gemini-3-pro-preview)")
	}
	argv := []string{s.o.Bin, "--yolo", "--model", l.Model, "--output-format", "stream-json"}
	prompt := l.Prompt
	if l.Continue {
		argv = append(argv, "--resume", "latest")
		prompt = l.Note
	}
	argv = append(argv, "-p", prompt)
	env := []string{"HOME=" + l.Home, "TERM=dumb", "GEMINI_SANDBOX=false"}
	cmd := agent.Command{Argv: argv}
	auth := "gemini-api-key"
	switch {
	case l.Endpoint != "":
		env = append(env, "GOOGLE_GEMINI_BASE_URL="+cliutil.BaseURL(l.Endpoint), "GEMINI_API_KEY="+cliutil.Placeholder)
		cmd.HomeFiles = map[string][]byte{}
	case s.o.Credentials != nil:
		auth = "oauth-personal"
		cmd.HomeFiles = map[string][]byte{CredentialsFile: s.o.Credentials}
		cmd.Secrets = []string{CredentialsFile}
	default:
		cmd.HomeFiles = map[string][]byte{}
	}
	cmd.HomeFiles[SettingsFile] = Settings(auth)
	cmd.Env = env
	return cmd, nil
}
