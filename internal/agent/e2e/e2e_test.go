// Package e2e runs the real agent CLIs, installed from the npm registry at
// pinned versions, against the scripted model server inside a sandbox. It
// runs only with PTB_E2E_AGENTS=1 (it needs npm, node and, the first time,
// the registry); PTB_AGENTS_PREFIX names the npm prefix to install into and
// reuse (default: the user cache directory), PTB_E2E_ONLY=claude,codex
// restricts the agents.
package e2e

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/agent/claude"
	"github.com/ptb-dev/ptb/internal/agent/codex"
	"github.com/ptb-dev/ptb/internal/agent/gemini"
	"github.com/ptb-dev/ptb/internal/agent/npmcli"
	"github.com/ptb-dev/ptb/internal/agent/opencode"
	"github.com/ptb-dev/ptb/internal/agent/session"
	"github.com/ptb-dev/ptb/internal/modelserver"
	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/bwrap"
	"github.com/ptb-dev/ptb/internal/sandbox/none"
	"github.com/ptb-dev/ptb/internal/sandbox/sandboxtest"
	"github.com/ptb-dev/ptb/internal/trace"
)

func prefix(t *testing.T) string {
	t.Helper()
	start := time.Now()
	p, err := npmcli.Ready(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("agent CLIs ready in %s (%s)", p, time.Since(start).Round(time.Second))
	return p
}

func backend(t *testing.T) sandbox.Backend {
	b := bwrap.New()
	if err := b.Check(context.Background()); err == nil {
		return b
	} else {
		t.Logf("bwrap unavailable (%v); running unsandboxed", err)
	}
	return none.New()
}

func TestAgentsAgainstScriptedModel(t *testing.T) {
	if os.Getenv("PTB_E2E_AGENTS") != "1" {
		t.Skip("set PTB_E2E_AGENTS=1 to run the real agent CLIs (needs node and npm)")
	}
	pfx := prefix(t)
	bin := filepath.Join(pfx, "node_modules", ".bin")
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found")
	}
	be := backend(t)
	t.Logf("sandbox backend: %s", be.Capabilities().Name)
	only := os.Getenv("PTB_E2E_ONLY")
	cases := []struct {
		name  string
		sc    agent.Scaffold
		model string
	}{
		{"claude", claude.New(claude.Options{Bin: filepath.Join(bin, "claude")}), "claude-sonnet-4-5"},
		{"codex", codex.New(codex.Options{Bin: filepath.Join(bin, "codex")}), "gpt-5.1-codex-max"},
		{"gemini", gemini.New(gemini.Options{Bin: filepath.Join(bin, "gemini")}), "gemini-2.5-pro"},
		{"opencode", opencode.New(opencode.Options{Bin: filepath.Join(bin, "opencode")}), "ptb/scripted-model"},
	}
	for _, tc := range cases {
		if only != "" && !strings.Contains(only, tc.name) {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			reqlog := &sandboxtest.Buffer{}
			srv := modelserver.New(nil, reqlog)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go srv.Serve(ctx, ln)

			root := t.TempDir()
			ws, home, tmp := filepath.Join(root, "workspace"), filepath.Join(root, "home"), filepath.Join(root, "tmp")
			for _, d := range []string{ws, home, tmp} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			plan, err := session.Prepare(ctx, session.Config{
				Backend:   be,
				Scaffold:  tc.sc,
				Launch:    agent.Launch{Prompt: "Create out.txt containing hello", Model: tc.model, Endpoint: "http://" + ln.Addr().String()},
				Workspace: ws,
				Home:      home,
				Tmp:       tmp,
				Env:       []string{"PATH=" + bin + ":" + filepath.Dir(node) + ":/usr/local/bin:/usr/bin:/bin"},
				ReadOnly:  []string{pfx},
				Network:   sandbox.NetworkHost,
				Timeout:   3 * time.Minute,
				Grace:     5 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			var stdout, stderr sandboxtest.Buffer
			start := time.Now()
			p, err := plan.Start(ctx, &stdout, &stderr)
			if err != nil {
				t.Fatal(err)
			}
			exit, err := p.Wait(ctx)
			if err != nil || exit.Reason == session.ReasonDeadline {
				t.Fatalf("%s did not finish in 3 minutes: %v %+v\nstderr:\n%s\nrequests:\n%s", tc.name, err, exit, tail(stderr.String()), tail(reqlog.String()))
			}
			p.Destroy()
			t.Logf("%s exited %+v in %s", tc.name, exit.Exit, time.Since(start).Round(time.Millisecond))

			got, err := os.ReadFile(filepath.Join(ws, "out.txt"))
			if err != nil || strings.TrimSpace(string(got)) != "hello" {
				t.Errorf("out.txt = %q, %v: the tool call did not run\nstderr:\n%s\ntrace:\n%s", got, err, tail(stderr.String()), tail(stdout.String()))
			}
			s, err := trace.Summarize(bytes.NewReader([]byte(stdout.String())), "", "", trace.DefaultPrices())
			if err != nil {
				t.Fatal(err)
			}
			st := srv.Stats()
			if s.Agent != tc.name || s.ToolCalls != 1 || s.FinalMessage != "done" || s.Error != nil {
				t.Errorf("summary: agent %s, %d tool calls, final %q, error %v; want %s, 1, \"done\", null\ntrace:\n%s",
					s.Agent, s.ToolCalls, s.FinalMessage, deref(s.Error), tc.name, tail(stdout.String()))
			}
			if s.Usage.InputTokens != st.ScriptedUsage.InputTokens || s.Usage.OutputTokens != st.ScriptedUsage.OutputTokens {
				t.Errorf("summary usage %d in / %d out, server served %d / %d on scripted replies (stats %+v)",
					s.Usage.InputTokens, s.Usage.OutputTokens, st.ScriptedUsage.InputTokens, st.ScriptedUsage.OutputTokens, st)
			}
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return "null"
	}
	return *s
}

func tail(s string) string {
	if len(s) > 4000 {
		return "..." + s[len(s)-4000:]
	}
	return s
}
