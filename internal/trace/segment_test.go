package trace

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// ptb's own segment marker between two launches renders as a ptb line in
// every agent's trace, not as an unknown event.
func TestRenderSegmentMarker(t *testing.T) {
	marker := `{"type":"ptb.segment","segment":2,"reason":"resume","time":"2026-11-27T08:01:02Z","remaining_s":21540.4,"note":"continue"}`
	for _, agent := range append(Agents(), AgentScripted) {
		t.Run(agent, func(t *testing.T) {
			var out bytes.Buffer
			ren := NewRenderer(&out, RenderOptions{})
			if _, err := Stream(context.Background(), strings.NewReader(marker+"\n"), agent, ren); err != nil {
				t.Fatal(err)
			}
			ren.Flush()
			got := out.String()
			if !strings.Contains(got, "== ptb: segment 2 (resume), 5h59m0s left ==") || strings.Contains(got, "? ") {
				t.Errorf("rendered %q", got)
			}
		})
	}
}
