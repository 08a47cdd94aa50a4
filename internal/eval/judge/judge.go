// Package judge is how LLM-graded benchmarks (ArenaHard, HealthBench) ask a
// grading model for a verdict. The Judge interface sends one chat request and
// returns the reply text; task code owns the retry semantics of the original.
// The OpenAI implementation talks to any OpenAI-compatible endpoint, so a
// grading gateway on the host can serve it without the key entering a sandbox.
package judge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ptb-dev/ptb/internal/eval/chat"
)

// Model is the original's grading model (an undated alias; see EVAL_SPEC §13).
const Model = "gpt-5-mini"

// Message is one chat message.
type Message = chat.Message

// Request is one grading call.
type Request struct {
	Messages            []Message
	MaxCompletionTokens int    // 49152 in both original tasks
	ReasoningEffort     string // "" = not sent
}

// Judge grades. Complete returns the content of the first choice. A reply
// that is not JSON or has no choices is an error; a null content is reported
// as ErrNullContent. An HTTP error status is an *HTTPError.
type Judge interface {
	Complete(ctx context.Context, req Request) (string, error)
}

// ErrNullContent is returned when the reply's message content is null.
var ErrNullContent = errors.New("judge reply has null content")

// HTTPError is a non-2xx answer from the grading endpoint.
type HTTPError struct {
	Status int
	Body   string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("judge endpoint returned HTTP %d: %s", e.Status, truncate(e.Body, 500))
}

// IsBadRequest reports whether err is an HTTP 400 whose body mentions substr.
func IsBadRequest(err error, substr string) bool {
	var he *HTTPError
	return errors.As(err, &he) && he.Status == http.StatusBadRequest && strings.Contains(strings.ToLower(he.Body), substr)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// OpenAI is a Judge over the OpenAI chat completions API (or a compatible
// endpoint, e.g. a host-side grading gateway). Each call retries as the
// original's OpenAI Python SDK (openai 2.17) does: MaxRetries retries of
// 408, 409, 429, 5xx and connection errors (or as x-should-retry says), after
// Retry-After / retry-after-ms when it is in (0, 60] s, else after
// min(0.5 s·2^n, 8 s) scaled by a jitter in (0.75, 1]; 600 s per request.
type OpenAI struct {
	BaseURL string // e.g. https://api.openai.com/v1
	APIKey  string
	Model   string // "" = gpt-5-mini
	Client  *http.Client
	// MaxRetries is the number of retries after the first try; 0 =
	// DefaultMaxRetries, negative = none.
	MaxRetries int
	// Sleep waits between tries (nil = a real, cancellable sleep); Now and
	// Rand stand in for the clock (HTTP-date Retry-After) and the jitter's
	// random source in tests.
	Sleep func(ctx context.Context, d time.Duration) error
	Now   func() time.Time
	Rand  func() float64
}

// The SDK's defaults (openai-python _constants.py).
const (
	DefaultMaxRetries = 2
	DefaultTimeout    = 600 * time.Second
	initialRetryDelay = 500 * time.Millisecond
	maxRetryDelay     = 8 * time.Second
)

// NewOpenAI returns a Judge for baseURL ("" = https://api.openai.com/v1).
func NewOpenAI(baseURL, apiKey string) *OpenAI {
	if baseURL == "" {
		baseURL = "https://api.openai.com/v1"
	}
	return &OpenAI{BaseURL: strings.TrimRight(baseURL, "/"), APIKey: apiKey, Client: &http.Client{Timeout: DefaultTimeout}}
}

func (o *OpenAI) maxRetries() int {
	switch {
	case o.MaxRetries < 0:
		return 0
	case o.MaxRetries == 0:
		return DefaultMaxRetries
	}
	return o.MaxRetries
}

// ShouldRetry is the SDK's rule for a response: x-should-retry decides when
// it is "true" or "false"; else 408, 409, 429 and 5xx are retried.
func ShouldRetry(status int, h http.Header) bool {
	switch h.Get("x-should-retry") {
	case "true":
		return true
	case "false":
		return false
	}
	return status == 408 || status == 409 || status == 429 || status >= 500
}

// RetryAfter parses retry-after-ms (milliseconds), else Retry-After
// (seconds, or an HTTP date relative to now); ok false when absent or
// unparseable.
func RetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if v := h.Get("retry-after-ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil {
			return time.Duration(ms * float64(time.Millisecond)), true
		}
	}
	v := h.Get("retry-after")
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Duration(s * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return t.Sub(now), true
	}
	return 0, false
}

// RetryDelay is the SDK's wait before retry number n (0-based: the first
// retry is 0): the server's Retry-After when it is in (0, 60] s, else
// min(0.5 s·2^n, 8 s)·(1 − 0.25·r) with r in [0, 1).
func RetryDelay(n int, h http.Header, now time.Time, r float64) time.Duration {
	if d, ok := RetryAfter(h, now); ok && d > 0 && d <= 60*time.Second {
		return d
	}
	d := maxRetryDelay
	if n < 5 {
		d = min(initialRetryDelay<<n, maxRetryDelay)
	}
	return time.Duration(float64(d) * (1 - 0.25*r))
}

type openAIRequest struct {
	Model               string    `json:"model"`
	Messages            []Message `json:"messages"`
	MaxCompletionTokens int       `json:"max_completion_tokens,omitempty"`
	ReasoningEffort     string    `json:"reasoning_effort,omitempty"`
}

// Complete implements Judge.
func (o *OpenAI) Complete(ctx context.Context, req Request) (string, error) {
	retries := o.maxRetries()
	for n := 0; ; n++ {
		text, h, retry, err := o.once(ctx, req)
		if err == nil || !retry || n >= retries || ctx.Err() != nil {
			return text, err
		}
		now, r := time.Now, rand.Float64
		if o.Now != nil {
			now = o.Now
		}
		if o.Rand != nil {
			r = o.Rand
		}
		if err := Sleep(ctx, RetryDelay(n, h, now(), r()), o.Sleep); err != nil {
			return "", err
		}
	}
}

// Sleep waits d or until ctx ends, through override when it is set (tests
// replace real waits between retries).
func Sleep(ctx context.Context, d time.Duration, override func(context.Context, time.Duration) error) error {
	return chat.Sleep(ctx, d, override)
}

// once makes one request. retry says whether the SDK would retry its error;
// h holds the response's headers, if any.
func (o *OpenAI) once(ctx context.Context, req Request) (text string, h http.Header, retry bool, err error) {
	model := o.Model
	if model == "" {
		model = Model
	}
	body, err := json.Marshal(openAIRequest{Model: model, Messages: req.Messages, MaxCompletionTokens: req.MaxCompletionTokens, ReasoningEffort: req.ReasoningEffort})
	if err != nil {
		return "", nil, false, fmt.Errorf("encode judge request: %w", err)
	}
	hreq, err := chat.NewRequest(ctx, o.BaseURL, o.APIKey, body)
	if err != nil {
		return "", nil, false, fmt.Errorf("build judge request: %w", err)
	}
	reply, err := chat.Send(o.Client, hreq)
	if reply == nil {
		// Connection errors and timeouts are retried, as APIConnectionError
		// and APITimeoutError are.
		return "", nil, true, fmt.Errorf("call judge: %w", err)
	}
	if err != nil {
		return "", reply.Header, true, fmt.Errorf("read judge reply: %w", err)
	}
	if !reply.OK() {
		return "", reply.Header, ShouldRetry(reply.Status, reply.Header), &HTTPError{Status: reply.Status, Body: string(reply.Body)}
	}
	m, err := chat.FirstMessage(reply.Body)
	switch {
	case errors.Is(err, chat.ErrNoChoices):
		return "", reply.Header, false, fmt.Errorf("judge reply has no choices")
	case errors.Is(err, chat.ErrNoMessage):
		return "", reply.Header, false, ErrNullContent
	case err != nil:
		return "", reply.Header, false, fmt.Errorf("decode judge reply: %w", err)
	}
	raw, ok := m["content"]
	if !ok || string(raw) == "null" {
		return "", reply.Header, false, ErrNullContent
	}
	var content string
	if err := json.Unmarshal(raw, &content); err != nil {
		return "", reply.Header, false, fmt.Errorf("decode judge reply: %w", err)
	}
	return content, reply.Header, false, nil
}
