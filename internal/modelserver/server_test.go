package modelserver

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/sharedtest"
)

func sharedDir(t *testing.T) string { return sharedtest.Dir(t) }

// wireRequest is one line of shared/fixtures/wire/requests_*.jsonl.
type wireRequest struct {
	Method        string          `json:"method"`
	Path          string          `json:"path"`
	Body          json.RawMessage `json:"body"`
	ScriptedReply json.RawMessage `json:"scripted_reply"`
}

// decoded is what a client reassembles from a reply.
type decoded struct {
	tool    string
	args    map[string]any
	text    string
	in, out int64
}

// readSSE returns the JSON data payloads of an SSE stream (or the one JSON body).
func readSSE(t *testing.T, resp *http.Response) []map[string]any {
	t.Helper()
	var out []map[string]any
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatalf("reply is not JSON: %v", err)
		}
		return []map[string]any{m}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(data), &m); err != nil {
			t.Fatalf("SSE data is not JSON: %q: %v", data, err)
		}
		out = append(out, m)
	}
	return out
}

func num(v any) int64 {
	switch n := v.(type) {
	case float64:
		return int64(n)
	}
	return 0
}

func reassemble(t *testing.T, api string, events []map[string]any) decoded {
	var d decoded
	var argBuf strings.Builder
	for _, e := range events {
		switch api {
		case "claude":
			switch e["type"] {
			case "message_start":
				d.in = num(obj(obj(e["message"])["usage"])["input_tokens"])
			case "content_block_start":
				if cb := obj(e["content_block"]); cb["type"] == "tool_use" {
					d.tool = cb["name"].(string)
				}
			case "content_block_delta":
				delta := obj(e["delta"])
				switch delta["type"] {
				case "text_delta":
					d.text += delta["text"].(string)
				case "input_json_delta":
					argBuf.WriteString(delta["partial_json"].(string))
				}
			case "message_delta":
				d.out = num(obj(e["usage"])["output_tokens"])
			}
		case "codex":
			switch e["type"] {
			case "response.output_item.done":
				it := obj(e["item"])
				if it["type"] == "function_call" {
					d.tool = it["name"].(string)
					argBuf.WriteString(it["arguments"].(string))
				}
			case "response.output_text.delta":
				d.text += e["delta"].(string)
			case "response.completed":
				u := obj(obj(e["response"])["usage"])
				d.in, d.out = num(u["input_tokens"]), num(u["output_tokens"])
			}
		case "opencode":
			for _, c := range list(e["choices"]) {
				delta := obj(obj(c)["delta"])
				if s, ok := delta["content"].(string); ok {
					d.text += s
				}
				for _, tc := range list(delta["tool_calls"]) {
					f := obj(obj(tc)["function"])
					d.tool = f["name"].(string)
					argBuf.WriteString(f["arguments"].(string))
				}
			}
			if u := obj(e["usage"]); u != nil {
				d.in, d.out = num(u["prompt_tokens"]), num(u["completion_tokens"])
			}
		case "gemini":
			for _, c := range list(e["candidates"]) {
				for _, p := range list(obj(obj(c)["content"])["parts"]) {
					pm := obj(p)
					if s, ok := pm["text"].(string); ok {
						d.text += s
					}
					if fc := obj(pm["functionCall"]); fc != nil {
						d.tool = fc["name"].(string)
						d.args = obj(fc["args"])
					}
				}
			}
			if u := obj(e["usageMetadata"]); u != nil {
				d.in, d.out = num(u["promptTokenCount"]), num(u["candidatesTokenCount"])
			}
		}
	}
	if argBuf.Len() > 0 {
		if err := json.Unmarshal([]byte(argBuf.String()), &d.args); err != nil {
			t.Fatalf("tool arguments are not JSON: %q", argBuf.String())
		}
	}
	return d
}

// TestReplayWire replays every request the real CLIs sent and checks the
// reply parses as the CLI's API and decides what the reference server did.
func TestReplayWire(t *testing.T) {
	for _, cli := range []string{"claude", "codex", "gemini", "opencode"} {
		t.Run(cli, func(t *testing.T) {
			f, err := os.Open(filepath.Join(sharedDir(t), "fixtures", "wire", "requests_"+cli+".jsonl"))
			if err != nil {
				t.Skipf("wire fixtures not available: %v", err)
			}
			defer f.Close()
			var log bytes.Buffer
			srv := New(&Script{Turns: DefaultScript().Turns, SideText: "fake-title"}, &log)
			ts := httptest.NewServer(srv)
			defer ts.Close()
			dec := json.NewDecoder(f)
			n := 0
			for {
				var req wireRequest
				if err := dec.Decode(&req); err == io.EOF {
					break
				} else if err != nil {
					t.Fatal(err)
				}
				n++
				resp, err := http.Post(ts.URL+req.Path, "application/json", bytes.NewReader(req.Body))
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != 200 {
					b, _ := io.ReadAll(resp.Body)
					t.Fatalf("request %d: status %d: %s", n, resp.StatusCode, b)
				}
				got := reassemble(t, cli, readSSE(t, resp))
				resp.Body.Close()

				var want []any
				json.Unmarshal(req.ScriptedReply, &want)
				switch want[0] {
				case "tool":
					wantArgs := obj(want[2])
					if got.tool != want[1] || got.args["command"] == nil && got.args["cmd"] == nil {
						t.Errorf("request %d: tool %q args %v, want %v %v", n, got.tool, got.args, want[1], wantArgs)
					}
					for k, v := range wantArgs {
						if got.args[k] != v {
							t.Errorf("request %d: arg %s = %v, want %v", n, k, got.args[k], v)
						}
					}
				case "text":
					if got.tool != "" || got.text != want[1] {
						t.Errorf("request %d: tool %q text %q, want text %q", n, got.tool, got.text, want[1])
					}
				}
				if got.in != 123 || got.out != 45 {
					t.Errorf("request %d: usage %d/%d, want 123/45", n, got.in, got.out)
				}
			}
			if n == 0 {
				t.Fatal("no requests replayed")
			}
			lines := strings.Count(log.String(), "\n")
			if lines != n || strings.Contains(log.String(), "sk-fake") || strings.Contains(log.String(), "sk-ant-fake") {
				t.Errorf("log has %d lines for %d requests (or leaks a key)", lines, n)
			}
			st := srv.Stats()
			if st.Requests != n || st.ToolCalls == 0 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

func TestScriptAdvanceAndSide(t *testing.T) {
	s := New(&Script{Turns: []Turn{{Shell: "a"}, {Shell: "b", Reasoning: "think"}, {Text: "end"}}}, nil)
	tools := map[string]any{"bash": nil}
	tests := []struct {
		results  int
		tools    map[string]any
		wantTool string
		wantCmd  string
		wantText string
		side     bool
	}{
		{0, tools, "bash", "a", "", false},
		{1, tools, "bash", "b", "", false},
		{2, tools, "", "", "end", false},
		{7, tools, "", "", "end", false},
		{1, nil, "", "", "scripted-title", true}, // a side request does not advance or derail
	}
	for _, tt := range tests {
		rep := s.decide(tt.tools, tt.results, false)
		if rep.Tool != tt.wantTool || rep.Text != tt.wantText || rep.Side != tt.side {
			t.Errorf("results=%d: got %+v", tt.results, rep)
		}
		if tt.wantCmd != "" && rep.Args["command"] != tt.wantCmd {
			t.Errorf("results=%d: args %v", tt.results, rep.Args)
		}
	}
}

func TestReadScript(t *testing.T) {
	if _, err := ReadScript(strings.NewReader(`{"turns":[]}`)); err == nil {
		t.Error("empty script accepted")
	}
	if _, err := ReadScript(strings.NewReader(`{"turns":[{"shel":"x"}]}`)); err == nil {
		t.Error("misspelt field accepted")
	}
	s, err := ReadScript(strings.NewReader(`{"turns":[{"shell":"ls"},{"text":"ok"}],"usage":{"input_tokens":7,"output_tokens":3}}`))
	if err != nil || len(s.Turns) != 2 || s.Usage.InputTokens != 7 {
		t.Errorf("ReadScript = %+v, %v", s, err)
	}
}
