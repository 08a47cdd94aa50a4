package gateway

import (
	"context"
	"net/http/httptest"
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
	"github.com/ptb-dev/ptb/internal/sandbox/none"
	"github.com/ptb-dev/ptb/internal/sandbox/sandboxtest"
)

// The four real agent CLIs (from npm) complete a scripted session through
// the gateway's LLM route against the scripted model server: the upstream
// gets the real key on every request and never the placeholder, and the
// gateway meters what the upstream served. Unsandboxed (the sandbox is
// ptb run's part). Runs only with PTB_E2E_AGENTS=1, like internal/agent/e2e.
func TestRealCLIsThroughGateway(t *testing.T) {
	if os.Getenv("PTB_E2E_AGENTS") != "1" {
		t.Skip("set PTB_E2E_AGENTS=1 to run the real agent CLIs (needs node and npm)")
	}
	pfx, err := npmcli.Ready(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(pfx, "node_modules", ".bin")
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found")
	}
	only := os.Getenv("PTB_E2E_ONLY")
	cases := []struct {
		name, provider, model string
		sc                    agent.Scaffold
		authHeader, authValue string
	}{
		{"claude", Anthropic, "claude-sonnet-4-5", claude.New(claude.Options{Bin: filepath.Join(bin, "claude")}), "X-Api-Key", realKey},
		{"codex", OpenAI, "gpt-5.1-codex-max", codex.New(codex.Options{Bin: filepath.Join(bin, "codex")}), "Authorization", "Bearer " + realKey},
		{"gemini", Gemini, "gemini-2.5-pro", gemini.New(gemini.Options{Bin: filepath.Join(bin, "gemini")}), "X-Goog-Api-Key", realKey},
		{"opencode", OpenAI, "ptb/scripted-model", opencode.New(opencode.Options{Bin: filepath.Join(bin, "opencode")}), "Authorization", "Bearer " + realKey},
	}
	for _, tc := range cases {
		if only != "" && !strings.Contains(only, tc.name) {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := &seen{}
			ms := modelserver.New(nil, nil)
			srv := httptest.NewServer(up.wrap(ms))
			defer srv.Close()
			root := t.TempDir()
			g, base := startGateway(t, Config{LogDir: filepath.Join(root, "gateway"),
				Providers: map[string]Provider{tc.provider: {Upstream: srv.URL, Key: realKey}}})
			ws, home := filepath.Join(root, "workspace"), filepath.Join(root, "home")
			os.MkdirAll(ws, 0o755)
			os.MkdirAll(home, 0o755)
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			plan, err := session.Prepare(ctx, session.Config{
				Backend:   none.New(),
				Scaffold:  tc.sc,
				Launch:    agent.Launch{Prompt: "Create out.txt containing hello", Model: tc.model, Endpoint: LLMEndpoint(base, tc.provider)},
				Workspace: ws,
				Home:      home,
				Tmp:       root,
				Env:       []string{"PATH=" + bin + ":" + filepath.Dir(node) + ":/usr/local/bin:/usr/bin:/bin"},
				Network:   sandbox.NetworkHost, // unsandboxed: the sandbox is ptb run's part
				Grace:     5 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, kv := range plan.Spec.Env {
				if strings.Contains(kv, realKey) {
					t.Fatalf("the CLI's environment holds the real key: %s", kv)
				}
			}
			var out sandboxtest.Buffer // stdout and stderr, as CombinedOutput had them
			p, err := plan.Start(ctx, &out, &out)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Destroy()
			ex, err := p.Wait(ctx)
			if err != nil || ex.Reason != session.ReasonExited || ex.Code != 0 {
				t.Fatalf("%s: %+v %v\n%s", tc.name, ex, err, tail(out.String()))
			}
			if got, _ := os.ReadFile(filepath.Join(ws, "out.txt")); strings.TrimSpace(string(got)) != "hello" {
				t.Errorf("out.txt = %q: the session did not complete\n%s", got, tail(out.String()))
			}
			if strings.Contains(out.String(), realKey) {
				t.Errorf("the real key appears in the CLI's output")
			}
			if err := g.Close(); err != nil {
				t.Fatal(err)
			}
			up.mu.Lock()
			for _, r := range up.reqs {
				if got := r.Header.Get(tc.authHeader); got != tc.authValue {
					t.Errorf("%s %s: upstream %s = %q, want the real key", r.Method, r.URL.Path, tc.authHeader, got)
				}
				for k, vs := range r.Header {
					if strings.Contains(strings.Join(vs, " "), Placeholder) {
						t.Errorf("%s %s: upstream header %s carries the placeholder", r.Method, r.URL.Path, k)
					}
				}
			}
			n := len(up.reqs)
			up.mu.Unlock()
			st := ms.Stats()
			u := g.Usage()
			if u.Tokens.InputTokens != st.Usage.InputTokens || u.Tokens.OutputTokens != st.Usage.OutputTokens || u.Requests != n {
				t.Errorf("gateway metered %d requests, %d in / %d out; upstream saw %d requests and served %d / %d",
					u.Requests, u.Tokens.InputTokens, u.Tokens.OutputTokens, n, st.Usage.InputTokens, st.Usage.OutputTokens)
			}
			recs := readLog[LLMRecord](t, filepath.Join(root, "gateway", LLMLogFile))
			t.Logf("%s: %d upstream requests, %d log lines, usage %+v", tc.name, n, len(recs), u.Tokens)
			for _, r := range recs {
				if r.Denied {
					t.Errorf("%s: the gateway refused %s %s: %s", tc.name, r.Method, r.Path, r.Reason)
				}
			}
		})
	}
}

func tail(s string) string {
	if len(s) > 4000 {
		return "..." + s[len(s)-4000:]
	}
	return s
}

// Real clients through the egress proxy: npm reaches the npm registry
// (allowed) over CONNECT with the default, public-only dialer; curl is
// refused the OpenAI API host. Needs the npm registry; runs with
// PTB_E2E_AGENTS=1.
func TestRealClientsThroughEgress(t *testing.T) {
	if os.Getenv("PTB_E2E_AGENTS") != "1" {
		t.Skip("set PTB_E2E_AGENTS=1 to run real clients against the npm registry")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm not found")
	}
	root := t.TempDir()
	g, base := startGateway(t, Config{LogDir: filepath.Join(root, "gateway")})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + root}
	for k, v := range g.Env(base) {
		env = append(env, k+"="+v)
	}
	c := exec.CommandContext(ctx, npm, "view", "is-number", "version", "--registry", "https://registry.npmjs.org/", "--cache", filepath.Join(root, "npm-cache"))
	c.Env = env
	out, err := c.CombinedOutput()
	if err != nil || !strings.Contains(string(out), ".") {
		t.Errorf("npm view through the proxy: %v\n%s", err, out)
	}
	if curl, err := exec.LookPath("curl"); err == nil {
		c := exec.CommandContext(ctx, curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "https://api.openai.com/v1/models")
		c.Env = env
		out, err := c.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "403") {
			t.Errorf("curl to api.openai.com through the proxy: %v %s; want refused with 403", err, out)
		}
	}
	g.Close()
	var allowedNPM, deniedOpenAI bool
	for _, r := range readLog[EgressRecord](t, filepath.Join(root, "gateway", EgressLogFile)) {
		t.Logf("%s %s:%d allowed=%v rule=%q out=%d in=%d", r.Method, r.Host, r.Port, r.Allowed, r.Rule, r.BytesOut, r.BytesIn)
		allowedNPM = allowedNPM || (r.Host == "registry.npmjs.org" && r.Allowed && r.BytesIn > 0)
		deniedOpenAI = deniedOpenAI || (r.Host == "api.openai.com" && !r.Allowed && r.Rule == "deny *.openai.com")
	}
	if !allowedNPM || !deniedOpenAI {
		t.Errorf("egress log: npm allowed with bytes %v, api.openai.com denied %v", allowedNPM, deniedOpenAI)
	}
}
