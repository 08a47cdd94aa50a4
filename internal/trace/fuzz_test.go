package trace

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// fuzzDecode checks that decoding arbitrary input as agent's trace never
// fails or panics, that every event keeps its line's raw bytes, and that the
// renderer and summarizer cope with whatever comes out.
func fuzzDecode(f *testing.F, agent string) {
	p := filepath.Join(sharedDir(f), "fixtures", "traces", agent+".jsonl")
	if agent == AgentScripted {
		p = filepath.Join("testdata", "scripted.jsonl")
	}
	if b, err := os.ReadFile(p); err == nil {
		f.Add(b)
		for _, line := range bytes.Split(b, []byte("\n")) {
			f.Add(line)
		}
	}
	f.Add([]byte("not json\n{\"type\":\n\xff\xfe\n{}\n[]\n\"x\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lines := map[string]bool{}
		for _, l := range bytes.Split(data, []byte("\n")) {
			lines[string(bytes.TrimSuffix(l, []byte("\r")))] = true
		}
		check := handlerFuncs{
			event: func(ev *Event) error {
				if !lines[string(ev.Raw)] {
					t.Fatalf("event raw %q is not a line of the input", ev.Raw)
				}
				if ev.Kind == "" || ev.Agent != agent {
					t.Fatalf("event without kind or agent: %+v", ev)
				}
				return nil
			},
			nonJSON: func(int, []byte) error { return nil },
		}
		ren := NewRenderer(io.Discard, RenderOptions{ShowUnknown: true})
		sum := NewSummarizer()
		if _, err := Stream(context.Background(), bytes.NewReader(data), agent, Tee(check, ren, sum)); err != nil {
			t.Fatal(err)
		}
		if err := ren.Flush(); err != nil {
			t.Fatal(err)
		}
		s := sum.Summary("", DefaultPrices())
		if s.ToolCalls < 0 || s.Events < s.ToolCalls {
			t.Fatalf("summary inconsistent: %+v", s)
		}
	})
}

func FuzzDecodeClaude(f *testing.F)   { fuzzDecode(f, AgentClaude) }
func FuzzDecodeCodex(f *testing.F)    { fuzzDecode(f, AgentCodex) }
func FuzzDecodeGemini(f *testing.F)   { fuzzDecode(f, AgentGemini) }
func FuzzDecodeOpenCode(f *testing.F) { fuzzDecode(f, AgentOpenCode) }
func FuzzDecodeScripted(f *testing.F) { fuzzDecode(f, AgentScripted) }
