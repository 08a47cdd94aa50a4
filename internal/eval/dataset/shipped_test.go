package dataset

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/ptb-dev/ptb/internal/sharedtest"
)

// Every shipped file is, byte for byte, the copy in shared/datasets, and
// opens through Shipped without touching the source it wraps.
func TestShippedMatchesShared(t *testing.T) {
	root := sharedtest.Path(t, "datasets")
	for shipped, local := range map[string]string{
		"arenahard_question.jsonl.gz":   "arenahard/question.jsonl",
		"arenahard_Qwen3-1.7B.jsonl.gz": "arenahard/Qwen3-1.7B.jsonl",
		"healthbench_easy.jsonl.gz":     "healthbench/healthbench_easy.jsonl",
		"gsm8k_test.jsonl.gz":           "gsm8k/test.jsonl",
	} {
		want, err := os.ReadFile(filepath.Join(root, local))
		if err != nil {
			t.Fatal(err)
		}
		rc, name, err := Shipped{}.Open(context.Background(), File{Shipped: shipped, Local: local})
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(rc)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		rc.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes (%v), want the %d bytes of %s", shipped, len(got), err, len(want), local)
		}
		if name != shipped {
			t.Errorf("name %q, want %q (its extension selects the decoder)", name, shipped)
		}
	}
	recs, err := Records(context.Background(), Shipped{}, File{Shipped: "healthbench_easy.jsonl.gz"})
	if err != nil || len(recs) != 245 {
		t.Errorf("healthbench records: %d, %v; want 245", len(recs), err)
	}
	if _, _, err := (Shipped{}).Open(context.Background(), File{Local: "gsm8k/test.jsonl"}); err == nil {
		t.Error("a file that is not shipped opened without a source")
	}
}
