package jobrun

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/gateway"
	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/modelserver"
	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/rundir"
)

// startModel serves ptb's scripted model server (its default script) on a
// loopback port and returns its base URL.
func startModel(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go modelserver.New(nil, io.Discard).Serve(ctx, ln)
	return "http://" + ln.Addr().String()
}

func writeLLMLog(t *testing.T, dir string, recs ...gateway.LLMRecord) {
	t.Helper()
	var sb strings.Builder
	for _, r := range recs {
		b, _ := json.Marshal(r)
		sb.Write(append(b, '\n'))
	}
	os.MkdirAll(filepath.Join(dir, "gateway"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "gateway", "llm.jsonl"), []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestGatewayUsage(t *testing.T) {
	cost := func(v float64) *float64 { return &v }
	for _, c := range []struct {
		name     string
		recs     []gateway.LLMRecord
		in, outT int64
		cost     *float64
		source   string
	}{
		{"priced", []gateway.LLMRecord{
			{Model: "m", Status: 200, InputTok: 100, OutputTok: 10, CachedTok: 50, Reasoning: 3, CostUSD: cost(0.25)},
			{Model: "m", Status: 200, InputTok: 20, OutputTok: 5, CostUSD: cost(0.5)},
			{Model: "big", Status: 403, Denied: true, Reason: "not allowed"},
		}, 120, 15, cost(0.75), "gateway (gateway/llm.jsonl), 2 requests"},
		{"unpriced model", []gateway.LLMRecord{
			{Model: "m", Status: 200, InputTok: 100, OutputTok: 10, CostUSD: cost(0.25)},
			{Model: "new", Status: 200, InputTok: 1, OutputTok: 1},
		}, 101, 11, nil, "1 requests of a model without a price"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeLLMLog(t, dir, c.recs...)
			u, err := GatewayUsage(filepath.Join(dir, "gateway", "llm.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			if u.InputTokens != c.in || u.OutputTokens != c.outT || !strings.Contains(u.Source, c.source) {
				t.Errorf("usage %+v, want %d in %d out, source with %q", u, c.in, c.outT, c.source)
			}
			if (u.CostUSD == nil) != (c.cost == nil) || (u.CostUSD != nil && *u.CostUSD != *c.cost) {
				t.Errorf("cost %v, want %v", u.CostUSD, c.cost)
			}
		})
	}
	if _, err := GatewayUsage(filepath.Join(t.TempDir(), "none.jsonl")); err == nil {
		t.Errorf("a missing log gave usage")
	}
}

// The spend cap is over the whole solve: a gateway started for a resumed
// solve counts what the log says was spent before. (One request a time:
// the first request of a gateway whose run already spent the whole cap
// still passes, until internal/gateway takes the spend carried over.)
func TestGatewaySpendCapAcrossResume(t *testing.T) {
	modelURL := startModel(t)
	// Each scripted reply costs about $0.001 (123 in, 45 out at Sonnet's prices).
	for _, c := range []struct {
		name   string
		spent  float64
		status []int
	}{
		{"fresh", 0, []int{200, 200}},
		{"resumed near the cap", 0.1, []int{200, 403}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeLLMLog(t, dir, gateway.LLMRecord{Model: "claude-sonnet-4-5", Status: 200, InputTok: 1, OutputTok: 1, CostUSD: &c.spent})
			spec := job.Spec{Agent: "scripted", Endpoint: modelURL, Gateway: job.GatewaySpec{SpendCapUSD: 0.1005}}
			sock := filepath.Join(dir, "gateway", "socket", "gateway.sock")
			os.MkdirAll(filepath.Dir(sock), 0o755)
			s, err := RunGateway{Reg: registry.Default(), Getenv: func(string) string { return "" }}.Start(context.Background(), rundir.Dir(dir), spec, sock)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", sock)
			}}}
			for i, want := range c.status {
				resp, err := client.Post("http://gateway/llm/anthropic/v1/messages", "application/json",
					strings.NewReader(`{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`))
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					t.Errorf("request %d: status %d (%s), want %d", i+1, resp.StatusCode, b, want)
				}
			}
		})
	}
}
