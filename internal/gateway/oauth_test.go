package gateway

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTokenEndpoint answers refresh_token grants: refresh token rN gives
// access token aN+1 and refresh token rN+1, once each (refresh tokens are
// single-use, as the real endpoints make them).
type fakeTokenEndpoint struct {
	mu       sync.Mutex
	clientID string
	used     map[string]bool
	calls    int
	access   func(n int) string
}

func (f *fakeTokenEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var body map[string]string
	json.NewDecoder(r.Body).Decode(&body)
	f.calls++
	rt := body["refresh_token"]
	if body["grant_type"] != "refresh_token" || body["client_id"] != f.clientID || f.used[rt] || !strings.HasPrefix(rt, "r") {
		http.Error(w, `{"error":"invalid_grant"}`, 400)
		return
	}
	f.used[rt] = true
	var n int
	fmt.Sscanf(rt, "r%d", &n)
	json.NewEncoder(w).Encode(map[string]any{"access_token": f.access(n + 1), "refresh_token": fmt.Sprintf("r%d", n+1), "expires_in": 3600})
}

func jwtWithExp(t time.Time, tag string) string {
	enc := base64.RawURLEncoding.EncodeToString
	p, _ := json.Marshal(map[string]any{"exp": t.Unix(), "tag": tag})
	return enc([]byte(`{"alg":"none"}`)) + "." + enc(p) + "." + enc([]byte("sig"))
}

func TestOAuthClaudeInjectsAndRefreshes(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name        string
		expiresAt   time.Time
		wantBearer  string
		wantRefresh int
	}{
		{"valid token is used as is", now.Add(time.Hour), "a0", 0},
		{"expiring token is refreshed first", now.Add(time.Minute), "a1", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tokens := &fakeTokenEndpoint{clientID: "test-client", used: map[string]bool{}, access: func(n int) string { return fmt.Sprintf("a%d", n) }}
			tokenSrv := httptest.NewServer(tokens)
			defer tokenSrv.Close()
			up, upURL := scripted(t)
			cred := filepath.Join(t.TempDir(), ".credentials.json")
			os.WriteFile(cred, []byte(fmt.Sprintf(`{"claudeAiOauth":{"accessToken":"a0","refreshToken":"r0","expiresAt":%d,"scopes":["user:inference"],"subscriptionType":"max"},"other":1}`, c.expiresAt.UnixMilli())), 0o640)
			g, base := startGateway(t, Config{Now: func() time.Time { return now },
				Providers: map[string]Provider{Anthropic: {Upstream: upURL, OAuth: &OAuth{File: cred, TokenURL: tokenSrv.URL, ClientID: "test-client"}}}})
			for range 2 {
				resp, err := http.Post(base+"/llm/anthropic/v1/messages", "application/json", strings.NewReader(`{"model":"claude-sonnet-4-5","max_tokens":5}`))
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("status %d", resp.StatusCode)
				}
				r := up.last(t)
				if got := r.Header.Get("Authorization"); got != "Bearer "+c.wantBearer {
					t.Errorf("upstream Authorization %q, want Bearer %s", got, c.wantBearer)
				}
				if r.Header.Get("X-Api-Key") != "" || !strings.Contains(r.Header.Get("Anthropic-Beta"), "oauth-2025-04-20") {
					t.Errorf("upstream headers %v", r.Header)
				}
			}
			if tokens.calls != c.wantRefresh {
				t.Errorf("%d refreshes, want %d (a refreshed token is kept)", tokens.calls, c.wantRefresh)
			}
			g.Close()
			b, _ := os.ReadFile(cred)
			var f map[string]any
			if err := json.Unmarshal(b, &f); err != nil {
				t.Fatal(err)
			}
			o := f["claudeAiOauth"].(map[string]any)
			if o["accessToken"] != c.wantBearer || o["subscriptionType"] != "max" || f["other"] != 1.0 {
				t.Errorf("credentials file after the run: %s", b)
			}
			if st, _ := os.Stat(cred); st.Mode().Perm() != 0o640 {
				t.Errorf("credentials file mode %v, want 0640", st.Mode().Perm())
			}
		})
	}
}

// Codex's ChatGPT login: the token is a JWT whose exp the gateway reads;
// a 401 from upstream makes the gateway refresh once and retry; the
// chatgpt.com backend has no /v1 in its paths.
func TestOAuthCodexRefreshesOn401(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	access := func(n int) string { return jwtWithExp(now.Add(time.Hour), fmt.Sprint(n)) }
	tokens := &fakeTokenEndpoint{clientID: "codex-client", used: map[string]bool{}, access: access}
	tokenSrv := httptest.NewServer(tokens)
	defer tokenSrv.Close()
	var mu sync.Mutex
	var got []string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.URL.Path+" "+r.Header.Get("Chatgpt-Account-Id")+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+access(1) {
			http.Error(w, `{"error":{"message":"token revoked"}}`, 401)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"model":"gpt-5","usage":{"input_tokens":10,"output_tokens":2}}`)
	}))
	defer upstream.Close()
	dir := t.TempDir()
	cred := filepath.Join(dir, "auth.json")
	os.WriteFile(cred, []byte(`{"OPENAI_API_KEY":null,"tokens":{"id_token":"x","access_token":"`+access(0)+`","refresh_token":"r0","account_id":"acct-7"},"last_refresh":"2026-11-01T00:00:00Z"}`), 0o600)
	g, base := startGateway(t, Config{Now: func() time.Time { return now },
		Providers: map[string]Provider{OpenAI: {Upstream: upstream.URL, OAuth: &OAuth{File: cred, TokenURL: tokenSrv.URL, ClientID: "codex-client"}}}})
	resp, err := http.Post(base+"/llm/openai/v1/responses", "application/json", strings.NewReader(`{"model":"gpt-5","input":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d %s", resp.StatusCode, b)
	}
	want := []string{"/responses acct-7 Bearer " + access(0), "/responses acct-7 Bearer " + access(1)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("upstream saw %q, want %q", got, want)
	}
	g.Close()
	raw, _ := os.ReadFile(cred)
	if !strings.Contains(string(raw), access(1)) || !strings.Contains(string(raw), `"r1"`) || !strings.Contains(string(raw), "acct-7") {
		t.Errorf("auth.json not updated: %s", raw)
	}
}

func TestOAuthRejectsWrongFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(s), 0o600)
		return p
	}
	cases := []struct {
		name, provider, file, want string
	}{
		{"codex login for anthropic", Anthropic, write("a.json", `{"tokens":{"access_token":"x"}}`), "serves the openai provider"},
		{"no token", Anthropic, write("b.json", `{"claudeAiOauth":{}}`), "log in with claude first"},
		{"unknown shape", OpenAI, write("c.json", `{"key":"x"}`), "not a Claude Code"},
		{"missing", OpenAI, filepath.Join(dir, "none.json"), "no such file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := New(Config{LogDir: t.TempDir(), Providers: map[string]Provider{c.provider: {OAuth: &OAuth{File: c.file}}}})
			if err == nil {
				g.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want %q", err, c.want)
			}
		})
	}
}
