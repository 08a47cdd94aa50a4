package cli

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/sharedtest"

	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
)

// fixtureTrace returns the path of a real captured trace, or skips.
func fixtureTrace(t *testing.T, agent string) string {
	t.Helper()
	return sharedtest.Path(t, "fixtures", "traces", agent+".jsonl")
}

func TestTraceSummaryJSON(t *testing.T) {
	tr := fixtureTrace(t, "codex")
	run := t.TempDir()
	deadline := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	r := result.Result{Schema: result.Schema,
		Solve:  &result.Solve{Deadline: result.Now(deadline), EndReason: result.EndExited},
		Stages: map[string]result.Stage{result.StageSolve: {Status: result.StatusDone, EndedAt: result.Now(deadline.Add(-2 * time.Hour))}}}
	if err := rundir.Dir(run).WriteJSON(rundir.ResultFile, r); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args      []string
		wantEarly any
	}{
		{[]string{"trace", "summary", "--json", tr}, nil},
		{[]string{"trace", "summary", "--json", "--agent", "codex", "--run", run, tr}, true},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		if code := Main(tt.args, nil, &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d: %s", tt.args, code, errb.String())
		}
		var s map[string]any
		if err := json.Unmarshal(out.Bytes(), &s); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out.String())
		}
		u, _ := s["usage"].(map[string]any)
		if s["tool_calls"] != 1.0 || s["final_message"] != "done" || s["error"] != nil ||
			u["input_tokens"] != 246.0 || u["output_tokens"] != 90.0 || s["early_stop"] != tt.wantEarly {
			t.Errorf("%v: summary = %s", tt.args, out.String())
		}
	}
}

func TestTraceRenderAndUsageErrors(t *testing.T) {
	tr := fixtureTrace(t, "gemini")
	var out, errb bytes.Buffer
	if code := Main([]string{"trace", "render", tr}, nil, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"06:46:42.769 tool run_shell_command", "assistant: done", "usage: in 246"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("render lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	errb.Reset()
	if code := Main([]string{"trace", "render", "--agent", "cursor", tr}, nil, &out, &errb); code != 2 {
		t.Errorf("unknown agent: exit %d, want 2 (%s)", code, errb.String())
	}
	if code := Main([]string{"trace", "summary", filepath.Join(t.TempDir(), "missing.jsonl")}, nil, &out, &errb); code != 1 {
		t.Errorf("missing file: exit %d, want 1", code)
	}
}
