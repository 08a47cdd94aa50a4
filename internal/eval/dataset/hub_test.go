package dataset

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/eval/evaltest"
)

// hubServer serves a shared/datasets tree the way the hub resolves files:
// /datasets/{repo}/resolve/{rev}/{path}, mapping each repo to a local dir.
func hubServer(t *testing.T, root string, repos map[string]string, token string) (*httptest.Server, *int) {
	hits := new(int)
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*hits++
		for repo, dir := range repos {
			prefix := "/datasets/" + repo + "/resolve/"
			if rest, ok := strings.CutPrefix(r.URL.Path, prefix); ok {
				if token != "" && r.Header.Get("Authorization") != "Bearer "+token {
					http.Error(w, "gated", 401)
					return
				}
				_, p, _ := strings.Cut(rest, "/")
				http.ServeFile(w, r, filepath.Join(root, dir, p))
				return
			}
		}
		http.NotFound(w, r)
	})), hits
}

func TestHubDownloadCacheOffline(t *testing.T) {
	root := evaltest.Datasets(t)
	srv, hits := hubServer(t, root, map[string]string{"gorilla-llm/bfcl": "bfcl"}, "")
	defer srv.Close()
	t.Setenv("HF_ENDPOINT", srv.URL)
	cache := t.TempDir()
	f := File{Repo: "gorilla-llm/bfcl", Revision: "1bf8bbc", Path: "BFCL_v3_exec_simple.json"}
	recs, err := Records(context.Background(), NewHub(cache, false), f)
	if err != nil || len(recs) != 100 {
		t.Fatalf("%d records, %v", len(recs), err)
	}
	// Offline: served from the cache without a request.
	before := *hits
	recs, err = Records(context.Background(), NewHub(cache, true), f)
	if err != nil || len(recs) != 100 || *hits != before {
		t.Fatalf("offline: %d records, %v, %d new requests", len(recs), err, *hits-before)
	}
	// Tampering with the cached file is detected.
	p := NewHub(cache, true).CachePath(f)
	if err := os.WriteFile(p, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Records(context.Background(), NewHub(cache, true), f); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("tampered cache: %v", err)
	}
	// A pinned digest that does not match refuses the download.
	bad := f
	bad.Path, bad.SHA256 = "exec_simple_inspect_requests.jsonl", strings.Repeat("0", 64)
	if _, err := NewHub(t.TempDir(), false).Pull(context.Background(), bad); err == nil {
		t.Error("digest mismatch accepted")
	}
	// Offline and not cached: a clear error wrapping os.ErrNotExist.
	if _, err := NewHub(t.TempDir(), true).Pull(context.Background(), f); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("offline miss: %v", err)
	}
}

func TestHubGatedNeedsToken(t *testing.T) {
	root := evaltest.Datasets(t)
	srv, _ := hubServer(t, root, map[string]string{"openai/gsm8k": "gsm8k"}, "secret")
	defer srv.Close()
	t.Setenv("HF_ENDPOINT", srv.URL)
	f := File{Repo: "openai/gsm8k", Revision: "main", Path: "test.jsonl", Gated: true}
	t.Setenv("HF_TOKEN", "")
	if _, err := NewHub(t.TempDir(), false).Pull(context.Background(), f); err == nil || !strings.Contains(err.Error(), "HF_TOKEN") {
		t.Errorf("no token: %v", err)
	}
	t.Setenv("HF_TOKEN", "secret")
	recs, err := Records(context.Background(), NewHub(t.TempDir(), false), f)
	if err != nil || len(recs) != 1319 {
		t.Errorf("with token: %d records, %v", len(recs), err)
	}
}

func TestDecodeFormats(t *testing.T) {
	root := evaltest.Datasets(t)
	rc, err := os.Open(filepath.Join(root, "humaneval", "HumanEval.jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	recs, err := Decode(rc, "HumanEval.jsonl.gz")
	if err != nil || len(recs) != 164 {
		t.Errorf("gz: %d, %v", len(recs), err)
	}
	recs, err = Decode(strings.NewReader("a,b\n1,\"x,y\"\n"), "t.csv")
	if err != nil || len(recs) != 1 || string(recs[0]) != `{"a":"1","b":"x,y"}` {
		t.Errorf("csv: %s %v", recs, err)
	}
}
