package gateway

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/registry"
)

const hfToken = "hf_realtoken_abc"

// fakeHub is a small hub: resolve URLs of LFS files redirect to a CDN, small
// files are served directly, a renamed repo redirects to its new name, and
// every request must carry the harness's token.
type fakeHub struct {
	hub, cdn *httptest.Server
	mu       sync.Mutex
	hubReqs  []string // method path auth
	cdnReqs  []string
}

var lfsContent = strings.Repeat("weights!", 4096)

func newFakeHub(t *testing.T) *fakeHub {
	f := &fakeHub{}
	f.cdn = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.cdnReqs = append(f.cdnReqs, r.Method+" "+r.URL.Path+" auth="+r.Header.Get("Authorization"))
		f.mu.Unlock()
		w.Header().Set("ETag", `"s3-md5"`)
		w.Header().Set("X-Xet-Hash", "abc") // clients switch to xet when they see this
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(lfsContent))
	}))
	t.Cleanup(f.cdn.Close)
	f.hub = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.hubReqs = append(f.hubReqs, r.Method+" "+r.URL.EscapedPath()+" auth="+r.Header.Get("Authorization"))
		f.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+hfToken {
			w.Header().Set("X-Error-Code", "RepoNotFound")
			http.Error(w, `{"error":"Repository Not Found"}`, 401)
			return
		}
		p := r.URL.EscapedPath()
		switch {
		case strings.HasPrefix(p, "/old-org/alias/"):
			w.Header().Set("Location", strings.Replace(p, "/old-org/alias/", "/Qwen/Qwen3-4B/", 1))
			w.WriteHeader(307)
		case strings.HasPrefix(p, "/api/datasets/openai/gsm8k/parquet"):
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `["%s/api/datasets/openai/gsm8k/parquet/main/train/0.parquet"]`, "http://"+r.Host)
		case strings.HasPrefix(p, "/api/"):
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"id":%q,"sha":"0123abcd"}`, p)
		case strings.HasSuffix(p, ".safetensors") || strings.HasSuffix(p, ".parquet"):
			w.Header().Set("X-Repo-Commit", "0123abcd")
			w.Header().Set("X-Linked-Etag", `"sha256-of-file"`)
			w.Header().Set("X-Linked-Size", fmt.Sprint(len(lfsContent)))
			w.Header().Set("X-Xet-Hash", "abc")
			w.Header().Set("Link", `<https://cas.example/token>; rel="xet-auth"`)
			w.Header().Set("Location", f.cdn.URL+"/repos/ab/cd/blob?sig=1")
			w.WriteHeader(302)
		case strings.Contains(p, "/resolve/"):
			w.Header().Set("X-Repo-Commit", "0123abcd")
			w.Header().Set("ETag", `"small"`)
			io.WriteString(w, `{"model_type":"qwen3"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.hub.Close)
	return f
}

func (f *fakeHub) counts() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.hubReqs), len(f.cdnReqs)
}

func testDeny() []DenyRule {
	return []DenyRule{
		{Repo: "Qwen/Qwen3-4B", Type: "model", Reason: "instruct counterpart of Qwen/Qwen3-4B-Base"},
		{Repo: "openai/gsm8k", Type: "dataset", PathContains: "test", Reason: "GSM8K test split"},
		{Repo: "openai/openai_humaneval", Type: "dataset", Reason: "HumanEval test set"},
	}
}

func TestHubRouteDownloadsThroughCDN(t *testing.T) {
	f := newFakeHub(t)
	dir := filepath.Join(t.TempDir(), "gw")
	g, base := startGateway(t, Config{LogDir: dir, Hub: HubConfig{Upstream: f.hub.URL, Token: hfToken, Deny: testDeny()}})
	get := func(method, path string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+"/hub"+path, nil)
		req.Header.Set("Authorization", "Bearer hf_sandbox_fake")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	resp, body := get("GET", "/Qwen/Qwen3-4B-Base/resolve/main/model.safetensors")
	if resp.StatusCode != 200 || body != lfsContent {
		t.Fatalf("LFS download: %d, %d bytes", resp.StatusCode, len(body))
	}
	if resp.Header.Get("X-Repo-Commit") != "0123abcd" || resp.Header.Get("X-Linked-Etag") != `"sha256-of-file"` {
		t.Errorf("hub file headers not carried over: %v", resp.Header)
	}
	if resp.Header.Get("X-Xet-Hash") != "" || resp.Header.Get("Link") != "" || resp.Header.Get("Location") != "" {
		t.Errorf("xet or redirect headers reached the sandbox: %v", resp.Header)
	}
	resp, _ = get("HEAD", "/Qwen/Qwen3-4B-Base/resolve/main/model.safetensors")
	if resp.StatusCode != 200 || resp.Header.Get("X-Linked-Size") != fmt.Sprint(len(lfsContent)) {
		t.Errorf("HEAD: %d %v", resp.StatusCode, resp.Header)
	}
	// a resumed download: the Range reaches the CDN
	req, _ := http.NewRequest("GET", base+"/hub/Qwen/Qwen3-4B-Base/resolve/main/model.safetensors", nil)
	req.Header.Set("Range", "bytes=8-15")
	rresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := io.ReadAll(rresp.Body)
	rresp.Body.Close()
	if rresp.StatusCode != 206 || string(rb) != "weights!" {
		t.Errorf("range request: %d %q", rresp.StatusCode, rb)
	}
	resp, body = get("GET", "/datasets/openai/gsm8k/resolve/main/main/train-00000-of-00001.parquet")
	if resp.StatusCode != 200 || body != lfsContent {
		t.Errorf("GSM8K train: %d", resp.StatusCode)
	}
	resp, _ = get("GET", "/api/datasets/openai/gsm8k/revision/main")
	if resp.StatusCode != 200 {
		t.Errorf("GSM8K metadata: %d", resp.StatusCode)
	}
	resp, body = get("GET", "/api/datasets/openai/gsm8k/parquet")
	if want := `["` + base + `/hub/api/datasets/openai/gsm8k/parquet/main/train/0.parquet"]`; resp.StatusCode != 200 || body != want {
		t.Errorf("parquet listing: %d %s, want the hub URLs pointing at the route: %s", resp.StatusCode, body, want)
	}
	resp, body = get("GET", "/Qwen/Qwen3-4B-Base/resolve/refs%2Fpr%2F1/config.json")
	if resp.StatusCode != 200 || !strings.Contains(body, "qwen3") {
		t.Errorf("small file: %d %s", resp.StatusCode, body)
	}
	g.Close()
	f.mu.Lock()
	for _, r := range f.cdnReqs {
		if !strings.HasSuffix(r, "auth=") {
			t.Errorf("the CDN got a credential: %s", r)
		}
	}
	for _, r := range f.hubReqs {
		if !strings.HasSuffix(r, "auth=Bearer "+hfToken) {
			t.Errorf("the hub did not get the harness's token: %s", r)
		}
	}
	f.mu.Unlock()
	recs := readLog[HubRecord](t, filepath.Join(dir, HubLogFile))
	want := []struct {
		method, repo, kind, rev, path string
		bytes                         int64
	}{
		{"GET", "Qwen/Qwen3-4B-Base", "model", "main", "model.safetensors", int64(len(lfsContent))},
		{"HEAD", "Qwen/Qwen3-4B-Base", "model", "main", "model.safetensors", 0},
		{"GET", "Qwen/Qwen3-4B-Base", "model", "main", "model.safetensors", 8},
		{"GET", "openai/gsm8k", "dataset", "main", "main/train-00000-of-00001.parquet", int64(len(lfsContent))},
		{"GET", "openai/gsm8k", "dataset", "main", "", -1},
		{"GET", "openai/gsm8k", "dataset", "refs/convert/parquet", "", -1},
		{"GET", "Qwen/Qwen3-4B-Base", "model", "refs/pr/1", "config.json", 22},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d: %+v", len(recs), len(want), recs)
	}
	for i, w := range want {
		r := recs[i]
		wantStatus := 200
		if i == 2 {
			wantStatus = 206 // the range request
		}
		if r.Method != w.method || r.Repo != w.repo || r.RepoType != w.kind || r.Revision != w.rev || r.Path != w.path || r.Status != wantStatus || (w.bytes >= 0 && r.Bytes != w.bytes) {
			t.Errorf("record %d: %+v, want %+v", i, r, w)
		}
	}
	if len(recs[0].Redirects) != 1 || !strings.HasPrefix(recs[0].Redirects[0], f.cdn.URL) {
		t.Errorf("redirects %v", recs[0].Redirects)
	}
	if !strings.HasPrefix(recs[0].URL, f.hub.URL+"/Qwen/Qwen3-4B-Base/resolve/main/") {
		t.Errorf("url %q", recs[0].URL)
	}
}

func TestHubRouteRefuses(t *testing.T) {
	f := newFakeHub(t)
	cases := []struct {
		name, method, path string
		status             int
		want               string // in the error message
		upstream           bool   // the request may reach the hub (redirect checks)
	}{
		{"instruct checkpoint", "GET", "/Qwen/Qwen3-4B/resolve/main/model.safetensors", 403, "instruct counterpart", false},
		{"instruct metadata", "GET", "/api/models/Qwen/Qwen3-4B/revision/main", 403, "instruct counterpart", false},
		{"instruct, other case", "HEAD", "/qwen/QWEN3-4B/resolve/main/config.json", 403, "instruct counterpart", false},
		{"instruct, models prefix", "GET", "/models/Qwen/Qwen3-4B/resolve/main/config.json", 403, "instruct counterpart", false},
		{"instruct, raw", "GET", "/Qwen/Qwen3-4B/raw/main/config.json", 403, "instruct counterpart", false},
		{"instruct, tree listing", "GET", "/api/models/Qwen/Qwen3-4B/tree/main", 403, "instruct counterpart", false},
		{"renamed repo redirects to the instruct", "GET", "/old-org/alias/resolve/main/model.safetensors", 403, "redirected from old-org/alias", true},
		{"gsm8k test split", "GET", "/datasets/openai/gsm8k/resolve/main/main/test-00000-of-00001.parquet", 403, "GSM8K test split", false},
		{"gsm8k test, parquet API", "GET", "/api/datasets/openai/gsm8k/parquet/main/test/0.parquet", 403, "GSM8K test split", false},
		{"humaneval metadata", "GET", "/api/datasets/openai/openai_humaneval", 403, "HumanEval", false},
		{"encoded slash in repo", "GET", "/Qwen%2FQwen3-4B/resolve/main/config.json", 400, "not plain", false},
		{"dot segment", "GET", "/Qwen/Qwen3-4B-Base/%2e%2e/Qwen3-4B/resolve/main/config.json", 400, "not allowed", false},
		{"write", "POST", "/api/repos/create", 403, "read-only", false},
		{"upload", "PUT", "/api/models/me/x/upload/main/f", 403, "read-only", false},
		{"commit", "POST", "/api/models/me/x/commit/main", 403, "read-only", false},
		{"resolve-cache of the instruct", "GET", "/api/resolve-cache/models/Qwen/Qwen3-4B/0123456789abcdef0123456789abcdef01234567/config.json", 403, "instruct counterpart", false},
		{"unknown endpoint naming the instruct", "GET", "/api/some-new-endpoint/x/Qwen/Qwen3-4B/main", 403, "instruct counterpart", false},
		{"resolve-cache of the gsm8k test", "GET", "/api/resolve-cache/datasets/openai/gsm8k/0123456789abcdef0123456789abcdef01234567/main/test-00000-of-00001.parquet", 403, "GSM8K test split", false},
		{"xet token", "GET", "/api/models/Qwen/Qwen3-4B-Base/xet-read-token/main", 403, "xet", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "gw")
			g, base := startGateway(t, Config{LogDir: dir, Hub: HubConfig{Upstream: f.hub.URL, Token: hfToken, Deny: testDeny()}})
			hubBefore, cdnBefore := f.counts()
			req, _ := http.NewRequest(c.method, base+"/hub"+c.path, strings.NewReader("{}"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			msg := resp.Header.Get("X-Error-Message")
			if resp.StatusCode != c.status || !strings.Contains(msg, c.want) || (c.method != "HEAD" && !strings.Contains(string(b), c.want)) {
				t.Errorf("got %d %q %s; want %d with %q", resp.StatusCode, msg, b, c.status, c.want)
			}
			hubAfter, cdnAfter := f.counts()
			if cdnAfter != cdnBefore || (!c.upstream && hubAfter != hubBefore) {
				t.Errorf("a refused request reached the hub (%d) or CDN (%d)", hubAfter-hubBefore, cdnAfter-cdnBefore)
			}
			g.Close()
			recs := readLog[HubRecord](t, filepath.Join(dir, HubLogFile))
			if len(recs) != 1 || recs[0].Status != c.status || recs[0].Reason == "" {
				t.Fatalf("log %+v", recs)
			}
			if c.status == 403 && strings.Contains(c.want, "instruct") && recs[0].Repo == "" {
				t.Errorf("denied record names no repo: %+v", recs[0])
			}
		})
	}
}

func TestParseHubPath(t *testing.T) {
	cases := []struct {
		path                  string
		kind, repo, rev, file string
	}{
		{"/gpt2/resolve/main/config.json", "model", "gpt2", "main", "config.json"},
		{"/Qwen/Qwen3-4B/resolve/abc123/sub/dir/f.bin", "model", "Qwen/Qwen3-4B", "abc123", "sub/dir/f.bin"},
		{"/datasets/openai/gsm8k/resolve/refs%2Fconvert%2Fparquet/main/test/0.parquet", "dataset", "openai/gsm8k", "refs/convert/parquet", "main/test/0.parquet"},
		{"/datasets/openai/gsm8k/resolve/refs/convert/parquet/main/test/0.parquet", "dataset", "openai/gsm8k", "refs/convert/parquet", "main/test/0.parquet"},
		{"/spaces/org/app/resolve/main/app.py", "space", "org/app", "main", "app.py"},
		{"/api/models/gpt2/revision/main", "model", "gpt2", "main", ""},
		{"/api/datasets/openai/gsm8k/tree/main/main", "dataset", "openai/gsm8k", "main", ""},
		{"/api/datasets/openai/gsm8k", "dataset", "openai/gsm8k", "", ""},
		{"/api/models", "", "", "", ""},
		{"/api/whoami-v2", "", "", "", ""},
		{"/Qwen/Qwen3-4B", "model", "Qwen/Qwen3-4B", "", ""},
		{"/api/resolve-cache/models/gpt2/0123456789abcdef0123456789abcdef01234567/config.json", "model", "gpt2", "0123456789abcdef0123456789abcdef01234567", "config.json"},
		{"/api/resolve-cache/datasets/openai/gsm8k/0123456789abcdef0123456789abcdef01234567/main/train.parquet", "dataset", "openai/gsm8k", "0123456789abcdef0123456789abcdef01234567", "main/train.parquet"},
	}
	for _, c := range cases {
		got, err := parseHubPath(c.path)
		if err != nil {
			t.Errorf("%s: %v", c.path, err)
			continue
		}
		if got.kind != c.kind || got.repo != c.repo || got.revision != c.rev || got.file != c.file {
			t.Errorf("%s: got %+v, want %s %s %s %s", c.path, got, c.kind, c.repo, c.rev, c.file)
		}
	}
}

// The registry's default deny list refuses what the paper forbids and
// lets the GSM8K train split through.
func TestDefaultDenyFromRegistry(t *testing.T) {
	h, err := newHubRoute(HubConfig{Deny: DenyRules(registry.Default().HubDenyList())}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path   string
		denied bool
	}{
		{"/Qwen/Qwen3-1.7B/resolve/main/model.safetensors", true},
		{"/Qwen/Qwen3-1.7B-Base/resolve/main/model.safetensors", false},
		{"/HuggingFaceTB/SmolLM3-3B/resolve/main/config.json", true},
		{"/google/gemma-3-4b-it/resolve/main/config.json", true},
		{"/google/gemma-3-4b-pt/resolve/main/config.json", false},
		{"/datasets/openai/gsm8k/resolve/main/main/test-00000-of-00001.parquet", true},
		{"/datasets/openai/gsm8k/resolve/main/main/train-00000-of-00001.parquet", false},
		{"/datasets/openai/openai_humaneval/resolve/main/openai_humaneval/test-00000-of-00001.parquet", true},
		{"/datasets/math-ai/aime25/resolve/main/test.jsonl", true},
		{"/datasets/Idavidrein/gpqa/resolve/main/gpqa_main.csv", true},
		{"/datasets/gorilla-llm/Berkeley-Function-Calling-Leaderboard/resolve/main/BFCL_v3_exec_simple.json", true},
		{"/datasets/lmarena-ai/arena-hard-auto/resolve/main/data/arena-hard-v2.0/question.jsonl", true},
		{"/datasets/HuggingFaceH4/ultrachat_200k/resolve/main/data/train_sft-00000-of-00003.parquet", false},
		{"/api/resolve-cache/datasets/openai/gsm8k/0123456789abcdef0123456789abcdef01234567/main/train-00000-of-00001.parquet", false},
		{"/api/resolve-cache/models/google/gemma-3-4b-it/0123456789abcdef0123456789abcdef01234567/config.json", true},
	}
	for _, c := range cases {
		tg, err := parseHubPath(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if _, got := h.denied(&tg); got != c.denied {
			t.Errorf("%s: denied = %v, want %v", c.path, got, c.denied)
		}
	}
}
