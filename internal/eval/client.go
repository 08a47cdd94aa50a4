package eval

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/ptb-dev/ptb/internal/eval/chat"
	"github.com/ptb-dev/ptb/internal/eval/task"
)

// Client sends chat completions to an OpenAI-compatible server with the
// request shape of the original harness: model, messages, max_tokens and,
// for BFCL, tools and tool_choice; never a sampling field.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:8000/v1
	APIKey  string
	Model   string
	HTTP    *http.Client
	// MaxAttempts bounds retries of 429, 5xx and connection errors for
	// inspect-style tasks (0 = 12). Script-style tasks always make 3 attempts.
	MaxAttempts int
	// Sleep waits between attempts; nil = a real, cancellable sleep.
	Sleep func(ctx context.Context, d time.Duration) error
	// Recover, if set, is called before retrying a request that failed with
	// a retryable error; it returns once the server can take requests again
	// (a server that ptb started is restarted if it died). Its error ends
	// the sample's retries.
	Recover func(ctx context.Context) error
	// Overloaded, if set, is called when the server answers 429 or 503
	// (too many requests, overloaded), before the request is retried.
	Overloaded func()

	// slots, if set, bounds the requests in flight: a slot is held from
	// when a built request is sent until its reply has been read.
	slots *limiter
}

// overloaded tells c.Overloaded about a 429 or 503 answer.
func (c *Client) overloaded(err error) {
	var se *statusError
	if c.Overloaded != nil && errors.As(err, &se) && (se.status == 429 || se.status == 503) {
		c.Overloaded()
	}
}

// recoverServer runs c.Recover, if any, after err.
func (c *Client) recoverServer(ctx context.Context, err error) error {
	if c.Recover == nil || !retryable(err) {
		return nil
	}
	if rerr := c.Recover(ctx); rerr != nil {
		return fmt.Errorf("%w (after: %v)", rerr, err)
	}
	return nil
}

// chatRequest is the body, in the original's key order.
type chatRequest struct {
	Model      string          `json:"model"`
	Messages   []task.Message  `json:"messages"`
	Tools      json.RawMessage `json:"tools,omitempty"`
	ToolChoice string          `json:"tool_choice,omitempty"`
	MaxTokens  int             `json:"max_tokens,omitempty"`
}

// RequestBody returns the JSON body sent for s.
func RequestBody(model string, s task.Sample, maxTokens int) ([]byte, error) {
	r := chatRequest{Model: model, Messages: s.Messages, MaxTokens: maxTokens}
	if len(s.Tools) > 0 {
		r.Tools, r.ToolChoice = s.Tools, "auto"
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// statusError is a non-2xx answer.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("inference server returned HTTP %d: %s", e.status, e.msg)
}

func retryable(err error) bool {
	var se *statusError
	if errors.As(err, &se) {
		return se.status == 429 || se.status >= 500
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "connection reset")
}

// contextOverflow reports whether err is the 400 that inspect turns into a
// completion (its message becomes the text).
func contextOverflow(err error) (string, bool) {
	var se *statusError
	if errors.As(err, &se) && se.status == 400 && (strings.Contains(se.msg, "maximum context length") || strings.Contains(se.msg, "max_tokens must be at least 1")) {
		return se.msg, true
	}
	return "", false
}

var errNullContent = errors.New("response message content is null (the original crashes here)")

func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	return chat.Sleep(ctx, d, c.Sleep)
}

// Chat generates one output for s, with the failure semantics of style.
func (c *Client) Chat(ctx context.Context, s task.Sample, maxTokens int, style string) (task.Output, error) {
	body, err := RequestBody(c.Model, s, maxTokens)
	if err != nil {
		return task.Output{}, fmt.Errorf("encode request %s: %w", s.ID, err)
	}
	if style == task.StyleScript {
		// requests.post + raise_for_status, 3 attempts, 2 s then 4 s.
		var last error
		for attempt := range 3 {
			out, err := c.post(ctx, body, true)
			if err == nil {
				return out, nil
			}
			if ctx.Err() != nil || errors.Is(err, errNullContent) {
				return task.Output{}, err
			}
			last = err
			c.overloaded(err)
			if attempt < 2 {
				if rerr := c.recoverServer(ctx, err); rerr != nil {
					return task.Output{}, fmt.Errorf("sample %s: %w", s.ID, rerr)
				}
				if err := c.sleep(ctx, time.Duration(2<<attempt)*time.Second); err != nil {
					return task.Output{}, err
				}
			}
		}
		return task.Output{}, fmt.Errorf("sample %s: 3 attempts failed: %w", s.ID, last)
	}
	max := c.MaxAttempts
	if max <= 0 {
		max = 12
	}
	backoff := time.Second
	for attempt := 1; ; attempt++ {
		out, err := c.post(ctx, body, false)
		if err == nil {
			return out, nil
		}
		if msg, ok := contextOverflow(err); ok {
			return task.Output{Content: msg, StopReason: "model_length"}, nil
		}
		if ctx.Err() != nil {
			return task.Output{}, ctx.Err()
		}
		if !retryable(err) || attempt >= max {
			return task.Output{}, fmt.Errorf("sample %s: %w", s.ID, err)
		}
		c.overloaded(err)
		if rerr := c.recoverServer(ctx, err); rerr != nil {
			return task.Output{}, fmt.Errorf("sample %s: %w", s.ID, rerr)
		}
		if err := c.sleep(ctx, backoff); err != nil {
			return task.Output{}, err
		}
		backoff = min(backoff*2, 60*time.Second)
	}
}

func (c *Client) post(ctx context.Context, body []byte, strictShape bool) (task.Output, error) {
	req, err := chat.NewRequest(ctx, c.BaseURL, c.APIKey, body)
	if err != nil {
		return task.Output{}, err
	}
	reply, err := c.send(ctx, req)
	if err != nil {
		return task.Output{}, err
	}
	if !reply.OK() {
		return task.Output{}, &statusError{status: reply.Status, msg: errorMessage(reply.Body)}
	}
	m, err := chat.FirstMessage(reply.Body)
	switch {
	case errors.Is(err, chat.ErrNoChoices), errors.Is(err, chat.ErrNoMessage):
		return task.Output{}, fmt.Errorf("response has no choices or message")
	case err != nil:
		return task.Output{}, fmt.Errorf("decode response: %w", err)
	}
	var out task.Output
	raw, ok := m["content"]
	if !ok && strictShape {
		return task.Output{}, fmt.Errorf("response message has no content key")
	}
	if ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &out.Content); err != nil {
			return task.Output{}, fmt.Errorf("decode content: %w", err)
		}
	} else if strictShape {
		return task.Output{}, errNullContent
	}
	if tc, ok := m["tool_calls"]; ok && string(tc) != "null" {
		if err := json.Unmarshal(tc, &out.ToolCalls); err != nil {
			return task.Output{}, fmt.Errorf("decode tool_calls: %w", err)
		}
	}
	return out, nil
}

// send sends req in a slot of c.slots, if any, held until the reply has
// been read; the exchange's latency goes to the limiter.
func (c *Client) send(ctx context.Context, req *http.Request) (*chat.Reply, error) {
	if c.slots == nil {
		return chat.Send(c.HTTP, req)
	}
	if err := c.slots.acquire(ctx); err != nil {
		return nil, err
	}
	t0 := time.Now()
	reply, err := chat.Send(c.HTTP, req)
	c.slots.release(err == nil && reply.OK(), time.Since(t0))
	return reply, err
}

// Warm opens up to n keep-alive connections to the server before the first
// requests, by n concurrent GETs of /models whose answers are discarded, so
// that the first burst of requests does not wait on n connection set-ups
// and reaches the server together (a server that batches starts its first
// batch fuller). It is only a head start: failures are ignored (the
// requests report their own), and it gives up when ctx ends or after 10 s.
func (c *Client) Warm(ctx context.Context, n int) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	url := strings.TrimRight(c.BaseURL, "/") + "/models"
	done := make(chan struct{}, n)
	for range n {
		go func() {
			defer func() { done <- struct{}{} }()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return
			}
			if c.APIKey != "" {
				req.Header.Set("Authorization", "Bearer "+c.APIKey)
			}
			resp, err := hc.Do(req)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
		}()
	}
	for range n {
		<-done
	}
}

// errorMessage extracts the message of an OpenAI-style error body.
func errorMessage(b []byte) string {
	var e struct {
		Message string `json:"message"`
		Error   *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil {
		if e.Error != nil && e.Error.Message != "" {
			return e.Error.Message
		}
		if e.Message != "" {
			return e.Message
		}
	}
	return strings.TrimSpace(string(b))
}

// servedModel asks /models for the first served model id.
func servedModel(ctx context.Context, hc *http.Client, baseURL, apiKey string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(baseURL, "/")+"/models", nil)
	if err != nil {
		return "", err
	}
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("list models at %s: %w", baseURL, err)
	}
	defer resp.Body.Close()
	var r struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || len(r.Data) == 0 {
		return "", fmt.Errorf("list models at %s: no model served (HTTP %d)", baseURL, resp.StatusCode)
	}
	return r.Data[0].ID, nil
}
