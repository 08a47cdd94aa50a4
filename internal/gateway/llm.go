package gateway

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ptb-dev/ptb/internal/trace"
)

// maxLLMBody bounds a request body the LLM route reads (it must read the
// whole body to find the model before sending anything upstream).
const maxLLMBody = 64 << 20

type provider struct {
	name     string
	upstream *url.URL
	key      string
	oauth    *tokenSource
	trimV1   bool // Codex subscription: chatgpt.com/backend-api/codex has no /v1
}

func newProvider(name string, p Provider, g *Gateway) (*provider, error) {
	def, ok := defaultUpstream[name]
	if !ok {
		return nil, fmt.Errorf("provider %q: unknown; known: anthropic, gemini, openai", name)
	}
	if (p.Key == "") == (p.OAuth == nil) {
		return nil, fmt.Errorf("provider %s: set exactly one of Key and OAuth", name)
	}
	pv := &provider{name: name, key: p.Key}
	if p.OAuth != nil {
		ts, err := newTokenSource(name, *p.OAuth, g)
		if err != nil {
			return nil, fmt.Errorf("provider %s: %w", name, err)
		}
		pv.oauth = ts
		if ts.kind == OAuthCodex {
			pv.trimV1 = true
			def = "https://chatgpt.com/backend-api/codex"
		}
	}
	up := p.Upstream
	if up == "" {
		up = def
	}
	u, err := url.Parse(strings.TrimSuffix(up, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("provider %s: upstream %q: want an http(s) URL", name, up)
	}
	pv.upstream = u
	return pv, nil
}

// llmPaths are the API paths the LLM route forwards, per provider; others
// (batches, files, fine-tuning: spend the route could not meter) get 403.
var llmPaths = sync.OnceValue(func() map[string][]*regexp.Regexp {
	return map[string][]*regexp.Regexp{
		Anthropic: {
			regexp.MustCompile(`^/v1/messages$`),
			regexp.MustCompile(`^/v1/messages/count_tokens$`),
			regexp.MustCompile(`^/v1/models(/[^/]+)?$`),
		},
		OpenAI: {
			regexp.MustCompile(`^/v1/responses$`),
			regexp.MustCompile(`^/v1/responses/compact$`),
			regexp.MustCompile(`^/v1/chat/completions$`),
			regexp.MustCompile(`^/v1/models(/[^/]+)?$`),
		},
		Gemini: {
			regexp.MustCompile(`^/v1(alpha|beta)?/models/[^/:]+:(generateContent|streamGenerateContent|countTokens)$`),
			regexp.MustCompile(`^/v1(alpha|beta)?/models(/[^/:]+)?$`),
		},
	}
})

var geminiModel = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`/models/([^/:]+):`) })

// llmRequest is what the route learned from one request.
type llmRequest struct {
	provider string
	path     string // upstream API path, as the client sent it after /llm/{provider}
	model    string
	stream   bool
	body     []byte
}

func (g *Gateway) serveLLM(w http.ResponseWriter, r *http.Request) {
	start := g.now()
	rec := &LLMRecord{Time: g.stamp(start), Method: r.Method}
	rest := strings.TrimPrefix(r.URL.Path, "/llm/")
	name, apiPath, _ := strings.Cut(rest, "/")
	apiPath = "/" + apiPath
	rec.Provider, rec.Path = name, apiPath
	deny := func(status int, kind, msg string) {
		rec.Status, rec.Denied, rec.Reason = status, true, msg
		rec.DurationMS = ms(g.now().Sub(start))
		writeProviderError(w, name, status, kind, "ptb gateway: "+msg)
		g.mu.Lock()
		g.usage.Denied++
		g.mu.Unlock()
		g.llmLog.write(rec)
	}
	pv := g.providers[name]
	if pv == nil {
		deny(http.StatusForbidden, errPermission, fmt.Sprintf("provider %q is not enabled for this run (enabled: %s)", name, strings.Join(g.providerNames(), ", ")))
		return
	}
	if apiPath == "/" && (r.Method == http.MethodHead || r.Method == http.MethodGet) {
		// Claude Code checks its base URL is up with HEAD /: answered here.
		rec.Status, rec.Reason = http.StatusOK, "answered by the gateway"
		rec.DurationMS = ms(g.now().Sub(start))
		w.WriteHeader(http.StatusOK)
		g.llmLog.write(rec)
		return
	}
	if clean := path.Clean(apiPath); clean != apiPath || !pathAllowed(name, apiPath) {
		deny(http.StatusForbidden, errPermission, fmt.Sprintf("%s %s is not an API the gateway serves (it serves the %s model APIs only)", r.Method, apiPath, name))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxLLMBody+1))
	if err != nil {
		deny(http.StatusBadRequest, errInvalid, "read request body: "+err.Error())
		return
	}
	if len(body) > maxLLMBody {
		deny(http.StatusRequestEntityTooLarge, errInvalid, fmt.Sprintf("request body over %d bytes", maxLLMBody))
		return
	}
	rec.ReqBytes = int64(len(body))
	req := &llmRequest{provider: name, path: apiPath, body: body}
	if err := req.inspect(r); err != nil {
		deny(http.StatusBadRequest, errInvalid, err.Error())
		return
	}
	rec.Model, rec.Stream = req.model, req.stream
	if why := g.admit(r.Method, req); why != "" {
		deny(http.StatusForbidden, errPermission, why)
		return
	}
	g.forwardLLM(w, r, pv, req, rec, start)
}

func (g *Gateway) providerNames() []string {
	var names []string
	for _, n := range []string{Anthropic, Gemini, OpenAI} {
		if g.providers[n] != nil {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return []string{"none"}
	}
	return names
}

func pathAllowed(provider, p string) bool {
	for _, re := range llmPaths()[provider] {
		if re.MatchString(p) {
			return true
		}
	}
	return false
}

// inspect finds the model and the stream flag: Gemini names the model in
// the path, the others in the JSON body.
func (q *llmRequest) inspect(r *http.Request) error {
	if q.provider == Gemini {
		if m := geminiModel().FindStringSubmatch(q.path); m != nil {
			q.model = m[1]
		}
		q.stream = strings.Contains(q.path, ":streamGenerateContent")
		return nil
	}
	if r.Method != http.MethodPost || len(q.body) == 0 {
		return nil
	}
	b := q.body
	switch enc := strings.ToLower(r.Header.Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("gzip request body: %w", err)
		}
		b, err = io.ReadAll(io.LimitReader(zr, maxLLMBody+1))
		if err != nil {
			return fmt.Errorf("gzip request body: %w", err)
		}
		if len(b) > maxLLMBody {
			return fmt.Errorf("request body over %d bytes uncompressed", maxLLMBody)
		}
	default:
		return fmt.Errorf("request Content-Encoding %q: the gateway reads identity or gzip bodies", enc)
	}
	model, stream, err := topLevelModel(b)
	if err != nil {
		return err
	}
	q.model, q.stream = model, stream
	return nil
}

// topLevelModel reads the "model" and "stream" members of a JSON object,
// matching names exactly as the providers do, escapes decoded
// ("mod\u0065l" is "model"); encoding/json would also match "MODEL", and
// keep the last of two "model" members, either of which an upstream might
// use: a body with more than one "model" is refused. It scans the top level
// only (a request can be megabytes of conversation); the upstream parses
// the rest.
func topLevelModel(b []byte) (model string, stream bool, err error) {
	bad := func(why string, at int) (string, bool, error) {
		return "", false, fmt.Errorf("request body is not a JSON object: %s at byte %d", why, at)
	}
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return bad("it does not start with {", i)
	}
	i = skipWS(b, i+1)
	models := 0
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			if i >= len(b) || b[i] != '"' {
				return bad("want a member name", i)
			}
			end, esc := scanString(b, i)
			if end < 0 {
				return bad("unterminated string", i)
			}
			key := string(b[i+1 : end-1])
			if esc {
				if json.Unmarshal(b[i:end], &key) != nil {
					return bad("bad escape in a member name", i)
				}
			}
			i = skipWS(b, end)
			if i >= len(b) || b[i] != ':' {
				return bad("want :", i)
			}
			i = skipWS(b, i+1)
			vstart := i
			if i = skipValue(b, i); i < 0 {
				return bad("bad value", vstart)
			}
			switch key {
			case "model":
				models++
				if json.Unmarshal(b[vstart:i], &model) != nil {
					return "", false, errors.New("request \"model\" is not a string")
				}
			case "stream":
				stream = string(b[vstart:i]) == "true"
			}
			i = skipWS(b, i)
			if i < len(b) && b[i] == ',' {
				i = skipWS(b, i+1)
				continue
			}
			if i < len(b) && b[i] == '}' {
				i++
				break
			}
			return bad("want , or }", i)
		}
	}
	if j := skipWS(b, i); j != len(b) {
		return bad("data after the object", j)
	}
	if models > 1 {
		return "", false, errors.New("request body has more than one \"model\" member")
	}
	return model, stream, nil
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the index after the string starting at b[i] (a
// quote) and whether it has escapes; -1 if it does not end.
func scanString(b []byte, i int) (int, bool) {
	esc := false
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			esc = true
			j++
		case '"':
			return j + 1, esc
		}
	}
	return -1, esc
}

// skipValue returns the index after the JSON value at b[i], checking only
// its brackets and strings; -1 if it is cut short or unbalanced.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		end, _ := scanString(b, i)
		return end
	case '{', '[':
		var stack []byte
		for j := i; j < len(b); j++ {
			switch c := b[j]; c {
			case '"':
				end, _ := scanString(b, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				stack = append(stack, c)
			case '}', ']':
				if len(stack) == 0 || (c == '}') != (stack[len(stack)-1] == '{') {
					return -1
				}
				stack = stack[:len(stack)-1]
				if len(stack) == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && !strings.ContainsRune(",}] \t\r\n", rune(b[j])) {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// admit returns why a request is refused, or "".
func (g *Gateway) admit(method string, q *llmRequest) string {
	generates := method == http.MethodPost
	if len(g.cfg.AllowedModels) > 0 && (generates || q.model != "") {
		if q.model == "" {
			return "the request names no model, and this run allows only: " + strings.Join(g.cfg.AllowedModels, ", ")
		}
		if !g.modelAllowed(q.model) {
			return fmt.Sprintf("model %q is not allowed in this run; allowed: %s", q.model, strings.Join(g.cfg.AllowedModels, ", "))
		}
	}
	if g.cfg.SpendCapUSD > 0 && generates {
		g.mu.Lock()
		spent := g.usage.CostUSD
		g.mu.Unlock()
		if spent >= g.cfg.SpendCapUSD {
			return fmt.Sprintf("spend cap reached: $%.4f spent of the run's $%.2f cap; no further model requests are allowed in this run", spent, g.cfg.SpendCapUSD)
		}
		if q.model != "" && g.prices.Lookup(q.model) == nil && !strings.HasSuffix(q.path, "count_tokens") && !strings.HasSuffix(q.path, ":countTokens") {
			return fmt.Sprintf("model %q has no price in the gateway's price table, so its spend cannot be counted against the run's $%.2f cap", q.model, g.cfg.SpendCapUSD)
		}
	}
	return ""
}

func (g *Gateway) modelAllowed(model string) bool {
	m := strings.TrimPrefix(model, "models/")
	for _, pat := range g.cfg.AllowedModels {
		if ok, _ := matchGlob(strings.TrimPrefix(pat, "models/"), m); ok {
			return true
		}
	}
	return false
}

// matchGlob matches name against a path.Match pattern, case-insensitively.
func matchGlob(pattern, name string) (bool, error) {
	return path.Match(strings.ToLower(pattern), strings.ToLower(name))
}

// strippedRequestHeaders never go upstream: the sandbox's credentials and
// cookies, hop-by-hop headers, and what the gateway sets itself.
var strippedRequestHeaders = []string{
	"Authorization", "X-Api-Key", "X-Goog-Api-Key", "Api-Key", "Cookie", "Proxy-Authorization",
	"Openai-Organization", "Openai-Project", "Chatgpt-Account-Id", "X-Goog-User-Project",
	"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
	"Accept-Encoding", "Content-Length", "Host", "Expect", "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip",
}

// strippedResponseHeaders never go back to the sandbox.
var strippedResponseHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Set-Cookie", "Alt-Svc",
	"Openai-Organization", "Openai-Project", "Anthropic-Organization-Id", // who pays: none of the sandbox's business
}

func copyHeaders(dst, src http.Header, strip []string) {
	for k, vs := range src {
		dst[k] = append([]string(nil), vs...)
	}
	for _, k := range strip {
		dst.Del(k)
	}
	// headers named by Connection are hop-by-hop too
	for _, v := range src.Values("Connection") {
		for _, f := range strings.Split(v, ",") {
			dst.Del(strings.TrimSpace(f))
		}
	}
}

func (g *Gateway) upstreamRequest(ctx context.Context, r *http.Request, pv *provider, q *llmRequest, refresh bool) (*http.Request, error) {
	u := *pv.upstream
	p := q.path
	if pv.trimV1 {
		p = strings.TrimPrefix(p, "/v1")
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + p
	u.RawPath = ""
	qv := r.URL.Query()
	qv.Del("key") // Gemini's query-string key
	u.RawQuery = qv.Encode()
	out, err := http.NewRequestWithContext(ctx, r.Method, u.String(), bytes.NewReader(q.body))
	if err != nil {
		return nil, err
	}
	copyHeaders(out.Header, r.Header, strippedRequestHeaders)
	out.ContentLength = int64(len(q.body))
	if pv.oauth != nil {
		tok, err := pv.oauth.token(ctx, refresh)
		if err != nil {
			return nil, err
		}
		out.Header.Set("Authorization", "Bearer "+tok.access)
		switch pv.oauth.kind {
		case OAuthClaude:
			addBeta(out.Header, "oauth-2025-04-20")
		case OAuthCodex:
			if tok.account != "" {
				out.Header.Set("Chatgpt-Account-Id", tok.account)
			}
		}
		return out, nil
	}
	switch pv.name {
	case Anthropic:
		out.Header.Set("X-Api-Key", pv.key)
	case OpenAI:
		out.Header.Set("Authorization", "Bearer "+pv.key)
	case Gemini:
		out.Header.Set("X-Goog-Api-Key", pv.key)
	}
	return out, nil
}

func addBeta(h http.Header, beta string) {
	for _, v := range h.Values("Anthropic-Beta") {
		for _, f := range strings.Split(v, ",") {
			if strings.TrimSpace(f) == beta {
				return
			}
		}
	}
	h.Add("Anthropic-Beta", beta)
}

func (g *Gateway) forwardLLM(w http.ResponseWriter, r *http.Request, pv *provider, q *llmRequest, rec *LLMRecord, start time.Time) {
	ctx := r.Context()
	var resp *http.Response
	for attempt := 0; ; attempt++ {
		out, err := g.upstreamRequest(ctx, r, pv, q, attempt > 0)
		if err == nil {
			resp, err = g.client.Do(out)
		}
		if err != nil {
			rec.Status, rec.Reason = http.StatusBadGateway, "upstream: "+err.Error()
			rec.DurationMS = ms(g.now().Sub(start))
			writeProviderError(w, pv.name, http.StatusBadGateway, errUpstream, "ptb gateway: upstream request failed: "+err.Error())
			g.llmLog.write(rec)
			return
		}
		// An expired subscription token: refresh once and retry.
		if resp.StatusCode == http.StatusUnauthorized && pv.oauth != nil && attempt == 0 {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			continue
		}
		break
	}
	defer resp.Body.Close()
	g.mu.Lock()
	g.usage.Requests++
	g.mu.Unlock()

	copyHeaders(w.Header(), resp.Header, strippedResponseHeaders)
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	m := newMeter(pv.name, ct == "text/event-stream")
	rec.Stream = m.sse
	rec.Status = resp.StatusCode
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)
	rc.Flush()
	buf := make([]byte, 32<<10)
	var copyErr error
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if rec.FirstByteMS == 0 {
				rec.FirstByteMS = ms(g.now().Sub(start))
			}
			m.write(buf[:n])
			if _, werr := w.Write(buf[:n]); werr != nil {
				copyErr = fmt.Errorf("write to client: %w", werr)
				break
			}
			rec.RespBytes += int64(n)
			rc.Flush()
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			copyErr = fmt.Errorf("read upstream: %w", err)
			break
		}
	}
	u, served := m.finish()
	if copyErr != nil {
		rec.Reason = copyErr.Error()
	} else if resp.StatusCode >= 400 {
		rec.Reason = upstreamMessage(m.body)
	}
	if served != "" && served != q.model {
		rec.ServedBy = served
	}
	priced := q.model
	if served != "" {
		priced = served
	}
	rec.InputTok, rec.OutputTok, rec.CachedTok, rec.CacheWrTok, rec.Reasoning =
		u.InputTokens, u.OutputTokens, u.CachedInputTokens, u.CacheWriteInputTokens, u.ReasoningTokens
	if u != (trace.Usage{}) {
		rec.CostUSD = g.prices.Cost(priced, u)
	}
	rec.DurationMS = ms(g.now().Sub(start))
	g.meter(priced, u, rec.CostUSD)
	g.llmLog.write(rec)
	if copyErr != nil {
		// the client sees a cut stream; nothing more to send
		return
	}
}

// meter adds one response's usage to the totals.
func (g *Gateway) meter(model string, u trace.Usage, cost *float64) {
	if u == (trace.Usage{}) {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.usage.Tokens.Add(u)
	mu := g.usage.Models[model]
	if mu == nil {
		mu = &ModelUsage{}
		g.usage.Models[model] = mu
	}
	mu.Requests++
	mu.Tokens.Add(u)
	if cost == nil {
		g.usage.Unpriced++
		return
	}
	g.usage.CostUSD += *cost
	if mu.CostUSD == nil {
		mu.CostUSD = new(float64)
	}
	*mu.CostUSD += *cost
}

// upstreamMessage pulls an error message out of a provider error body.
func upstreamMessage(body []byte) string {
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && len(e.Error) > 0 {
		var inner struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(e.Error, &inner) == nil && inner.Message != "" {
			return "upstream: " + truncate(inner.Message, 500)
		}
		var s string
		if json.Unmarshal(e.Error, &s) == nil {
			return "upstream: " + truncate(s, 500)
		}
	}
	return "upstream: " + truncate(string(body), 200)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Error kinds, mapped to each provider's error type.
const (
	errPermission = "permission"
	errInvalid    = "invalid"
	errUpstream   = "upstream"
)

// writeProviderError answers in the provider's own error JSON, so the
// agent's CLI shows the message.
func writeProviderError(w http.ResponseWriter, provider string, status int, kind, msg string) {
	var v any
	switch provider {
	case Anthropic:
		t := map[string]string{errPermission: "permission_error", errInvalid: "invalid_request_error", errUpstream: "api_error"}[kind]
		v = map[string]any{"type": "error", "error": map[string]any{"type": t, "message": msg}}
	case Gemini:
		st := map[string]string{errPermission: "PERMISSION_DENIED", errInvalid: "INVALID_ARGUMENT", errUpstream: "UNAVAILABLE"}[kind]
		v = map[string]any{"error": map[string]any{"code": status, "message": msg, "status": st}}
	default: // OpenAI, and unknown providers
		t := map[string]string{errPermission: "permission_error", errInvalid: "invalid_request_error", errUpstream: "api_error"}[kind]
		v = map[string]any{"error": map[string]any{"message": msg, "type": t, "param": nil, "code": "ptb_gateway_" + kind}}
	}
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Ptb-Gateway", "denied")
	w.WriteHeader(status)
	w.Write(b)
}

var errNoToken = errors.New("no access token")
