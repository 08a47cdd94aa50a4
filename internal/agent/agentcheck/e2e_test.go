package agentcheck

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/agent/claude"
	"github.com/ptb-dev/ptb/internal/agent/codex"
	"github.com/ptb-dev/ptb/internal/agent/gemini"
	"github.com/ptb-dev/ptb/internal/agent/npmcli"
	"github.com/ptb-dev/ptb/internal/agent/opencode"
	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/bwrap"
	"github.com/ptb-dev/ptb/internal/sandbox/none"
)

// e2ePrefix returns the npm prefix holding the four CLIs (the one the
// end-to-end test uses), installing them when missing.
func e2ePrefix(t *testing.T) string {
	t.Helper()
	p, err := npmcli.Ready(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// edit wraps a scaffold, changing its launch or command to break it.
type edit struct {
	agent.Scaffold
	launch  func(*agent.Launch)
	command func(*agent.Command)
}

func (e edit) Command(ctx context.Context, l agent.Launch) (agent.Command, error) {
	if e.launch != nil {
		e.launch(&l)
	}
	c, err := e.Scaffold.Command(ctx, l)
	if err == nil && e.command != nil {
		e.command(&c)
	}
	return c, err
}

// The real CLIs pass, and two broken setups fail with the exact reason:
// Gemini without its auth settings, and Codex pointed at a closed port
// (where it retries forever).
func TestRealAgents(t *testing.T) {
	if os.Getenv("PTB_E2E_AGENTS") != "1" {
		t.Skip("set PTB_E2E_AGENTS=1 to run the real agent CLIs (needs node and npm)")
	}
	pfx := e2ePrefix(t)
	bin := npmcli.Bin(pfx)
	var sb sandbox.Backend = bwrap.New()
	if err := sb.Check(context.Background()); err != nil {
		t.Logf("bwrap unusable (%v); running unsandboxed", err)
		sb = none.New()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()

	cases := []struct {
		name    string
		sc      agent.Scaffold
		timeout time.Duration
		status  string
		reason  string
	}{
		{"claude", claude.New(claude.Options{Bin: "claude"}), 0, Pass, ""},
		{"codex", codex.New(codex.Options{Bin: "codex"}), 0, Pass, ""},
		{"gemini", gemini.New(gemini.Options{Bin: "gemini"}), 0, Pass, ""},
		{"opencode", opencode.New(opencode.Options{Bin: "opencode"}), 0, Pass, ""},
		{"gemini-no-auth", edit{Scaffold: gemini.New(gemini.Options{Bin: "gemini"}),
			command: func(c *agent.Command) { delete(c.HomeFiles, gemini.SettingsFile) }},
			0, Fail, "exit code 41 with no model request: Invalid auth method selected."},
		{"codex-closed-port", edit{Scaffold: codex.New(codex.Options{Bin: "codex"}),
			launch: func(l *agent.Launch) { l.Endpoint = closed }},
			5 * time.Second, Fail, "timed out after 5 s with no model request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := Check(context.Background(), sb, tc.sc, Options{Timeout: tc.timeout, ReadOnly: []string{pfx},
				Path: bin + ":" + os.Getenv("PATH"), Dir: t.TempDir()})
			t.Logf("%s: %s %q in %s (%s, version %s, %d requests)", tc.name, r.Status, r.Reason, r.Sandbox,
				r.Duration.Round(time.Millisecond), r.Version, r.Requests)
			if r.Status != tc.status {
				t.Fatalf("status %s (%s), want %s", r.Status, r.Reason, tc.status)
			}
			if !strings.Contains(r.Reason, tc.reason) {
				t.Errorf("reason %q\nwant it to contain %q", r.Reason, tc.reason)
			}
		})
	}
}
