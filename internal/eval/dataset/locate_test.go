package dataset

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The shipped files decompress to the digests pinned in ShippedSHA256 (the
// upstream files' digests), with no shared/ needed.
func TestShippedDigests(t *testing.T) {
	for name, want := range ShippedSHA256 {
		rc, _, err := Shipped{}.Open(context.Background(), File{Shipped: name})
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(rc)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.Copy(h, zr); err != nil {
			t.Fatal(err)
		}
		rc.Close()
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			t.Errorf("%s: sha256 %s, want %s", name, got, want)
		}
	}
	recs, err := Records(context.Background(), Shipped{}, File{Shipped: "gsm8k_test.jsonl.gz"})
	if err != nil || len(recs) != 1319 {
		t.Errorf("gsm8k test records: %d, %v; want 1319", len(recs), err)
	}
}

// The data-location rule: flag, then PTB_DATA_DIR, then the cache, then
// the shipped files, then the hub (which is off here).
func TestLocateOrder(t *testing.T) {
	ctx := context.Background()
	gsm := File{Repo: "openai/gsm8k", Revision: "main", Path: "main/test.jsonl", Local: "gsm8k/test.jsonl", Shipped: "gsm8k_test.jsonl.gz"}
	notShipped := File{Repo: "math-ai/aime25", Revision: "main", Path: "test.jsonl", Local: "aime2025/test.jsonl"}
	localOnly := File{Local: "bfcl/x.json"}

	mkDir := func(content string) string {
		d := t.TempDir()
		os.MkdirAll(filepath.Join(d, "gsm8k"), 0o755)
		os.WriteFile(filepath.Join(d, "gsm8k", "test.jsonl"), []byte(content), 0o644)
		return d
	}
	flagDir, envDir := mkDir(`{"from":"flag"}`+"\n"), mkDir(`{"from":"env"}`+"\n")
	cacheWith := t.TempDir()
	h := &Hub{CacheDir: cacheWith}
	p := h.CachePath(gsm)
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, []byte(`{"from":"cache"}`+"\n"), 0o644)
	sum := sha256.Sum256([]byte(`{"from":"cache"}` + "\n"))
	os.WriteFile(p+".sha256", []byte(hex.EncodeToString(sum[:])+"\n"), 0o644)

	for _, tc := range []struct {
		name, flag, env, cache string
		f                      File
		want                   string // first record, or "error"
	}{
		{"flag wins", flagDir, envDir, cacheWith, gsm, `{"from":"flag"}`},
		{"env next", "", envDir, cacheWith, gsm, `{"from":"env"}`},
		{"cache next", "", "", cacheWith, gsm, `{"from":"cache"}`},
		{"shipped next", "", "", t.TempDir(), gsm, `{"question":`},
		{"flag dir lacking the file falls through", t.TempDir(), "", t.TempDir(), gsm, `{"question":`},
		{"not shipped, offline", "", "", t.TempDir(), notShipped, "error"},
		{"local only, no dir", "", "", t.TempDir(), localOnly, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(DataDirEnv, tc.env)
			t.Setenv("HF_HUB_OFFLINE", "1")
			src := Locate(tc.flag, tc.cache, false)
			recs, err := Records(ctx, src, tc.f)
			if tc.want == "error" {
				if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "ptb data pull") && !strings.Contains(err.Error(), "--data-dir") {
					t.Fatalf("got %v, want a not-exist error that says what to do", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := string(recs[0]); !strings.HasPrefix(got, tc.want) {
				t.Errorf("first record %.40s, want prefix %s", got, tc.want)
			}
		})
	}
}
