package dataset

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// TestRecordsNReadsNoFurther checks that RecordsN stops at the nth record:
// a broken record after it is never read, and the records before it are
// those of a full read.
func TestRecordsNReadsNoFurther(t *testing.T) {
	var jsonl, csv strings.Builder
	csv.WriteString("id,q\n")
	for i := range 10 {
		fmt.Fprintf(&jsonl, `{"id": %d, "q": "question %d"}`+"\n", i, i)
		fmt.Fprintf(&csv, "%d,question %d\n", i, i)
	}
	jsonl.WriteString("{broken\n")
	csv.WriteString("10,a \"bare\" quote\n")
	dir := t.TempDir()
	write := func(name, s string) string {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return name
	}
	tests := []struct {
		file string
		n    int
		want int // records; -1: an error
	}{
		{write("a.jsonl", jsonl.String()), 3, 3},
		{"a.jsonl", 10, 10},
		{"a.jsonl", 11, -1},
		{"a.jsonl", 0, -1},
		{write("a.csv", csv.String()), 3, 3},
		{"a.csv", 10, 10},
		{"a.csv", 0, -1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/n=%d", tt.file, tt.n), func(t *testing.T) {
			got, err := RecordsN(context.Background(), Dir(dir), File{Local: tt.file}, tt.n)
			if tt.want < 0 {
				if err == nil {
					t.Fatalf("read %d records past a broken one, want an error", len(got))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.want {
				t.Fatalf("got %d records, want %d", len(got), tt.want)
			}
			for i, r := range got {
				var v map[string]any
				if err := json.Unmarshal(r, &v); err != nil || fmt.Sprint(v["q"]) != fmt.Sprintf("question %d", i) {
					t.Fatalf("record %d = %s", i, r)
				}
			}
		})
	}
}

func TestRecordsNParquet(t *testing.T) {
	type row struct {
		Q string `parquet:"q"`
	}
	rows := make([]row, 1000)
	for i := range rows {
		rows[i].Q = fmt.Sprintf("question %d", i)
	}
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[row](&buf)
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "t.parquet"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 7, 1000, 0} {
		got, err := RecordsN(context.Background(), Dir(dir), File{Local: "t.parquet"}, n)
		if err != nil {
			t.Fatal(err)
		}
		want := n
		if n == 0 {
			want = 1000
		}
		if len(got) != want || string(got[len(got)-1]) != fmt.Sprintf(`{"q":"question %d"}`, want-1) {
			t.Fatalf("n=%d: got %d rows, last %s", n, len(got), got[len(got)-1])
		}
	}
}

// BenchmarkRecordsN shows that reading the first 10 records costs the same
// whatever the split's size (B/op stays flat from 10,000 to 100,000 rows),
// where a full read grows with it.
//
//	go test ./internal/eval/dataset -run '^$' -bench RecordsN -benchmem
func BenchmarkRecordsN(b *testing.B) {
	for _, rows := range []int{10_000, 100_000} {
		var sb strings.Builder
		for i := range rows {
			fmt.Fprintf(&sb, `{"question": "%s %d", "answer": "#### %d"}`+"\n", strings.Repeat("word ", 40), i, i)
		}
		dir := b.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "t.jsonl"), []byte(sb.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		for _, n := range []int{10, 0} {
			b.Run(fmt.Sprintf("rows=%d/limit=%d", rows, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := RecordsN(context.Background(), Dir(dir), File{Local: "t.jsonl"}, n); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
