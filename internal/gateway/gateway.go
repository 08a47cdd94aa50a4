// Package gateway is the per-run gateway: the sandbox's only way out. It
// serves one HTTP listener (in ptb run, a unix socket the sandbox reaches
// through a relay on 127.0.0.1) with four parts:
//
//   - the LLM route, /llm/{anthropic,openai,gemini}/...: forwards the
//     agent's model requests to the provider with the real credential
//     (which never enters the sandbox), streams responses through
//     unbuffered, meters tokens and cost from the responses, and enforces a
//     model allowlist and a spend cap;
//   - the hub route, /hub/...: HF_ENDPOINT for the sandbox; forwards to the
//     hub with the harness's token, follows CDN redirects itself, logs every
//     repo, revision, file and byte count, and refuses denied repos (the
//     instruct checkpoints and benchmark test sets) with 403 and a reason;
//   - the grading route, POST /grade: a grade for one benchmark sample from
//     the Grader, never a raw judge completion;
//   - the egress proxy: every absolute-form request and CONNECT, allowed or
//     denied by host rules, one log line per connection.
//
// Everything is logged as JSON lines under Config.LogDir (llm.jsonl,
// hub.jsonl, egress.jsonl, grade.jsonl; docs/RUN_DIR.md). The record types
// and their streaming readers (ReadHubLog, ...) are in log.go; the package
// imports only trace and registry from ptb, so the audit can import it to
// read the logs.
package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ptb-dev/ptb/internal/trace"
)

// Provider names: the path segment after /llm/.
const (
	Anthropic = "anthropic"
	OpenAI    = "openai"
	Gemini    = "gemini"
)

// Default upstreams, the providers' public APIs.
var defaultUpstream = map[string]string{
	Anthropic: "https://api.anthropic.com",
	OpenAI:    "https://api.openai.com",
	Gemini:    "https://generativelanguage.googleapis.com",
}

// Placeholder is the credential the sandbox gets: clients need some key to
// start, and the gateway replaces whatever they send.
const Placeholder = "ptb-placeholder-key"

// Config configures a Gateway. The zero value of every field but LogDir is
// usable: no providers, the public hub without a token and no deny list,
// the default egress rules, no grader.
type Config struct {
	// LogDir is where the logs are appended (the run directory's gateway/);
	// created if missing. Required.
	LogDir string
	// Providers enables the LLM route per provider name (Anthropic, OpenAI,
	// Gemini). A provider missing here answers 403.
	Providers map[string]Provider
	// AllowedModels, when not empty, are the model names (or globs, as
	// path.Match: "claude-*") the LLM route lets through; others get 403.
	// A "models/" prefix (Gemini) is ignored.
	AllowedModels []string
	// SpendCapUSD, when > 0, refuses LLM requests once the cost metered so
	// far reaches it. Requests in flight when it is reached still finish, so
	// the spend may pass the cap by those.
	SpendCapUSD float64
	// Prices prices tokens (nil: trace.DefaultPrices()). A model without a
	// price has a null cost; under a spend cap it is refused, since its
	// spend could not be counted.
	Prices *trace.PriceTable
	// Hub configures the hub route.
	Hub HubConfig
	// Egress configures the egress proxy.
	Egress EgressConfig
	// Grader answers the grading route; nil: /grade answers 404.
	Grader Grader
	// GradeLimit, when > 0, caps the grading requests of the run (each
	// costs a judge call); later ones get 429.
	GradeLimit int
	// Transport carries the LLM and hub routes' upstream requests (nil: a
	// transport of its own, proxy from the harness's environment). Tests
	// point it at httptest servers.
	Transport http.RoundTripper
	// Logger gets the gateway's own errors (nil: discarded).
	Logger *slog.Logger
	// Now is the clock (nil: time.Now); tests fix it.
	Now func() time.Time
}

// Provider is one LLM provider's upstream and credential. Exactly one of
// Key and OAuth is set.
type Provider struct {
	// Upstream is the base URL the path after /llm/{provider} is appended
	// to ("": the public API; for an OAuth Codex login,
	// https://chatgpt.com/backend-api/codex, where a leading /v1 of the path
	// is dropped).
	Upstream string
	// Key is the real API key: sent as x-api-key (Anthropic), Authorization:
	// Bearer (OpenAI) or x-goog-api-key (Gemini).
	Key string
	// OAuth is a subscription login the gateway holds and refreshes.
	OAuth *OAuth
}

// Grader grades one benchmark sample with the real judge key. It must
// return only the grade, never the judge's completion.
type Grader interface {
	Grade(ctx context.Context, benchmark, sampleID, response string) (Grade, error)
}

// Grade is what the grading route returns for one sample.
type Grade struct {
	// Score is the sample's score in the benchmark's own scale (ArenaHard:
	// the verdict's score; HealthBench: the rubric fraction).
	Score float64 `json:"score"`
	// Label is a short verdict when the benchmark has one ("A>>B"), else "".
	Label string `json:"label,omitempty"`
}

// Usage is what the LLM route metered: per model and in total.
type Usage struct {
	Requests int                    `json:"requests"` // requests sent upstream
	Denied   int                    `json:"denied"`   // requests refused by the gateway
	Tokens   trace.Usage            `json:"tokens"`
	CostUSD  float64                `json:"cost_usd"` // sum over priced requests
	Unpriced int                    `json:"unpriced"` // requests with usage but no price
	Models   map[string]*ModelUsage `json:"models"`
}

// ModelUsage is one model's share of Usage.
type ModelUsage struct {
	Requests int         `json:"requests"`
	Tokens   trace.Usage `json:"tokens"`
	CostUSD  *float64    `json:"cost_usd"` // null when the model has no price
}

// Gateway is a running gateway; it is an http.Handler.
type Gateway struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	client *http.Client // upstream, no redirects followed
	prices *trace.PriceTable

	llmLog, hubLog, egressLog, gradeLog *logWriter

	providers map[string]*provider
	hub       *hubRoute
	egress    *egressProxy

	mu     sync.Mutex
	usage  Usage
	grades int // grading requests admitted

	smu     sync.Mutex
	servers []*http.Server
	closed  bool
	active  sync.WaitGroup // handlers running, hijacked tunnels included
	ctx     context.Context
	cancel  context.CancelFunc
}

var _ http.Handler = (*Gateway)(nil)

// New checks cfg and opens the logs. The caller must Close the gateway.
func New(cfg Config) (*Gateway, error) {
	if cfg.LogDir == "" {
		return nil, errors.New("new gateway: Config.LogDir is empty")
	}
	if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("new gateway: %w", err)
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger, now: cfg.Now, prices: cfg.Prices, providers: map[string]*provider{}}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.prices == nil {
		g.prices = trace.DefaultPrices()
	}
	for _, m := range cfg.AllowedModels {
		if _, err := matchGlob(m, ""); err != nil {
			return nil, fmt.Errorf("new gateway: allowed model %q: %w", m, err)
		}
	}
	tr := cfg.Transport
	if tr == nil {
		tr = &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true,
			MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 30 * time.Second}
	}
	g.client = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for name, p := range cfg.Providers {
		pv, err := newProvider(name, p, g)
		if err != nil {
			return nil, fmt.Errorf("new gateway: %w", err)
		}
		g.providers[name] = pv
	}
	var err error
	if g.hub, err = newHubRoute(cfg.Hub, g); err != nil {
		return nil, fmt.Errorf("new gateway: %w", err)
	}
	if g.egress, err = newEgressProxy(cfg.Egress, g); err != nil {
		return nil, fmt.Errorf("new gateway: %w", err)
	}
	g.usage.Models = map[string]*ModelUsage{}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	for _, l := range []struct {
		w    **logWriter
		name string
	}{{&g.llmLog, LLMLogFile}, {&g.hubLog, HubLogFile}, {&g.egressLog, EgressLogFile}, {&g.gradeLog, GradeLogFile}} {
		if *l.w, err = openLog(cfg.LogDir, l.name); err != nil {
			g.closeLogs()
			return nil, fmt.Errorf("new gateway: %w", err)
		}
	}
	return g, nil
}

// Serve serves HTTP on ln until Close; it returns nil after Close (and at
// once, closing ln, when called after Close). Origin-
// form requests go to the routes, absolute-form requests and CONNECT to the
// egress proxy. Serve may be called for several listeners.
func (g *Gateway) Serve(ln net.Listener) error {
	hs := &http.Server{Handler: g, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelDebug)}
	g.smu.Lock()
	if g.closed {
		g.smu.Unlock()
		ln.Close()
		return nil
	}
	g.servers = append(g.servers, hs)
	g.smu.Unlock()
	err := hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops every Serve, ends open tunnels and requests, and flushes and
// closes the logs. It returns the first log write error, if any.
func (g *Gateway) Close() error {
	g.smu.Lock()
	already := g.closed
	g.closed = true
	servers := g.servers
	g.smu.Unlock()
	if already {
		return nil
	}
	g.cancel() // ends tunnels
	for _, hs := range servers {
		hs.Close() // closes connections: handlers' contexts end
	}
	g.active.Wait() // every handler has written its log line
	return g.closeLogs()
}

func (g *Gateway) closeLogs() error {
	var errs []error
	for _, w := range []*logWriter{g.llmLog, g.hubLog, g.egressLog, g.gradeLog} {
		if err := w.close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Usage returns what the LLM route metered so far (a copy). A response is
// metered when its handler ends, which may be just after the client has
// its last byte; after Close, Usage is final.
func (g *Gateway) Usage() Usage {
	g.mu.Lock()
	defer g.mu.Unlock()
	u := g.usage
	u.Models = make(map[string]*ModelUsage, len(g.usage.Models))
	for k, v := range g.usage.Models {
		c := *v
		if v.CostUSD != nil {
			x := *v.CostUSD
			c.CostUSD = &x
		}
		u.Models[k] = &c
	}
	return u
}

// Env returns the environment the sandbox gets for a gateway reached at
// base (e.g. "http://127.0.0.1:18080"): the LLM base URLs of the
// configured providers with placeholder keys, HF_ENDPOINT, the grading URL
// and the proxy variables. It never holds a real credential.
//
// The base URLs are in the form each CLI appends its API path to:
// ANTHROPIC_BASE_URL (Claude Code adds /v1/messages), OPENAI_BASE_URL
// (with /v1, as the OpenAI SDKs and OpenCode's baseURL expect; Codex needs
// the same URL in its config.toml), GOOGLE_GEMINI_BASE_URL (Gemini CLI adds
// /v1beta/models/...).
func (g *Gateway) Env(base string) map[string]string {
	base = strings.TrimSuffix(base, "/")
	env := map[string]string{
		"HF_ENDPOINT":               base + "/hub",
		"HF_HUB_DISABLE_XET":        "1", // plain HTTP through the hub route, no xet CAS hosts
		"HF_HUB_ENABLE_HF_TRANSFER": "0",
		"PTB_GATEWAY_URL":           base,
		"HTTP_PROXY":                base,
		"HTTPS_PROXY":               base,
		"http_proxy":                base,
		"https_proxy":               base,
		"NODE_USE_ENV_PROXY":        "1", // Node's own fetch honours the proxy variables only with it
		"NO_PROXY":                  "127.0.0.1,localhost,::1",
		"no_proxy":                  "127.0.0.1,localhost,::1",
	}
	if g.cfg.Grader != nil {
		env["PTB_GRADE_URL"] = base + "/grade"
	}
	if _, ok := g.providers[Anthropic]; ok {
		env["ANTHROPIC_BASE_URL"] = LLMEndpoint(base, Anthropic)
		env["ANTHROPIC_API_KEY"] = Placeholder
	}
	if _, ok := g.providers[OpenAI]; ok {
		env["OPENAI_BASE_URL"] = LLMEndpoint(base, OpenAI) + "/v1"
		env["OPENAI_API_KEY"] = Placeholder
	}
	if _, ok := g.providers[Gemini]; ok {
		env["GOOGLE_GEMINI_BASE_URL"] = LLMEndpoint(base, Gemini)
		env["GEMINI_API_KEY"] = Placeholder
	}
	return env
}

// KeyEnv returns the harness environment variables that hold provider's
// API key, in the order the CLIs read them.
func KeyEnv(provider string) []string {
	switch provider {
	case Anthropic:
		return []string{"ANTHROPIC_API_KEY"}
	case OpenAI:
		return []string{"OPENAI_API_KEY"}
	case Gemini:
		return []string{"GEMINI_API_KEY", "GOOGLE_API_KEY"}
	}
	return nil
}

// LLMEndpoint is the LLM route's base URL for provider at a gateway reached
// at base: what an adapter's Launch.Endpoint gets (the adapters append /v1
// or the CLI appends the API path). Codex's config.toml base_url is this
// plus "/v1".
func LLMEndpoint(base, provider string) string {
	return strings.TrimSuffix(base, "/") + "/llm/" + provider
}

// ServeHTTP implements http.Handler: CONNECT and absolute-form requests go
// to the egress proxy, /llm/, /hub/ and /grade to their routes.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.track() {
		http.Error(w, "ptb gateway: closing", http.StatusServiceUnavailable)
		return
	}
	defer g.active.Done()
	// A request that could not be logged must not happen: the audit takes
	// the logs as the whole story. Fail closed once a log cannot be written.
	for _, l := range []*logWriter{g.llmLog, g.hubLog, g.egressLog, g.gradeLog} {
		if err := l.failed(); err != nil {
			http.Error(w, "ptb gateway: out of service: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	if r.Method == http.MethodConnect || r.URL.IsAbs() {
		g.egress.ServeHTTP(w, r)
		return
	}
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/llm/"):
		g.serveLLM(w, r)
	case p == "/hub" || strings.HasPrefix(p, "/hub/"):
		g.hub.ServeHTTP(w, r)
	case p == "/grade":
		g.serveGrade(w, r)
	case p == "/healthz":
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok\n"))
	default:
		http.Error(w, "ptb gateway: unknown route "+p+"; routes: /llm/{anthropic,openai,gemini}/..., /hub/..., /grade", http.StatusNotFound)
	}
}

// track counts a running handler so that Close waits for it; false once
// the gateway closes.
func (g *Gateway) track() bool {
	g.smu.Lock()
	defer g.smu.Unlock()
	if g.closed {
		return false
	}
	g.active.Add(1)
	return true
}

func (g *Gateway) stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
