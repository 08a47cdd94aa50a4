// Package codex launches Codex CLI headless (the PostTrainBench invocation,
// see shared/fixtures/AGENT_CLIS.md).
package codex

import (
	"context"
	"fmt"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/agent/cliutil"
)

// Files relative to HOME; CODEX_HOME is HOME/.codex.
const (
	ConfigFile = ".codex/config.toml"
	AuthFile   = ".codex/auth.json"
	// ProviderName is the custom model provider pointing at the injected endpoint.
	ProviderName = "ptb"
	// KeyEnv is the variable holding the placeholder credential.
	KeyEnv = "PTB_MODEL_API_KEY"
)

// Efforts returns the accepted reasoning efforts.
func Efforts() []string { return []string{"low", "medium", "high", "xhigh"} }

// Options configures the scaffold.
type Options struct {
	Bin string // the codex executable (default "codex")
	// Effort is the reasoning effort (low|medium|high|xhigh); "" leaves the
	// CLI's default. A model string "MODEL:EFFORT" sets it per job.
	Effort string
	// Auth, when set, is a ChatGPT subscription auth.json written into
	// CODEX_HOME as a secret; used when the launch has no injected endpoint.
	Auth []byte
}

// Scaffold launches Codex CLI.
type Scaffold struct{ o Options }

var _ agent.Scaffold = (*Scaffold)(nil)

// New returns the Codex CLI scaffold.
func New(o Options) *Scaffold {
	if o.Bin == "" {
		o.Bin = "codex"
	}
	return &Scaffold{o: o}
}

// Name implements agent.Scaffold.
func (s *Scaffold) Name() string { return Info.Name }

// Version implements agent.Scaffold.
func (s *Scaffold) Version(ctx context.Context) string { return cliutil.Version(ctx, s.o.Bin) }

// ParseModel splits "MODEL:EFFORT" into its parts; effort is "" without a
// suffix. It fails on an effort not in Efforts.
func ParseModel(s string) (model, effort string, err error) {
	model, effort, ok := strings.Cut(s, ":")
	if !ok {
		return s, "", nil
	}
	for _, e := range Efforts() {
		if e == effort {
			return model, effort, nil
		}
	}
	return "", "", fmt.Errorf("codex: reasoning effort %q in %q: want low, medium, high or xhigh", effort, s)
}

type provider struct {
	Name    string `toml:"name"`
	BaseURL string `toml:"base_url"`
	EnvKey  string `toml:"env_key"`
	WireAPI string `toml:"wire_api"`
}

type analytics struct {
	Enabled bool `toml:"enabled"`
}

type config struct {
	ModelProvider           string              `toml:"model_provider,omitempty"`
	CheckForUpdateOnStartup bool                `toml:"check_for_update_on_startup"`
	Analytics               analytics           `toml:"analytics"`
	ModelProviders          map[string]provider `toml:"model_providers,omitempty"`
}

// Config returns $CODEX_HOME/config.toml: update checks and analytics off and,
// when endpoint is set, a custom provider speaking the Responses API there
// (Codex ignores OPENAI_BASE_URL and rejects wire_api = "chat").
func Config(endpoint string) ([]byte, error) {
	var c config
	if endpoint != "" {
		c.ModelProvider = ProviderName
		c.ModelProviders = map[string]provider{ProviderName: {
			Name: "ptb endpoint", BaseURL: cliutil.BaseURL(endpoint) + "/v1", EnvKey: KeyEnv, WireAPI: "responses"}}
	}
	b, err := toml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode codex config: %w", err)
	}
	return b, nil
}

// Command implements agent.Scaffold:
// codex --search exec --json -c model_reasoning_summary=detailed
// [-c model_reasoning_effort=E] --skip-git-repo-check --yolo --model M
// [resume --last] PROMPT, with stdin closed (the harness gives /dev/null).
func (s *Scaffold) Command(ctx context.Context, l agent.Launch) (agent.Command, error) {
	model, effort, err := ParseModel(l.Model)
	if err != nil {
		return agent.Command{}, err
	}
	if model == "" {
		return agent.Command{}, fmt.Errorf("codex: no agent model given (e.g. gpt-5.1-codex-max or gpt-5.1-codex-max:high)")
	}
	if effort == "" {
		effort = s.o.Effort
	}
	if effort != "" {
		if _, _, err := ParseModel("m:" + effort); err != nil {
			return agent.Command{}, err
		}
	}
	argv := []string{s.o.Bin, "--search", "exec", "--json", "-c", "model_reasoning_summary=detailed"}
	if effort != "" {
		argv = append(argv, "-c", "model_reasoning_effort="+effort)
	}
	argv = append(argv, "--skip-git-repo-check", "--yolo", "--model", model)
	prompt := l.Prompt
	if l.Continue {
		// codex exec resume --last: the most recent session
		argv = append(argv, "resume", "--last")
		prompt = l.Note
	}
	argv = append(argv, prompt)
	cfg, err := Config(l.Endpoint)
	if err != nil {
		return agent.Command{}, err
	}
	cmd := agent.Command{
		Argv:      argv,
		Env:       []string{"HOME=" + l.Home, "TERM=dumb", "CODEX_HOME=" + l.Home + "/.codex"},
		HomeFiles: map[string][]byte{ConfigFile: cfg},
	}
	switch {
	case l.Endpoint != "":
		cmd.Env = append(cmd.Env, KeyEnv+"="+cliutil.Placeholder)
	case s.o.Auth != nil:
		cmd.HomeFiles[AuthFile] = s.o.Auth
		cmd.Secrets = []string{AuthFile}
	}
	return cmd, nil
}
