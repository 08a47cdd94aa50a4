package agentcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/sandbox/bwrap"
	"github.com/ptb-dev/ptb/internal/sandbox/none"
)

// The test binary plays a fake agent CLI when fakeEnv names a mode.
const fakeEnv = "PTB_AGENTCHECK_FAKE"

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeEnv); mode != "" {
		os.Exit(fakeMain(mode, os.Getenv("FAKE_ENDPOINT"), os.Args[len(os.Args)-1]))
	}
	os.Exit(m.Run())
}

// fake is a scaffold whose CLI is this test binary in a given mode.
type fake struct {
	mode string
	bin  string
}

var _ agent.Scaffold = fake{}

func (f fake) Name() string                   { return "fake" }
func (f fake) Version(context.Context) string { return "1.0.0" }
func (f fake) Command(_ context.Context, l agent.Launch) (agent.Command, error) {
	bin := f.bin
	if bin == "" {
		bin = os.Args[0]
	}
	return agent.Command{
		Argv: []string{bin, "-test.run=^$", l.Prompt},
		Env:  []string{fakeEnv + "=" + f.mode, "FAKE_ENDPOINT=" + l.Endpoint, "HOME=" + l.Home},
	}, nil
}

// fakeMain is the fake CLI. It prints an OpenCode-format trace.
//
//	behave:   a real OpenAI Chat Completions client: it runs the shell call the model asks for
//	notool:   like behave, but skips running the shell call
//	auth:     prints Gemini's auth error on stderr and exits 41
//	traceerr: prints an error event in its trace and exits 1
//	hang:     never contacts the server, never exits
//	stall:    makes one model request, then hangs
func fakeMain(mode, endpoint, prompt string) int {
	out := json.NewEncoder(os.Stdout)
	switch mode {
	case "auth":
		fmt.Fprintln(os.Stderr, "YOLO mode is enabled. All tool calls will be automatically approved.")
		fmt.Fprintln(os.Stderr, "Invalid auth method selected.")
		return 41
	case "traceerr":
		out.Encode(map[string]any{"type": "step_start", "sessionID": "ses_fake", "part": map[string]any{}})
		out.Encode(map[string]any{"type": "error", "sessionID": "ses_fake", "error": map[string]any{"name": "APIError",
			"data": map[string]any{"message": "Unauthorized: bad key"}}})
		return 1
	case "hang":
		select {}
	}
	tools := []any{map[string]any{"type": "function", "function": map[string]any{"name": "bash",
		"description": "run a shell command",
		"parameters": map[string]any{"type": "object", "required": []string{"command"},
			"properties": map[string]any{"command": map[string]any{"type": "string"}}}}}}
	msgs := []any{map[string]any{"role": "user", "content": prompt}}
	for step := 0; step < 4; step++ {
		body, _ := json.Marshal(map[string]any{"model": "scripted-model", "messages": msgs, "tools": tools, "stream": false})
		resp, err := http.Post(endpoint+"/v1/chat/completions", "application/json", bytes.NewReader(body))
		if err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			return 1
		}
		var r struct {
			Choices []struct {
				Message struct {
					Content   string `json:"content"`
					ToolCalls []struct {
						ID       string `json:"id"`
						Function struct {
							Arguments string `json:"arguments"`
						} `json:"function"`
					} `json:"tool_calls"`
				} `json:"message"`
			} `json:"choices"`
			Usage struct {
				Prompt     int `json:"prompt_tokens"`
				Completion int `json:"completion_tokens"`
			} `json:"usage"`
		}
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if err != nil || len(r.Choices) == 0 {
			fmt.Fprintln(os.Stderr, "error: bad reply:", err)
			return 1
		}
		if mode == "stall" {
			select {}
		}
		tokens := map[string]any{"input": r.Usage.Prompt, "output": r.Usage.Completion}
		m := r.Choices[0].Message
		out.Encode(map[string]any{"type": "step_start", "sessionID": "ses_fake", "part": map[string]any{}})
		if len(m.ToolCalls) == 0 {
			out.Encode(map[string]any{"type": "text", "sessionID": "ses_fake", "part": map[string]any{"text": m.Content}})
			out.Encode(map[string]any{"type": "step_finish", "sessionID": "ses_fake", "part": map[string]any{"reason": "stop", "tokens": tokens}})
			return 0
		}
		tc := m.ToolCalls[0]
		var args struct{ Command string }
		json.Unmarshal([]byte(tc.Function.Arguments), &args)
		output, code := "(skipped)", 0
		if mode != "notool" {
			b, err := exec.Command("sh", "-c", args.Command).CombinedOutput()
			output = string(b)
			if err != nil {
				code = 1
			}
		}
		out.Encode(map[string]any{"type": "tool_use", "sessionID": "ses_fake", "part": map[string]any{"tool": "bash", "callID": tc.ID,
			"state": map[string]any{"status": "completed", "input": args, "output": output,
				"metadata": map[string]any{"exit": code}}}})
		out.Encode(map[string]any{"type": "step_finish", "sessionID": "ses_fake", "part": map[string]any{"reason": "tool-calls", "tokens": tokens}})
		msgs = append(msgs,
			map[string]any{"role": "assistant", "tool_calls": []any{map[string]any{"id": tc.ID, "type": "function",
				"function": map[string]any{"name": "bash", "arguments": tc.Function.Arguments}}}},
			map[string]any{"role": "tool", "tool_call_id": tc.ID, "content": output})
	}
	fmt.Fprintln(os.Stderr, "error: too many steps")
	return 1
}

func TestCheck(t *testing.T) {
	cases := []struct {
		mode    string
		bin     string
		status  string
		reasons []string // substrings the reason must hold
	}{
		{"behave", "", Pass, nil},
		{"auth", "", Fail, []string{"exit code 41 with no model request: Invalid auth method selected."}},
		{"traceerr", "", Fail, []string{"exit code 1 with no model request: Unauthorized: bad key"}},
		{"notool", "", Fail, []string{"exit code 0 but the tool call did not run (out.txt missing; the server served 1 tool calls)"}},
		{"hang", "", Fail, []string{"timed out after 1 s with no model request"}},
		{"stall", "", Fail, []string{"timed out after 3 s: it contacted the model server (1 requests, 1 scripted turns, 1 tool calls served) but did not finish"}},
		{"behave", "/nonexistent/fake-cli", Skip, []string{"not installed (npm install -g fake-cli)"}},
	}
	for _, tc := range cases {
		name := tc.mode
		if tc.bin != "" {
			name = "not-installed"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			timeout := time.Minute // generous: a loaded machine must not fail the cases that finish
			switch tc.mode {
			case "hang":
				timeout = time.Second
			case "stall":
				timeout = 3 * time.Second // time to make its one request first
			}
			r := Check(context.Background(), none.New(), fake{mode: tc.mode, bin: tc.bin},
				Options{Timeout: timeout, Install: "npm install -g fake-cli", Dir: t.TempDir()})
			if r.Status != tc.status {
				t.Fatalf("status %s (%s), want %s", r.Status, r.Reason, tc.status)
			}
			if tc.status == Pass && r.Reason != "" {
				t.Errorf("pass with reason %q", r.Reason)
			}
			for _, want := range tc.reasons {
				if !strings.Contains(r.Reason, want) {
					t.Errorf("reason %q\nwant it to contain %q", r.Reason, want)
				}
			}
			if r.Agent != "fake" || r.Sandbox != "none" {
				t.Errorf("agent %q sandbox %q, want fake, none", r.Agent, r.Sandbox)
			}
			if tc.status != Skip && r.Version != "1.0.0" {
				t.Errorf("version %q, want 1.0.0", r.Version)
			}
			if tc.mode == "behave" && tc.status == Pass && r.Requests != 2 {
				t.Errorf("%d requests, want 2", r.Requests)
			}
		})
	}
}

// The session runs inside bwrap too: the executable outside the sandbox's
// view (the test binary under the host /tmp) is made visible read-only.
func TestCheckInBwrap(t *testing.T) {
	b := bwrap.New()
	if err := b.Check(context.Background()); err != nil {
		t.Skipf("bwrap unusable: %v", err)
	}
	r := Check(context.Background(), b, fake{mode: "behave"}, Options{Timeout: time.Minute, Dir: t.TempDir()})
	if r.Status != Pass || r.Sandbox != "bwrap" {
		t.Fatalf("status %s in %s: %s", r.Status, r.Sandbox, r.Reason)
	}
}

func TestTellingLine(t *testing.T) {
	cases := []struct{ stderr, want string }{
		{"YOLO mode is enabled.\nInvalid auth method selected.\n", "Invalid auth method selected."},
		{"file:///x/gemini.js:12\n  throw err;\n  ^\n\nError: Cannot find module 'foo'\n    at Module._resolve (node:internal)\n    at node:internal/main:1:1\n\nNode.js v20.20.2\n",
			"Error: Cannot find module 'foo'"},
		{"warming up\nstill going\n", "still going"},
		{"\n\n", ""},
	}
	for _, c := range cases {
		if got := tellingLine(c.stderr); got != c.want {
			t.Errorf("tellingLine(%q) = %q, want %q", c.stderr, got, c.want)
		}
	}
}
