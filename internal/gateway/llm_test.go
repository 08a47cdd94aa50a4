package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/modelserver"
)

const realKey = "sk-real-secret-0123456789"

// seen records what an upstream received.
type seen struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (s *seen) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.reqs = append(s.reqs, r.Clone(r.Context()))
		s.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (s *seen) last(t *testing.T) *http.Request {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) == 0 {
		t.Fatal("upstream received no request")
	}
	return s.reqs[len(s.reqs)-1]
}

func (s *seen) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

// startGateway serves a gateway for cfg on a loopback port and returns it
// with its base URL. The gateway is closed at cleanup (Close is idempotent;
// tests close it early to read the flushed logs).
func startGateway(t testing.TB, cfg Config) (*Gateway, string) {
	t.Helper()
	if cfg.LogDir == "" {
		cfg.LogDir = filepath.Join(t.TempDir(), "gateway")
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve(ln) }()
	t.Cleanup(func() {
		g.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return g, "http://" + ln.Addr().String()
}

func readLog[T any](t *testing.T, path string) []T {
	t.Helper()
	var out []T
	err := ReadLog(path, func(rec T, line int, lerr error) error {
		if lerr != nil {
			return lerr
		}
		out = append(out, rec)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func scripted(t *testing.T) (*seen, string) {
	t.Helper()
	s := &seen{}
	srv := httptest.NewServer(s.wrap(modelserver.New(nil, nil)))
	t.Cleanup(srv.Close)
	return s, srv.URL
}

func price(in, out int64, pin, pout float64) float64 {
	return (float64(in)*pin + float64(out)*pout) / 1e6
}

func TestLLMRouteForwardsWithRealKeyAndMeters(t *testing.T) {
	up, upURL := scripted(t)
	cases := []struct {
		name, path, body, model string
		header                  [2]string // the placeholder credential the sandbox sends
		wantPath                string    // upstream path and query
		wantAuth                [2]string // header and value upstream must get
		wantStream              bool
		wantCost                float64
	}{
		{"anthropic stream", "/llm/anthropic/v1/messages?beta=true",
			`{"model":"claude-sonnet-4-5","stream":true,"max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, "claude-sonnet-4-5",
			[2]string{"x-api-key", Placeholder}, "/v1/messages?beta=true", [2]string{"X-Api-Key", realKey}, true, price(123, 45, 3, 15)},
		{"anthropic json", "/llm/anthropic/v1/messages",
			`{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, "claude-haiku-4-5",
			[2]string{"Authorization", "Bearer " + Placeholder}, "/v1/messages", [2]string{"X-Api-Key", realKey}, false, price(123, 45, 1, 5)},
		{"openai responses stream", "/llm/openai/v1/responses",
			`{"model":"gpt-5","stream":true,"input":"hi"}`, "gpt-5",
			[2]string{"Authorization", "Bearer " + Placeholder}, "/v1/responses", [2]string{"Authorization", "Bearer " + realKey}, true, price(123, 45, 1.25, 10)},
		{"openai chat stream", "/llm/openai/v1/chat/completions",
			`{"model":"gpt-5-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`, "gpt-5-mini",
			[2]string{"Authorization", "Bearer " + Placeholder}, "/v1/chat/completions", [2]string{"Authorization", "Bearer " + realKey}, true, price(123, 45, 0.25, 2)},
		{"gemini sse", "/llm/gemini/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse&key=" + Placeholder,
			`{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`, "gemini-2.5-pro",
			[2]string{"x-goog-api-key", Placeholder}, "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse", [2]string{"X-Goog-Api-Key", realKey}, true, price(123, 45, 1.25, 10)},
		{"gemini json", "/llm/gemini/v1beta/models/gemini-2.5-flash:generateContent",
			`{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`, "gemini-2.5-flash",
			[2]string{"x-goog-api-key", Placeholder}, "/v1beta/models/gemini-2.5-flash:generateContent", [2]string{"X-Goog-Api-Key", realKey}, false, price(123, 45, 0.30, 2.5)},
	}
	providers := map[string]Provider{
		Anthropic: {Upstream: upURL, Key: realKey},
		OpenAI:    {Upstream: upURL, Key: realKey},
		Gemini:    {Upstream: upURL, Key: realKey},
	}
	dir := filepath.Join(t.TempDir(), "gateway")
	g, base := startGateway(t, Config{LogDir: dir, Providers: providers})
	var wantTotal float64
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, base+c.path, strings.NewReader(c.body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(c.header[0], c.header[1])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if got := strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"); got != c.wantStream {
				t.Errorf("stream = %v, want %v (Content-Type %q)", got, c.wantStream, resp.Header.Get("Content-Type"))
			}
			if !strings.Contains(string(body), "45") {
				t.Errorf("response body lacks the usage: %s", body)
			}
			r := up.last(t)
			if got := r.URL.RequestURI(); got != c.wantPath {
				t.Errorf("upstream path %q, want %q", got, c.wantPath)
			}
			if got := r.Header.Get(c.wantAuth[0]); got != c.wantAuth[1] {
				t.Errorf("upstream %s = %q, want the real credential", c.wantAuth[0], got)
			}
			for k, vs := range r.Header {
				for _, v := range vs {
					if strings.Contains(v, Placeholder) {
						t.Errorf("upstream header %s carries the sandbox's placeholder %q", k, v)
					}
				}
			}
			if strings.Contains(r.URL.RawQuery, Placeholder) {
				t.Errorf("upstream query carries the placeholder: %s", r.URL.RawQuery)
			}
		})
		wantTotal += c.wantCost
	}
	// A response's usage is metered once its handler ends, which may be
	// after the client has the last byte: read it after Close.
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	u := g.Usage()
	recs := readLog[LLMRecord](t, filepath.Join(dir, LLMLogFile))
	if len(recs) != len(cases) {
		t.Fatalf("%d log lines, want %d", len(recs), len(cases))
	}
	for i, c := range cases {
		r := recs[i]
		if r.Model != c.model || r.Status != 200 || r.InputTok != 123 || r.OutputTok != 45 || r.Stream != c.wantStream || r.Denied {
			t.Errorf("%s: log %+v", c.name, r)
		}
		if r.CostUSD == nil || math.Abs(*r.CostUSD-c.wantCost) > 1e-12 {
			t.Errorf("%s: cost %v, want %v", c.name, r.CostUSD, c.wantCost)
		}
		if r.RespBytes == 0 || r.ReqBytes != int64(len(c.body)) {
			t.Errorf("%s: bytes in %d out %d", c.name, r.ReqBytes, r.RespBytes)
		}
	}
	if u.Requests != len(cases) || u.Tokens.InputTokens != 123*int64(len(cases)) || math.Abs(u.CostUSD-wantTotal) > 1e-12 {
		t.Errorf("usage %+v, want %d requests, cost %v", u, len(cases), wantTotal)
	}
	if m := u.Models["gpt-5"]; m == nil || m.Requests != 1 || m.Tokens.OutputTokens != 45 {
		t.Errorf("usage for gpt-5: %+v", m)
	}
}

// The route flushes every chunk as it comes: the client reads the first
// event while the upstream still holds back the rest.
func TestLLMRouteStreamsUnbuffered(t *testing.T) {
	release := make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		fmt.Fprint(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":90,\"cache_creation_input_tokens\":5,\"output_tokens\":1}}}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":7}}\n\n")
	}))
	defer upstream.Close()
	defer close(release)
	dir := filepath.Join(t.TempDir(), "gw")
	g, base := startGateway(t, Config{LogDir: dir, Providers: map[string]Provider{Anthropic: {Upstream: upstream.URL, Key: realKey}}})
	// A buffering route would hold back the headers too: bound the wait.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/llm/anthropic/v1/messages", strings.NewReader(`{"model":"claude-sonnet-4-5","stream":true}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%v: the route buffers the response", err)
	}
	defer resp.Body.Close()
	first := make(chan string, 1)
	go func() {
		br := bufio.NewReader(resp.Body)
		l, _ := br.ReadString('\n')
		first <- l
	}()
	select {
	case l := <-first:
		if l != "event: message_start\n" {
			t.Fatalf("first line %q", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first event did not come through while upstream held the rest: the route buffers")
	}
	release <- struct{}{}
	io.Copy(io.Discard, resp.Body)
	g.Close()
	recs := readLog[LLMRecord](t, filepath.Join(dir, LLMLogFile))
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	r := recs[0]
	// Anthropic input excludes the cache; the record counts it in.
	if r.InputTok != 105 || r.CachedTok != 90 || r.CacheWrTok != 5 || r.OutputTok != 7 {
		t.Errorf("tokens %+v", r)
	}
	want := (10*3.0 + 90*0.30 + 5*3.75 + 7*15.0) / 1e6
	if r.CostUSD == nil || math.Abs(*r.CostUSD-want) > 1e-12 {
		t.Errorf("cost %v, want %v", r.CostUSD, want)
	}
}

func TestLLMRouteDenies(t *testing.T) {
	up, upURL := scripted(t)
	providers := map[string]Provider{Anthropic: {Upstream: upURL, Key: realKey}, OpenAI: {Upstream: upURL, Key: realKey}, Gemini: {Upstream: upURL, Key: realKey}}
	cases := []struct {
		name       string
		cfg        Config
		method     string
		path, body string
		wantStatus int
		wantInBody string // in the provider-shaped error message
		wantShape  string // a JSON path the provider's error has
	}{
		{"model not allowed", Config{AllowedModels: []string{"claude-sonnet-*"}}, "POST", "/llm/anthropic/v1/messages",
			`{"model":"claude-opus-4-5","max_tokens":1}`, 403, `model \"claude-opus-4-5\" is not allowed`, `"type":"permission_error"`},
		{"gemini model not allowed", Config{AllowedModels: []string{"gemini-2.5-flash"}}, "POST", "/llm/gemini/v1beta/models/gemini-2.5-pro:generateContent",
			`{}`, 403, `model \"gemini-2.5-pro\" is not allowed`, `"status":"PERMISSION_DENIED"`},
		{"no model under allowlist", Config{AllowedModels: []string{"gpt-5"}}, "POST", "/llm/openai/v1/responses",
			`{"input":"hi"}`, 403, "names no model", `"code":"ptb_gateway_permission"`},
		{"batches are not served", Config{}, "POST", "/llm/anthropic/v1/messages/batches",
			`{"requests":[]}`, 403, "not an API the gateway serves", `"type":"error"`},
		{"files are not served", Config{}, "POST", "/llm/openai/v1/files", `{}`, 403, "not an API the gateway serves", `"error"`},
		{"fine-tuning is not served", Config{}, "POST", "/llm/openai/v1/fine_tuning/jobs", `{}`, 403, "not an API the gateway serves", `"error"`},
		{"dot segments", Config{}, "POST", "/llm/openai/v1/chat/completions/../../files", `{}`, 403, "not an API", `"error"`},
		{"provider not enabled", Config{Providers: map[string]Provider{OpenAI: {Upstream: upURL, Key: realKey}}}, "POST", "/llm/anthropic/v1/messages",
			`{"model":"claude-sonnet-4-5"}`, 403, `provider \"anthropic\" is not enabled`, `"permission_error"`},
		{"unpriced model under a cap", Config{SpendCapUSD: 1}, "POST", "/llm/openai/v1/chat/completions",
			`{"model":"some-free-model"}`, 403, "has no price", `"error"`},
		{"not JSON", Config{}, "POST", "/llm/openai/v1/chat/completions", `model=gpt-5`, 400, "not a JSON object", `"invalid_request_error"`},
		{"case-folded model smuggling", Config{AllowedModels: []string{"gpt-5-mini"}}, "POST", "/llm/openai/v1/chat/completions",
			`{"model":"gpt-5","MODEL":"gpt-5-mini"}`, 403, `model \"gpt-5\" is not allowed`, `"error"`},
		{"duplicate model smuggling", Config{AllowedModels: []string{"gpt-5-mini"}}, "POST", "/llm/openai/v1/chat/completions",
			`{"model":"gpt-5-mini","model":"gpt-5"}`, 400, "more than one", `"error"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			if cfg.Providers == nil {
				cfg.Providers = providers
			}
			cfg.LogDir = filepath.Join(t.TempDir(), "gw")
			g, base := startGateway(t, cfg)
			before := up.count()
			req, _ := http.NewRequest(c.method, base+c.path, strings.NewReader(c.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.wantStatus || !strings.Contains(string(body), c.wantInBody) || !strings.Contains(string(body), c.wantShape) {
				t.Errorf("got %d %s; want %d with %q and %q", resp.StatusCode, body, c.wantStatus, c.wantInBody, c.wantShape)
			}
			if !json.Valid(body) {
				t.Errorf("error body is not JSON: %s", body)
			}
			if up.count() != before {
				t.Errorf("a denied request reached the upstream")
			}
			g.Close()
			recs := readLog[LLMRecord](t, filepath.Join(cfg.LogDir, LLMLogFile))
			if len(recs) != 1 || !recs[0].Denied || recs[0].Reason == "" || recs[0].Status != c.wantStatus {
				t.Errorf("log %+v", recs)
			}
		})
	}
}

func TestLLMRouteSpendCap(t *testing.T) {
	_, upURL := scripted(t)
	// One request costs 123*3/1e6 + 45*15/1e6 = $0.001044; a cap of $0.0015
	// lets one through, and the second request finds $0.001044 spent (under)
	// and passes, the third finds $0.002088 (over) and is refused.
	dir := filepath.Join(t.TempDir(), "gw")
	g, base := startGateway(t, Config{LogDir: dir, SpendCapUSD: 0.0015, Providers: map[string]Provider{Anthropic: {Upstream: upURL, Key: realKey}}})
	var statuses []int
	var last string
	for i := range 3 {
		// a response is metered just after its last byte: wait for it
		for deadline := time.Now().Add(10 * time.Second); g.Usage().Tokens.OutputTokens < 45*int64(min(i, 2)) && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		resp, err := http.Post(base+"/llm/anthropic/v1/messages", "application/json",
			strings.NewReader(`{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
		last = string(b)
	}
	if fmt.Sprint(statuses) != "[200 200 403]" {
		t.Fatalf("statuses %v, want [200 200 403]", statuses)
	}
	if !strings.Contains(last, "spend cap reached") || !strings.Contains(last, "$0.0021 spent of the run's $0.00 cap") && !strings.Contains(last, "$0.0021 spent") {
		t.Errorf("cap error: %s", last)
	}
	if u := g.Usage(); u.Requests != 2 || u.Denied != 1 {
		t.Errorf("usage %+v", u)
	}
}

// Upstream failures reach the agent in the provider's error shape, and are
// logged.
func TestLLMRouteUpstreamDown(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	dir := filepath.Join(t.TempDir(), "gw")
	g, base := startGateway(t, Config{LogDir: dir, Providers: map[string]Provider{Gemini: {Upstream: dead, Key: realKey}}})
	resp, err := http.Post(base+"/llm/gemini/v1beta/models/gemini-2.5-pro:generateContent", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 502 || !strings.Contains(string(b), `"UNAVAILABLE"`) {
		t.Errorf("got %d %s", resp.StatusCode, b)
	}
	if strings.Contains(string(b), realKey) {
		t.Errorf("error leaks the key: %s", b)
	}
	g.Close()
	recs := readLog[LLMRecord](t, filepath.Join(dir, LLMLogFile))
	if len(recs) != 1 || recs[0].Status != 502 || !strings.Contains(recs[0].Reason, "upstream") {
		t.Errorf("log %+v", recs)
	}
}

func TestEnvHasNoRealCredential(t *testing.T) {
	g, _ := startGateway(t, Config{Providers: map[string]Provider{
		Anthropic: {Key: realKey}, OpenAI: {Key: realKey + "o"}, Gemini: {Key: realKey + "g"}},
		Hub: HubConfig{Token: "hf_realtoken"}})
	env := g.Env("http://127.0.0.1:18080/")
	want := map[string]string{
		"ANTHROPIC_BASE_URL":     "http://127.0.0.1:18080/llm/anthropic",
		"OPENAI_BASE_URL":        "http://127.0.0.1:18080/llm/openai/v1",
		"GOOGLE_GEMINI_BASE_URL": "http://127.0.0.1:18080/llm/gemini",
		"HF_ENDPOINT":            "http://127.0.0.1:18080/hub",
		"HTTPS_PROXY":            "http://127.0.0.1:18080",
		"ANTHROPIC_API_KEY":      Placeholder,
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	for k, v := range env {
		if strings.Contains(v, "real") {
			t.Errorf("%s carries a real credential: %q", k, v)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no log dir", Config{}, "LogDir"},
		{"unknown provider", Config{Providers: map[string]Provider{"mistral": {Key: "k"}}}, "unknown"},
		{"no key", Config{Providers: map[string]Provider{OpenAI: {}}}, "exactly one of Key and OAuth"},
		{"bad upstream", Config{Providers: map[string]Provider{OpenAI: {Key: "k", Upstream: "ftp://x"}}}, "want an http(s) URL"},
		{"bad glob", Config{AllowedModels: []string{"[claude"}}, "allowed model"},
		{"bad deny", Config{Hub: HubConfig{Deny: []DenyRule{{Repo: "x/y"}}}}, "repo and reason are required"},
		{"bad deny type", Config{Hub: HubConfig{Deny: []DenyRule{{Repo: "x/y", Type: "models", Reason: "r"}}}}, `type "models"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.name != "no log dir" {
				c.cfg.LogDir = t.TempDir()
			}
			g, err := New(c.cfg)
			if err == nil {
				g.Close()
				t.Fatalf("no error, want one with %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want %q", err, c.want)
			}
		})
	}
}

// The allowlist reads "model" as the providers do: exact name, one member.
func TestTopLevelModel(t *testing.T) {
	cases := []struct {
		body, model string
		stream      bool
		err         string
	}{
		{`{"model":"gpt-5","stream":true}`, "gpt-5", true, ""},
		{`{"messages":[{"model":"inner"}],"model":"gpt-5"}`, "gpt-5", false, ""},
		{`{"MODEL":"gpt-5","model":"claude-opus-4-5"}`, "claude-opus-4-5", false, ""},
		{`{"model":"gpt-5","model":"claude-opus-4-5"}`, "", false, "more than one"},
		{`{"model":5}`, "", false, "not a string"},
		{`[1]`, "", false, "does not start with {"},
		{`{"model":"x"`, "", false, "not a JSON object"},
		{`{"mod\u0065l":"gpt-5"}`, "gpt-5", false, ""},
		{`{"mod\u0065l":"gpt-5","model":"gpt-5-mini"}`, "", false, "more than one"},
		{`{"a":"}{\"model\":\"x\"","b":[{"c":"]"}],"model":"m"}`, "m", false, ""},
		{`{"model":"m"} {"model":"n"}`, "", false, "data after the object"},
		{` { } `, "", false, ""},
		{`{"stream":false,"model":"m"}`, "m", false, ""},
	}
	for _, c := range cases {
		m, s, err := topLevelModel([]byte(c.body))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.body, err, c.err)
			}
			continue
		}
		if err != nil || m != c.model || s != c.stream {
			t.Errorf("%s: got %q %v %v, want %q %v", c.body, m, s, err, c.model, c.stream)
		}
	}
}

// For every valid JSON object, topLevelModel reads what a strict parser
// reads: the exactly named top-level "model" (escapes decoded).
func FuzzTopLevelModel(f *testing.F) {
	for _, s := range []string{`{"model":"gpt-5","stream":true}`, `{"mod\u0065l":"a"}`, `{"a":{"model":"b"},"model":"c"}`,
		`{"x":[1,2,{"y":"]"}],"model":"d"}`, `{"model":"a","model":"b"}`, `{"Model":"a"}`, `{}`, `[]`, `{"a":1e5,"b":null,"model":"z"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		model, stream, err := topLevelModel(b)
		if !json.Valid(b) {
			return // the upstream refuses it; whatever the scan said
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		tok, _ := dec.Token()
		if d, ok := tok.(json.Delim); !ok || d != '{' {
			if err == nil {
				t.Fatalf("%q: not an object, but no error", b)
			}
			return
		}
		var wantModel string
		var wantStream bool
		models, modelErr := 0, false
		for dec.More() {
			k, _ := dec.Token()
			var v json.RawMessage
			dec.Decode(&v)
			switch k.(string) {
			case "model":
				models++
				if json.Unmarshal(v, &wantModel) != nil {
					modelErr = true
				}
			case "stream":
				wantStream = string(v) == "true"
			}
		}
		switch {
		case models > 1 || modelErr:
			if err == nil {
				t.Fatalf("%q: no error, want one", b)
			}
		case err != nil:
			t.Fatalf("%q: %v", b, err)
		case model != wantModel || stream != wantStream:
			t.Fatalf("%q: got %q %v, want %q %v", b, model, stream, wantModel, wantStream)
		}
	})
}

// Close during a stream ends it, and the request is still logged.
func TestCloseDuringStream(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	}))
	defer upstream.Close()
	dir := filepath.Join(t.TempDir(), "gw")
	g, base := startGateway(t, Config{LogDir: dir, Providers: map[string]Provider{Anthropic: {Upstream: upstream.URL, Key: realKey}}})
	resp, err := http.Post(base+"/llm/anthropic/v1/messages", "application/json", strings.NewReader(`{"model":"claude-sonnet-4-5","stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	bufio.NewReader(resp.Body).ReadString('\n')
	closeWithin(t, g, "Close waited for an endless stream")
	recs := readLog[LLMRecord](t, filepath.Join(dir, LLMLogFile))
	if len(recs) != 1 || recs[0].InputTok != 3 || recs[0].Reason == "" {
		t.Errorf("records %+v", recs)
	}
}

// closeWithin closes g, failing with msg when Close does not return
// within 20 s (it must end open streams and tunnels itself).
func closeWithin(t *testing.T, g *Gateway, msg string) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- g.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal(msg)
	}
}
