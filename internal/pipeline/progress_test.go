package pipeline

import (
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/runevents"
)

// The progress lines rendered from events are the ones ptb printed before
// there were events.
func TestProgressLine(t *testing.T) {
	f := func(d time.Duration) *float64 { return secondsOf(d) }
	tests := []struct {
		ev   runevents.Event
		want string
	}{
		{runevents.Event{Type: runevents.StageStarted, Stage: "solve"}, "ptb: solve ...\n"},
		{runevents.Event{Type: runevents.StageEnded, Stage: "solve", Status: "done", Reason: "agent exited with code 0"}, "ptb: solve done (agent exited with code 0)\n"},
		{runevents.Event{Type: runevents.StageEnded, Stage: "prepare", Status: "failed", Error: "no space", Reason: "ignored"}, "ptb: prepare failed: no space\n"},
		{runevents.Event{Type: runevents.StageEnded, Stage: "collect", Status: "done"}, "ptb: collect done\n"},
		{runevents.Event{Type: runevents.Heartbeat, RemainingS: f(3*time.Hour + 59*time.Minute + 59*time.Second + 600*time.Millisecond)}, "ptb: solve: agent running, 4h0m0s left\n"},
		{runevents.Event{Type: runevents.Reprompt, RemainingS: f(90 * time.Second), WaitS: f(time.Second)}, "ptb: solve: agent exited with 1m30s left; reprompting\n"},
		{runevents.Event{Type: runevents.LimitHit, Limit: "pids"}, "ptb: solve: the agent hit its pids limit and was stopped\n"},
		{runevents.Event{Type: runevents.SegmentStarted}, ""},
		{runevents.Event{Type: runevents.SegmentEnded}, ""},
		{runevents.Event{Type: runevents.Verdict}, ""},
		{runevents.Event{Type: runevents.ResultRecorded}, ""},
	}
	for _, tt := range tests {
		if got := progressLine(tt.ev); got != tt.want {
			t.Errorf("progressLine(%s) = %q, want %q", tt.ev.Type, got, tt.want)
		}
	}
}
