// Package claude launches Claude Code headless (the PostTrainBench
// invocation, see shared/fixtures/AGENT_CLIS.md).
package claude

import (
	"context"
	"fmt"

	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/agent/cliutil"
)

// CredentialsFile is where Claude Code keeps subscription (OAuth)
// credentials, relative to HOME.
const CredentialsFile = ".claude/.credentials.json"

// Options configures the scaffold.
type Options struct {
	Bin string // the claude executable (default "claude")
	// Credentials, when set, is a subscription credentials file
	// (~/.claude/.credentials.json) written into HOME as a secret; it is used
	// when the launch has no injected endpoint.
	Credentials []byte
}

// Scaffold launches Claude Code.
type Scaffold struct{ o Options }

var _ agent.Scaffold = (*Scaffold)(nil)

// New returns the Claude Code scaffold.
func New(o Options) *Scaffold {
	if o.Bin == "" {
		o.Bin = "claude"
	}
	return &Scaffold{o: o}
}

// Name implements agent.Scaffold.
func (s *Scaffold) Name() string { return Info.Name }

// Version implements agent.Scaffold.
func (s *Scaffold) Version(ctx context.Context) string { return cliutil.Version(ctx, s.o.Bin) }

// Command implements agent.Scaffold:
// claude --print --verbose --model M --output-format stream-json
// --dangerously-skip-permissions [--continue] PROMPT.
func (s *Scaffold) Command(ctx context.Context, l agent.Launch) (agent.Command, error) {
	if l.Model == "" {
		return agent.Command{}, fmt.Errorf("claude: no agent model given (e.g. claude-sonnet-4-5)")
	}
	prompt := l.Prompt
	argv := []string{s.o.Bin, "--print", "--verbose", "--model", l.Model, "--output-format", "stream-json",
		"--dangerously-skip-permissions"}
	if l.Continue {
		// resume the most recent conversation in this working directory
		argv = append(argv, "--continue")
		prompt = l.Note
	}
	argv = append(argv, prompt)
	env := []string{
		"HOME=" + l.Home,
		"TERM=dumb",
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
		"DISABLE_AUTOUPDATER=1",
		"DISABLE_TELEMETRY=1",
		"DISABLE_ERROR_REPORTING=1",
		"IS_SANDBOX=1", // as root, --dangerously-skip-permissions is refused without it
		"BASH_MAX_TIMEOUT_MS=36000000",
	}
	cmd := agent.Command{Argv: argv}
	switch {
	case l.Endpoint != "":
		env = append(env, "ANTHROPIC_BASE_URL="+cliutil.BaseURL(l.Endpoint), "ANTHROPIC_API_KEY="+cliutil.Placeholder)
	case s.o.Credentials != nil:
		cmd.HomeFiles = map[string][]byte{CredentialsFile: s.o.Credentials}
		cmd.Secrets = []string{CredentialsFile}
	}
	cmd.Env = env
	return cmd, nil
}
