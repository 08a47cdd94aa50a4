package trace_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/trace"
)

// keepingRenderer embeds a Renderer (and so its method set) but keeps the
// texts it sees: it must not be taken for a handler that keeps nothing.
type keepingRenderer struct {
	*trace.Renderer
	texts []string
}

func (k *keepingRenderer) Event(ev *trace.Event) error {
	if ev.Kind == trace.KindText {
		k.texts = append(k.texts, ev.Text)
	}
	return k.Renderer.Event(ev)
}

// TestWrapperOfRendererKeepsItsValues checks that a handler from another
// package that embeds a Renderer still gets values that outlive its call.
func TestWrapperOfRendererKeepsItsValues(t *testing.T) {
	var in strings.Builder
	const n = 300
	for i := range n {
		fmt.Fprintf(&in, `{"type":"text","timestamp":%d,"sessionID":"s","part":{"text":"message %d"}}`+"\n", 1795762108962+i, i)
	}
	k := &keepingRenderer{Renderer: trace.NewRenderer(io.Discard, trace.RenderOptions{})}
	if _, err := trace.Stream(context.Background(), strings.NewReader(in.String()), trace.AgentOpenCode, k); err != nil {
		t.Fatal(err)
	}
	if len(k.texts) != n {
		t.Fatalf("got %d texts, want %d", len(k.texts), n)
	}
	for i, got := range k.texts {
		if want := fmt.Sprintf("message %d", i); got != want {
			t.Fatalf("text %d = %q after the stream, want %q (its memory was reused)", i, got, want)
		}
	}
}
