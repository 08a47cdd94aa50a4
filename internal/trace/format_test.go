package trace

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// echoFormat makes every line a text event and counts lines per stream.
type echoFormat struct{ n int }

func (f *echoFormat) Decode(line []byte, base Event) []Event {
	f.n++
	if strings.Contains(string(line), "skip") {
		return nil
	}
	base.Kind, base.Text = KindText, strings.Repeat("+", f.n)
	return []Event{base, {Agent: base.Agent, Line: base.Line, Raw: base.Raw}}
}

type kindRecorder struct{ got []string }

func (r *kindRecorder) Event(e *Event) error {
	r.got = append(r.got, string(e.Kind)+":"+e.Text)
	return nil
}
func (r *kindRecorder) NonJSON(int, []byte) error {
	r.got = append(r.got, "nonjson")
	return nil
}

func TestRegisterFormat(t *testing.T) {
	RegisterFormat("zz-echo", func() Format { return &echoFormat{} })
	// Registered for this test only: the tests that range over Agents()
	// read each agent's real trace, and zz-echo has none.
	t.Cleanup(func() {
		formatsMu.Lock()
		delete(formats, "zz-echo")
		formatsMu.Unlock()
	})
	if !slices.Contains(Agents(), "zz-echo") {
		t.Errorf("Agents() = %v, want zz-echo", Agents())
	}
	for _, name := range []string{AgentScripted, AgentUnknown} {
		if slices.Contains(Agents(), name) {
			t.Errorf("Agents() = %v lists %s, which is no agent CLI", Agents(), name)
		}
	}
	h := &kindRecorder{}
	// Two streams: each gets a Format of its own (state starts over).
	for range 2 {
		h.got = nil
		if _, err := Stream(context.Background(), strings.NewReader("{\"a\":1}\nplain\n{\"skip\":1}\n{\"b\":2}\n"), "zz-echo", h); err != nil {
			t.Fatal(err)
		}
		want := []string{"text:+", "unknown:", "nonjson", "unknown:", "text:+++", "unknown:"}
		if !slices.Equal(h.got, want) {
			t.Errorf("events = %v, want %v", h.got, want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("registering claude again did not panic")
		}
	}()
	RegisterFormat(AgentClaude, func() Format { return &echoFormat{} })
}

func TestNewDecoderUnknownAgentNamesFormats(t *testing.T) {
	_, err := NewDecoder("aider")
	if err == nil || !strings.Contains(err.Error(), "claude, codex, gemini, opencode") {
		t.Errorf("NewDecoder(aider) = %v, want an error listing the formats", err)
	}
}
