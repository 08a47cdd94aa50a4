package cli

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/agent/npmcli"
	"github.com/ptb-dev/ptb/internal/modelserver"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/sandbox/bwrap"
	"github.com/ptb-dev/ptb/internal/sandbox/sandboxtest"
)

// realAgents skips unless PTB_E2E_AGENTS=1 and bwrap works, installs the
// pinned CLIs, and puts them and node on PATH.
func realAgents(t *testing.T) {
	t.Helper()
	if os.Getenv("PTB_E2E_AGENTS") != "1" {
		t.Skip("set PTB_E2E_AGENTS=1 to run the real agent CLIs (needs node and npm)")
	}
	if err := bwrap.New().Check(context.Background()); err != nil {
		t.Skipf("bwrap unavailable: %v", err)
	}
	pfx, err := npmcli.Ready(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found")
	}
	t.Setenv("PATH", npmcli.Bin(pfx)+":"+filepath.Dir(node)+":/usr/local/bin:/usr/bin:/bin")
}

// startModel serves script (nil: the default) on a free port for the
// test's lifetime and returns the server and its base URL.
func startModel(t *testing.T, script *modelserver.Script, log io.Writer) (*modelserver.Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := modelserver.New(script, log)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go srv.Serve(ctx, ln)
	return srv, "http://" + ln.Addr().String()
}

// `ptb run` with each real agent CLI (npm, pinned versions) against the
// scripted model server, in the bwrap sandbox: the agent's tool call runs
// in the workspace, and result.json carries the usage the server served.
func TestRunRealAgents(t *testing.T) {
	realAgents(t)
	models := map[string]string{"claude": "claude-sonnet-4-5", "codex": "gpt-5.1-codex-max:high", "gemini": "gemini-2.5-pro", "opencode": "ptb/scripted-model"}
	for _, name := range []string{"claude", "codex", "gemini", "opencode"} {
		if only := os.Getenv("PTB_E2E_ONLY"); only != "" && !strings.Contains(only, name) {
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv, url := startModel(t, nil, io.Discard)
			out := t.TempDir()
			code, stdout, stderr := runPTB(t, "run", "--agent", name, "--agent-model", models[name],
				"--endpoint", url, "--network", "host",
				"--base-model", "qwen3-1.7b", "--benchmark", "gsm8k", "--hours", "0.05",
				"--eval-backend", "none", "--out", out, "--json")
			if code != 0 && code != exitNoFinalModel { // the scripted model leaves no final_model
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			}
			runs, _ := filepath.Glob(filepath.Join(out, "*", "result.json"))
			if len(runs) != 1 {
				t.Fatalf("result.json files: %v", runs)
			}
			b, _ := os.ReadFile(runs[0])
			if err := result.ValidateJSON(b); err != nil {
				t.Fatal(err)
			}
			var r result.Result
			json.Unmarshal(b, &r)
			dir := filepath.Dir(runs[0])
			if got, err := os.ReadFile(filepath.Join(dir, "workspace", "out.txt")); err != nil || strings.TrimSpace(string(got)) != "hello" {
				log, _ := os.ReadFile(filepath.Join(dir, "trace", "output.log"))
				t.Errorf("out.txt = %q, %v; the tool call did not run in the workspace\n%s", got, err, tailOf(string(log)))
			}
			if r.Solve == nil || r.Solve.EndReason != result.EndExited || r.Solve.ExitCode == nil || *r.Solve.ExitCode != 0 {
				t.Errorf("solve = %+v", r.Solve)
			}
			st := srv.Stats()
			if r.Usage == nil || r.Usage.InputTokens != st.ScriptedUsage.InputTokens || r.Usage.OutputTokens != st.ScriptedUsage.OutputTokens {
				t.Errorf("usage %+v, the server served %d in / %d out", r.Usage, st.ScriptedUsage.InputTokens, st.ScriptedUsage.OutputTokens)
			}
			if r.Versions.AgentCLI == "" || r.Versions.AgentCLI == "unknown" {
				t.Errorf("agent CLI version not recorded: %q", r.Versions.AgentCLI)
			}
			if r.Sandbox.Network != "host" || !strings.Contains(strings.Join(r.Warnings, "\n"), "host network") {
				t.Errorf("the host network is not recorded: %+v %v", r.Sandbox, r.Warnings)
			}
		})
	}
}

func tailOf(s string) string {
	if len(s) > 3000 {
		return "..." + s[len(s)-3000:]
	}
	return s
}

// The paper's judge, run by the real Codex CLI against the scripted model
// server in the audit stage: the judgements in its final message decide the
// judge's findings, and a "contamination detected" flags the run.
func TestRunWithRealCodexJudge(t *testing.T) {
	realAgents(t)
	script := filepath.Join(t.TempDir(), "agent.yaml")
	os.WriteFile(script, []byte("steps:\n  - run: \"echo training > notes.txt\"\n  - model: final_model\nfinal: done\n"), 0o644)
	for _, c := range []struct {
		name, contamination, verdict string
		status                       string
	}{
		{"clean", "no contamination detected", "unverified", "pass"},
		{"detected", "contamination detected", "flagged", "flag"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, url := startModel(t, &modelserver.Script{Turns: []modelserver.Turn{
				{Shell: "echo '" + c.contamination + "' > contamination_judgement.txt && echo 'only allowed use detected' > disallowed_model_judgement.txt"},
				{Text: "done\ncontamination_judgement.txt: " + c.contamination + "\ndisallowed_model_judgement.txt: only allowed use detected"},
			}}, io.Discard)
			out := t.TempDir()
			code, stdout, stderr := runPTB(t, "run", "--agent", "scripted", "--script", script,
				"--base-model", "qwen3-1.7b", "--benchmark", "gsm8k", "--hours", "0.01", "--eval-backend", "none",
				"--judge-model", "gpt-5.1-codex-max", "--judge-endpoint", url, "--out", out, "--json")
			if code != 0 && code != exitNoFinalModel { // the scripted model leaves no final_model
				t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
			}
			var r result.Result
			if err := json.Unmarshal([]byte(stdout), &r); err != nil {
				t.Fatal(err)
			}
			if r.Audit == nil {
				t.Fatalf("no audit in the record")
			}
			got := map[string]string{}
			for _, f := range r.Audit.Findings {
				got[f.Check] = f.Status
			}
			if got["judge.contamination"] != c.status || got["judge.model"] != "pass" {
				t.Errorf("judge findings %v, want contamination %s and model pass", got, c.status)
			}
			if r.Verdict != c.verdict {
				t.Errorf("verdict %s, want %s", r.Verdict, c.verdict)
			}
			if c.verdict == "flagged" && strings.Join(r.Flags, "") != "C" {
				t.Errorf("flags %v, want [C]", r.Flags)
			}
			if srv.Stats().Requests == 0 {
				t.Errorf("the judge never asked the model")
			}
		})
	}
}

// The reprompt policy with each real CLI: an agent that finishes early is
// relaunched through the CLI's own resume mechanism with the original's
// continuation prompt, which reaches the model.
func TestRepromptRealAgents(t *testing.T) {
	realAgents(t)
	models := map[string]string{"claude": "claude-sonnet-4-5", "codex": "gpt-5.1-codex-max", "gemini": "gemini-2.5-pro", "opencode": "ptb/scripted-model"}
	for _, name := range []string{"claude", "codex", "gemini", "opencode"} {
		if only := os.Getenv("PTB_E2E_ONLY"); only != "" && !strings.Contains(only, name) {
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			reqs := &sandboxtest.Buffer{}
			_, url := startModel(t, nil, reqs)
			out := t.TempDir()
			// 90 s budget, reprompt while 1 s is left: relaunches until the
			// deadline, which may cut the last session short (grace 5 s).
			// On a loaded 2-core CI machine a CLI can take most of 30 s to
			// start, leaving its relaunch no time to send a request.
			code, stdout, stderr := runPTB(t, "run", "--agent", name, "--agent-model", models[name],
				"--endpoint", url, "--network", "host", "--reprompt", "1s", "--grace", "5s",
				"--base-model", "qwen3-1.7b", "--benchmark", "gsm8k", "--hours", strconv.FormatFloat(90.0/3600, 'f', -1, 64),
				"--eval-backend", "none", "--out", out, "--json")
			if code != 0 && code != exitNoFinalModel { // the scripted model leaves no final_model
				t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
			}
			var r result.Result
			json.Unmarshal([]byte(stdout), &r)
			if r.Solve == nil || r.Solve.Segments < 2 {
				t.Fatalf("solve = %+v, want a relaunch", r.Solve)
			}
			dir := filepath.Dir(filepath.Join(out, r.RunID, "x"))
			var st struct {
				Segments []struct {
					Kind      string `json:"kind"`
					EndReason string `json:"end_reason"`
					ExitCode  *int   `json:"exit_code"`
				} `json:"segments"`
			}
			b, _ := os.ReadFile(filepath.Join(dir, "trace", "solve.json"))
			json.Unmarshal(b, &st)
			for i, g := range st.Segments {
				if g.EndReason == "exited" && (g.ExitCode == nil || *g.ExitCode != 0) {
					log, _ := os.ReadFile(filepath.Join(dir, "trace", "output.log"))
					t.Errorf("segment %d (%s) exited %v\n%s", i+1, g.Kind, *g.ExitCode, tailOf(string(log)))
				}
			}
			if !strings.Contains(reqs.String(), "Please continue improving your result and maximize performance.") {
				t.Errorf("the continuation prompt never reached the model")
			}
		})
	}
}
