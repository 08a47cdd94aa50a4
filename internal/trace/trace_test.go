package trace

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/sharedtest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ from the real traces")

func sharedDir(t testing.TB) string { return sharedtest.Dir(t) }

// realTrace returns the bytes of the captured trace of agent.
func realTrace(t testing.TB, agent string) []byte {
	t.Helper()
	p := filepath.Join(sharedDir(t), "fixtures", "traces", agent+".jsonl")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Skipf("real trace not available (%v); set PTB_SHARED to the shared/ directory", err)
	}
	return b
}

// recorder keeps a JSON dump of every event, without Raw.
type recorder struct{ out bytes.Buffer }

func (r *recorder) Event(ev *Event) error {
	c := *ev
	c.Raw = nil
	type view struct {
		Kind    Kind        `json:"kind"`
		Line    int         `json:"line"`
		Type    string      `json:"type"`
		Time    string      `json:"time,omitempty"`
		RawLen  int         `json:"raw_bytes"`
		Text    string      `json:"text,omitempty"`
		Delta   bool        `json:"delta,omitempty"`
		Fatal   bool        `json:"fatal,omitempty"`
		Session *Session    `json:"session,omitempty"`
		Tool    *ToolCall   `json:"tool,omitempty"`
		Result  *ToolResult `json:"result,omitempty"`
		Usage   *Usage      `json:"usage,omitempty"`
		CLICost *float64    `json:"cli_cost_usd,omitempty"`
	}
	v := view{Kind: c.Kind, Line: c.Line, Type: c.Type, RawLen: len(ev.Raw), Text: c.Text, Delta: c.Delta,
		Fatal: c.Fatal, Session: c.Session, Tool: c.Tool, Result: c.Result, Usage: c.Usage, CLICost: c.CLICostUSD}
	if !c.Time.IsZero() {
		v.Time = c.Time.UTC().Format(time.RFC3339Nano)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	r.out.Write(b)
	r.out.WriteByte('\n')
	return nil
}

func (r *recorder) NonJSON(line int, raw []byte) error {
	r.out.WriteString("nonjson " + string(raw) + "\n")
	return nil
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read golden (run go test -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden (go test ./internal/trace -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestGoldenRealTraces(t *testing.T) {
	for _, agent := range Agents() {
		t.Run(agent, func(t *testing.T) {
			raw := realTrace(t, agent)

			rec := &recorder{}
			var rendered bytes.Buffer
			ren := NewRenderer(&rendered, RenderOptions{})
			sum := NewSummarizer()
			used, err := Stream(context.Background(), bytes.NewReader(raw), "", Tee(rec, ren, sum))
			if err != nil {
				t.Fatal(err)
			}
			if err := ren.Flush(); err != nil {
				t.Fatal(err)
			}
			if used != agent {
				t.Errorf("detected agent %q, want %q", used, agent)
			}
			s := sum.Summary("", DefaultPrices())
			sj, _ := json.MarshalIndent(s, "", "  ")
			golden(t, agent+".events.golden", rec.out.Bytes())
			golden(t, agent+".render.golden", rendered.Bytes())
			golden(t, agent+".summary.golden", append(sj, '\n'))

			// the facts the fixtures were made for: one shell call, "done", the served tokens
			if s.ToolCalls != 1 || s.FinalMessage != "done" || s.Error != nil {
				t.Errorf("summary = %d tool calls, final %q, error %v; want 1, \"done\", nil", s.ToolCalls, s.FinalMessage, s.Error)
			}
			if s.Usage.InputTokens != 246 || s.Usage.OutputTokens != 90 {
				t.Errorf("usage = %+v, want 246 in / 90 out (two requests of 123/45)", s.Usage)
			}
		})
	}
}

func TestDetectAgent(t *testing.T) {
	for _, agent := range Agents() {
		raw := realTrace(t, agent)
		got, err := DetectAgent(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if got != agent {
			t.Errorf("DetectAgent(%s trace) = %q", agent, got)
		}
	}
	got, _ := DetectAgent(strings.NewReader("hello\n{\"a\":1}\n"))
	if got != "" {
		t.Errorf("DetectAgent(junk) = %q, want \"\"", got)
	}
}

// TestHugeLineInvalidUTF8: a line over 16 MiB and one with invalid UTF-8 are
// decoded, their raw bytes kept exactly, and the lines around them survive.
func TestHugeLineInvalidUTF8(t *testing.T) {
	big := strings.Repeat("x", 17<<20)
	lines := [][]byte{
		[]byte(`{"type":"system","subtype":"init","session_id":"s","model":"claude-sonnet-4-5"}`),
		[]byte(`{"type":"assistant","message":{"content":[{"type":"text","text":"` + big + `"}]}}`),
		append(append([]byte(`{"type":"assistant","message":{"content":[{"type":"text","text":"bad `), 0xff, 0xfe, 0xc3), []byte(` bytes"}]}}`)...),
		[]byte("plain text \xff not json"),
		[]byte(`{"type":"result","subtype":"success","is_error":false,"result":"ok","usage":{"input_tokens":1,"output_tokens":2}}`),
	}
	in := bytes.Join(lines, []byte("\n"))
	var got []Event
	var nonJSON [][]byte
	h := handlerFuncs{
		event: func(ev *Event) error {
			c := *ev
			c.Raw = bytes.Clone(ev.Raw)
			got = append(got, c)
			return nil
		},
		nonJSON: func(line int, raw []byte) error { nonJSON = append(nonJSON, bytes.Clone(raw)); return nil },
	}
	agent, err := Stream(context.Background(), bytes.NewReader(in), "", h)
	if err != nil {
		t.Fatal(err)
	}
	if agent != AgentClaude {
		t.Fatalf("agent = %q", agent)
	}
	if len(got) != 5 {
		t.Fatalf("got %d events, want 5", len(got))
	}
	if got[1].Kind != KindText || len(got[1].Text) != len(big) || !bytes.Equal(got[1].Raw, lines[1]) {
		t.Errorf("huge line: kind %s, text %d bytes, raw intact %v", got[1].Kind, len(got[1].Text), bytes.Equal(got[1].Raw, lines[1]))
	}
	if !bytes.Equal(got[2].Raw, lines[2]) {
		t.Errorf("invalid UTF-8 line raw changed: %q", got[2].Raw)
	}
	if want := "bad \xff\xfe\xc3 bytes"; got[2].Text != want {
		t.Errorf("invalid UTF-8 text = %q, want %q", got[2].Text, want)
	}
	if len(nonJSON) != 1 || !bytes.Equal(nonJSON[0], lines[3]) {
		t.Errorf("non-JSON lines = %q", nonJSON)
	}
	if got[3].Line != 5 || got[3].Kind != KindUsage || got[4].Kind != KindFinal || got[4].Text != "ok" {
		t.Errorf("last line: %+v %+v", got[3], got[4])
	}
}

type handlerFuncs struct {
	event   func(*Event) error
	nonJSON func(int, []byte) error
}

func (h handlerFuncs) Event(ev *Event) error              { return h.event(ev) }
func (h handlerFuncs) NonJSON(line int, raw []byte) error { return h.nonJSON(line, raw) }

func TestSummaryRules(t *testing.T) {
	tests := []struct {
		name      string
		agent     string
		trace     string
		wantUsage Usage
		wantCalls int
		wantFinal string
		wantErr   string // "" = null
		wantCLI   *float64
	}{
		{
			name:  "claude usage from result only, cache counted in input",
			agent: AgentClaude,
			trace: `{"type":"assistant","message":{"id":"m1","content":[{"type":"thinking","thinking":"hmm"}],"usage":{"input_tokens":100,"output_tokens":5}}}
{"type":"assistant","message":{"id":"m1","content":[{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"ls"}}],"usage":{"input_tokens":100,"output_tokens":5}}}
{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"a\nb"}],"is_error":true}]}}
{"type":"result","subtype":"success","is_error":false,"result":"all done","total_cost_usd":0.5,"usage":{"input_tokens":10,"cache_read_input_tokens":1000,"cache_creation_input_tokens":200,"output_tokens":30}}`,
			wantUsage: Usage{InputTokens: 1210, OutputTokens: 30, CachedInputTokens: 1000, CacheWriteInputTokens: 200},
			wantCalls: 1, wantFinal: "all done", wantCLI: ptr(0.5),
		},
		{
			name:  "claude is_error with subtype success is an error",
			agent: AgentClaude,
			trace: `{"type":"system","subtype":"api_retry","error":"connection refused"}
{"type":"result","subtype":"success","is_error":true,"result":"API Error: Connection error.","usage":{"input_tokens":0,"output_tokens":0},"total_cost_usd":0}`,
			wantErr: "API Error: Connection error.", wantCLI: ptr(0),
		},
		{
			name:  "codex sums turns; reconnect then failure",
			agent: AgentCodex,
			trace: `{"type":"thread.started","thread_id":"x"}
{"type":"turn.started"}
{"type":"item.completed","item":{"id":"i1","type":"command_execution","command":"ls","aggregated_output":"boom","exit_code":2,"status":"failed"}}
{"type":"item.completed","item":{"id":"i2","type":"agent_message","text":"first"}}
{"type":"turn.completed","usage":{"input_tokens":100,"cached_input_tokens":40,"output_tokens":10,"reasoning_output_tokens":4}}
{"type":"turn.started"}
{"type":"error","message":"Reconnecting... 1/5"}
{"type":"turn.completed","usage":{"input_tokens":50,"cached_input_tokens":0,"output_tokens":5,"reasoning_output_tokens":0}}
{"type":"turn.started"}
{"type":"error","message":"Reconnecting... 5/5"}
{"type":"turn.failed","error":{"message":"stream disconnected"}}`,
			wantUsage: Usage{InputTokens: 150, OutputTokens: 15, CachedInputTokens: 40, ReasoningTokens: 4},
			wantCalls: 1, wantFinal: "first", wantErr: "stream disconnected",
		},
		{
			name:  "gemini deltas concatenate; stats usage",
			agent: AgentGemini,
			trace: `{"type":"init","timestamp":"2026-01-01T00:00:00Z","session_id":"s","model":"gemini-2.5-pro"}
{"type":"message","timestamp":"2026-01-01T00:00:01Z","role":"assistant","content":"Hel","delta":true}
{"type":"message","timestamp":"2026-01-01T00:00:01Z","role":"assistant","content":"lo","delta":true}
{"type":"result","timestamp":"2026-01-01T00:00:02Z","status":"success","stats":{"input_tokens":7,"output_tokens":3,"cached":2}}`,
			wantUsage: Usage{InputTokens: 7, OutputTokens: 3, CachedInputTokens: 2},
			wantFinal: "Hello",
		},
		{
			name:  "opencode sums step_finish and keeps the CLI cost; error event",
			agent: AgentOpenCode,
			trace: `{"type":"step_finish","sessionID":"s","part":{"reason":"tool-calls","tokens":{"input":10,"output":2,"reasoning":1,"cache":{"read":5,"write":0}},"cost":0.25}}
{"type":"step_finish","sessionID":"s","part":{"reason":"tool-calls","tokens":{"input":20,"output":4,"reasoning":0,"cache":{"read":0,"write":0}},"cost":0.5}}
{"type":"error","sessionID":"s","error":{"name":"APIError","data":{"message":"bad gateway"}}}`,
			wantUsage: Usage{InputTokens: 35, OutputTokens: 7, CachedInputTokens: 5, ReasoningTokens: 1},
			wantErr:   "bad gateway", wantCLI: ptr(0.75),
		},
		{
			name:    "empty trace is an error",
			agent:   AgentOpenCode,
			trace:   "",
			wantErr: "the trace has no events",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Summarize(strings.NewReader(tt.trace), tt.agent, "", DefaultPrices())
			if err != nil {
				t.Fatal(err)
			}
			if s.Usage != tt.wantUsage {
				t.Errorf("usage = %+v, want %+v", s.Usage, tt.wantUsage)
			}
			if s.ToolCalls != tt.wantCalls || s.FinalMessage != tt.wantFinal {
				t.Errorf("calls %d final %q, want %d %q", s.ToolCalls, s.FinalMessage, tt.wantCalls, tt.wantFinal)
			}
			switch {
			case tt.wantErr == "" && s.Error != nil:
				t.Errorf("error = %q, want null", *s.Error)
			case tt.wantErr != "" && (s.Error == nil || !strings.Contains(*s.Error, tt.wantErr)):
				t.Errorf("error = %v, want %q", s.Error, tt.wantErr)
			}
			if (tt.wantCLI == nil) != (s.CLICostUSD == nil) || (tt.wantCLI != nil && *tt.wantCLI != *s.CLICostUSD) {
				t.Errorf("cli cost = %v, want %v", s.CLICostUSD, tt.wantCLI)
			}
		})
	}
}

func ptr(f float64) *float64 { return &f }

func TestPrices(t *testing.T) {
	pt := DefaultPrices()
	tests := []struct {
		model string
		want  *float64 // cost of 1M in (half cached) + 1M out
	}{
		{"claude-sonnet-4-5", ptr(1.5 + 0.15 + 15)},
		{"claude-sonnet-4-5-20250929", ptr(1.5 + 0.15 + 15)},
		{"anthropic/claude-opus-4-5", ptr(2.5 + 0.25 + 25)},
		{"claude-opus-4-1-20250805", ptr(7.5 + 0.75 + 75)},
		{"models/gemini-2.5-pro", ptr(0.625 + 0.0625 + 10)},
		{"gpt-5", ptr(0.625 + 0.0625 + 10)},
		{"fake-model", nil},
		{"", nil},
	}
	u := Usage{InputTokens: 1e6, CachedInputTokens: 5e5, OutputTokens: 1e6}
	for _, tt := range tests {
		got := pt.Cost(tt.model, u)
		if (got == nil) != (tt.want == nil) || (got != nil && abs(*got-*tt.want) > 1e-9) {
			t.Errorf("Cost(%q) = %v, want %v", tt.model, deref(got), deref(tt.want))
		}
	}
	over, err := LoadPrices(strings.NewReader(`{"version":"mine","models":[{"match":"fake-*","input":1,"output":2}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if c := over.Cost("fake-model", Usage{InputTokens: 1e6, OutputTokens: 1e6}); c == nil || *c != 3 {
		t.Errorf("override cost = %v, want 3", deref(c))
	}
	if _, err := LoadPrices(strings.NewReader(`{"models":[]}`)); err == nil {
		t.Error("a table without version loaded")
	}
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

func deref(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}

func TestEarlyStop(t *testing.T) {
	d := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	if !EarlyStop(d, d.Add(-31*time.Minute)) {
		t.Error("31 min left is not early")
	}
	if EarlyStop(d, d.Add(-29*time.Minute)) {
		t.Error("29 min left is early")
	}
}

func TestUnknownAgent(t *testing.T) {
	if _, err := NewDecoder("cursor"); err == nil {
		t.Error("NewDecoder(cursor) did not fail")
	}
}

// The scripted agent's trace, captured from a `ptb demo` run.
func TestGoldenScriptedTrace(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "scripted.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	sum := NewSummarizer()
	used, err := Stream(context.Background(), bytes.NewReader(raw), "", Tee(rec, sum))
	if err != nil {
		t.Fatal(err)
	}
	if used != AgentScripted {
		t.Errorf("detected %q, want scripted", used)
	}
	golden(t, "scripted.events.golden", rec.out.Bytes())
	s := sum.Summary("", DefaultPrices())
	if s.ToolCalls != 5 || !strings.HasPrefix(s.FinalMessage, "final_model is ready") || s.Error != nil {
		t.Errorf("summary = %d tool calls, final %q, error %v", s.ToolCalls, s.FinalMessage, s.Error)
	}
}
