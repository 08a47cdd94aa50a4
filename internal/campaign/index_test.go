package campaign

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIndexAppendOnly(t *testing.T) {
	dir := t.TempDir()
	a := []Entry{{Job: Job{Index: 0, RunID: "a"}, SpecHash: "h0"}, {Job: Job{Index: 1, RunID: "b"}, SpecHash: "h1"}}
	if err := AppendIndex(dir, a); err != nil {
		t.Fatal(err)
	}
	if err := AppendIndex(dir, []Entry{{Job: Job{Index: 1, RunID: "c"}}}); err == nil {
		t.Fatal("an entry reusing index 1 was appended")
	}
	if err := AppendIndex(dir, []Entry{{Job: Job{Index: 2, RunID: "c"}, Args: []string{"--seed", "1"}}}); err != nil {
		t.Fatal(err)
	}
	got, err := ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[2].RunID != "c" || got[2].Args[1] != "1" || got[1].SpecHash != "h1" {
		t.Fatalf("ReadIndex = %+v", got)
	}
	if e, ok := Find(got, 1, ""); !ok || e.RunID != "b" {
		t.Errorf("Find(index 1) = %+v, %v", e, ok)
	}
	if e, ok := Find(got, 0, "c"); !ok || e.Index != 2 {
		t.Errorf("Find(run id c) = %+v, %v", e, ok)
	}
}

func TestIndexCrashCutLastLine(t *testing.T) {
	dir := t.TempDir()
	if err := AppendIndex(dir, []Entry{{Job: Job{Index: 0, RunID: "a"}}}); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(filepath.Join(dir, IndexFile), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"index":1,"run_i`)
	f.Close()
	got, err := ReadIndex(dir)
	if err != nil || len(got) != 1 {
		t.Fatalf("ReadIndex after a cut line = %+v, %v; want the one whole entry", got, err)
	}
}

func TestIndexBadLineNamed(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, IndexFile), []byte("{\"index\":0,\"run_id\":\"a\"}\nnot json\n{\"index\":2}\n"), 0o644)
	_, err := ReadIndex(dir)
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("err = %v, want one naming line 2", err)
	}
}
