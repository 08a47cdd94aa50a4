package gateway

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLogReader(t *testing.T) {
	long := `{"repo":"` + strings.Repeat("a", MaxLogLine) + `"}`
	in := strings.Join([]string{
		`{"time":"t1","repo":"a/b","status":200,"bytes":5}`,
		``,
		`not json`,
		long,
		`{"time":"t5","repo":"c/d","status":403,"denied":true}`,
		`{"time":"t6","repo":"e/f"}`, // no trailing newline
	}, "\n")
	lr := NewLogReader[HubRecord](strings.NewReader(in), "hub.jsonl")
	type got struct {
		repo string
		line int
		err  string
	}
	var gots []got
	for {
		rec, line, err := lr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var le *LineError
		if err != nil && !errors.As(err, &le) {
			t.Fatalf("fatal error %v", err)
		}
		g := got{repo: rec.Repo, line: line}
		if err != nil {
			g.err = err.Error()
		}
		gots = append(gots, g)
	}
	want := []got{
		{"a/b", 1, ""},
		{"", 3, "hub.jsonl:3: invalid character"},
		{"", 4, "hub.jsonl:4: line longer than"},
		{"c/d", 5, ""},
		{"e/f", 6, ""},
	}
	if len(gots) != len(want) {
		t.Fatalf("got %+v, want %+v", gots, want)
	}
	for i := range want {
		if gots[i].repo != want[i].repo || gots[i].line != want[i].line || !strings.HasPrefix(gots[i].err, want[i].err) {
			t.Errorf("item %d: got %+v, want %+v", i, gots[i], want[i])
		}
	}
}

func TestReadHubLogMissingFile(t *testing.T) {
	err := ReadHubLog(filepath.Join(t.TempDir(), "none.jsonl"), func(HubRecord, int, error) error { return nil })
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v, want one wrapping os.ErrNotExist", err)
	}
}

// The hub log stays readable by the audit's format: the eight fields of
// docs/AUDIT.md keep their names.
func TestHubRecordFieldNames(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hub.jsonl")
	os.WriteFile(p, []byte(`{"time":"2026-11-27T08:00:00Z","method":"GET","url":"https://huggingface.co/datasets/openai/gsm8k/resolve/main/main/test-00000-of-00001.parquet","repo":"openai/gsm8k","repo_type":"dataset","revision":"main","path":"main/test-00000-of-00001.parquet","status":200}`+"\n"), 0o644)
	var recs []HubRecord
	err := ReadHubLog(p, func(r HubRecord, line int, lerr error) error {
		if lerr != nil {
			return lerr
		}
		recs = append(recs, r)
		return nil
	})
	if err != nil || len(recs) != 1 {
		t.Fatal(err, recs)
	}
	r := recs[0]
	if r.Method != "GET" || r.Repo != "openai/gsm8k" || r.RepoType != "dataset" || r.Revision != "main" || r.Path != "main/test-00000-of-00001.parquet" || r.Status != 200 || !strings.HasPrefix(r.URL, "https://") {
		t.Errorf("%+v", r)
	}
}
