package dataset

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/ptb-dev/ptb/internal/eval/evaltest"
)

// The hub serves GSM8K as parquet; the same rows written to parquet (as
// the hub's conversion does, string columns) decode to the jsonl records.
func TestDecodeParquetMatchesJSONL(t *testing.T) {
	root := evaltest.Datasets(t)
	b, err := os.ReadFile(filepath.Join(root, "gsm8k", "test.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := Decode(bytes.NewReader(b), "test.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Question string `parquet:"question"`
		Answer   string `parquet:"answer"`
	}
	rows := make([]row, len(want))
	for i, r := range want {
		json.Unmarshal(r, &rows[i])
	}
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[row](&buf, parquet.PageBufferSize(64<<10))
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := Decode(bytes.NewReader(buf.Bytes()), "test-00000-of-00001.parquet")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(got) != 1319 {
		t.Fatalf("%d rows from parquet, %d from jsonl, want 1319", len(got), len(want))
	}
	for i := range want {
		var g, w map[string]any
		json.Unmarshal(got[i], &g)
		json.Unmarshal(want[i], &w)
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("row %d: parquet %s, jsonl %s", i, got[i], want[i])
		}
	}
}

func TestDecodeParquetRejectsGarbage(t *testing.T) {
	if _, err := Decode(bytes.NewReader([]byte("PAR1 not really")), "x.parquet"); err == nil {
		t.Error("garbage decoded as parquet")
	}
}
