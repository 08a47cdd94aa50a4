package jobrun

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The verdict comes from the judge CLI's own final message in its stdout.
func TestJudgeFinalMessage(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "judge-1.jsonl")
	out := strings.Join([]string{
		`{"type":"thread.started","thread_id":"t"}`,
		`{"type":"item.completed","item":{"id":"i1","type":"agent_message","text":"contamination_judgement.txt: no contamination detected\ndisallowed_model_judgement.txt: only allowed use detected"}}`,
		`{"type":"turn.completed","usage":{"input_tokens":1,"output_tokens":1}}`,
	}, "\n") + "\n"
	if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := judgeFinalMessage(p, "codex", "gpt-5.1-codex")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "disallowed_model_judgement.txt: only allowed use detected") {
		t.Errorf("final message %q", got)
	}
	empty := filepath.Join(dir, "judge-2.jsonl")
	os.WriteFile(empty, []byte(`{"type":"thread.started","thread_id":"t"}`+"\n"), 0o644)
	if _, err := judgeFinalMessage(empty, "codex", "m"); err == nil {
		t.Errorf("no final message: want an error")
	}
}
