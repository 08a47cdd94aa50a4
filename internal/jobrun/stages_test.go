package jobrun

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/gateway"
	"github.com/ptb-dev/ptb/internal/pipeline"
	"github.com/ptb-dev/ptb/internal/sandbox"
)

const codexTrace = `{"type":"thread.started","thread_id":"x"}
{"type":"turn.started"}
{"type":"item.completed","item":{"id":"i2","type":"agent_message","text":"done"}}
{"type":"turn.completed","usage":{"input_tokens":100,"cached_input_tokens":40,"output_tokens":10,"reasoning_output_tokens":4}}
`

// The usage reader reads what its request names: the gateway's log under
// the gateway network, else the trace by the agent's rules and model.
func TestUsageReader(t *testing.T) {
	cost := func(v float64) *float64 { return &v }
	tests := []struct {
		name    string
		req     func(dir string) pipeline.UsageRequest
		source  string // substring
		in, out int64
		cost    bool // a priced cost
		wantErr bool
	}{
		{"gateway log, not the trace", func(dir string) pipeline.UsageRequest {
			return pipeline.UsageRequest{Agent: "codex", Model: "gpt-5.1-codex:high", Network: sandbox.NetworkGateway,
				Trace: filepath.Join(dir, "trace", "agent.jsonl"), GatewayLog: filepath.Join(dir, "gateway", "llm.jsonl")}
		}, "gateway (gateway/llm.jsonl), 1 requests", 7, 3, true, false},
		{"gateway without its log", func(dir string) pipeline.UsageRequest {
			return pipeline.UsageRequest{Agent: "codex", Model: "gpt-5.1-codex", Network: sandbox.NetworkGateway,
				Trace: filepath.Join(dir, "trace", "agent.jsonl"), GatewayLog: filepath.Join(dir, "elsewhere.jsonl")}
		}, "", 0, 0, false, true},
		{"scripted agent", func(dir string) pipeline.UsageRequest {
			return pipeline.UsageRequest{Agent: "scripted", Network: sandbox.NetworkNone, Trace: filepath.Join(dir, "trace", "agent.jsonl")}
		}, "unavailable: the scripted agent uses no model", 0, 0, false, false},
		{"codex trace, model with effort", func(dir string) pipeline.UsageRequest {
			return pipeline.UsageRequest{Agent: "codex", Model: "gpt-5.1-codex:high", Network: sandbox.NetworkNone,
				Trace: filepath.Join(dir, "trace", "agent.jsonl"), GatewayLog: filepath.Join(dir, "gateway", "llm.jsonl")}
		}, "trace (codex rules)", 100, 10, true, false},
		{"missing trace", func(dir string) pipeline.UsageRequest {
			return pipeline.UsageRequest{Agent: "codex", Model: "gpt-5.1-codex", Network: sandbox.NetworkNone, Trace: filepath.Join(dir, "none.jsonl")}
		}, "", 0, 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeLLMLog(t, dir, gateway.LLMRecord{Model: "gpt-5.1-codex", Status: 200, InputTok: 7, OutputTok: 3, CostUSD: cost(0.01)})
			os.MkdirAll(filepath.Join(dir, "trace"), 0o755)
			if err := os.WriteFile(filepath.Join(dir, "trace", "agent.jsonl"), []byte(codexTrace), 0o644); err != nil {
				t.Fatal(err)
			}
			u, err := usageReader{}.Usage(context.Background(), tt.req(dir))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("usage %+v, want an error", u)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(u.Source, tt.source) || u.InputTokens != tt.in || u.OutputTokens != tt.out || (u.CostUSD != nil) != tt.cost {
				t.Errorf("usage %+v (cost %v)\nwant source with %q, %d in, %d out, priced %v", u, u.CostUSD, tt.source, tt.in, tt.out, tt.cost)
			}
		})
	}
}

// The scaffold follows the request: the scripted agent reads its script,
// a CLI agent needs a model, and under the gateway the credentials file is
// not read (the login stays outside the sandbox).
func TestScaffoldFor(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "script.yaml")
	if err := os.WriteFile(script, []byte("steps: []\nfinal: done\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "no-such-auth.json")
	tests := []struct {
		name    string
		req     pipeline.ScaffoldRequest
		want    string // scaffold name
		wantErr string
	}{
		{"scripted", pipeline.ScaffoldRequest{Agent: "scripted", Script: script}, "scripted", ""},
		{"scripted without its script", pipeline.ScaffoldRequest{Agent: "scripted", Script: missing}, "", "read script"},
		{"cli agent without a model", pipeline.ScaffoldRequest{Agent: "codex"}, "", "needs a model: pass --agent-model"},
		{"credentials read off the gateway", pipeline.ScaffoldRequest{Agent: "codex", Model: "gpt-5.1-codex", Credentials: missing, Network: sandbox.NetworkHost}, "", "read credentials"},
		{"credentials left outside under the gateway", pipeline.ScaffoldRequest{Agent: "codex", Model: "gpt-5.1-codex", Credentials: missing, Network: sandbox.NetworkGateway}, "codex", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := scaffoldFor("/ptb")(tt.req)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := sc.Name(); got != tt.want {
				t.Errorf("scaffold %q, want %q", got, tt.want)
			}
		})
	}
}
