// Package judge is how LLM-graded benchmarks (ArenaHard, HealthBench) ask a
// grading model for a verdict. The Judge interface sends one chat request and
// returns the reply text; task code owns the retry semantics of the original.
// The OpenAI implementation talks to any OpenAI-compatible endpoint, so a
// grading gateway on the host can serve it without the key entering a sandbox.
package judge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Model is the original's grading model (an undated alias; see EVAL_SPEC §13).
const Model = "gpt-5-mini"

// Message is one chat message.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

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
// endpoint, e.g. a host-side grading gateway).
type OpenAI struct {
	BaseURL string // e.g. https://api.openai.com/v1
	APIKey  string
	Model   string // "" = gpt-5-mini
	Client  *http.Client
}

// NewOpenAI returns a Judge for baseURL ("" = https://api.openai.com/v1).
func NewOpenAI(baseURL, apiKey string) *OpenAI {
	if baseURL == "" {
		baseURL = "https://api.openai.com/v1"
	}
	return &OpenAI{BaseURL: strings.TrimRight(baseURL, "/"), APIKey: apiKey, Client: &http.Client{Timeout: 30 * time.Minute}}
}

type openAIRequest struct {
	Model               string    `json:"model"`
	Messages            []Message `json:"messages"`
	MaxCompletionTokens int       `json:"max_completion_tokens,omitempty"`
	ReasoningEffort     string    `json:"reasoning_effort,omitempty"`
}

// Complete implements Judge.
func (o *OpenAI) Complete(ctx context.Context, req Request) (string, error) {
	model := o.Model
	if model == "" {
		model = Model
	}
	body, err := json.Marshal(openAIRequest{Model: model, Messages: req.Messages, MaxCompletionTokens: req.MaxCompletionTokens, ReasoningEffort: req.ReasoningEffort})
	if err != nil {
		return "", fmt.Errorf("encode judge request: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, o.BaseURL+"/chat/completions", bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("build judge request: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	if o.APIKey != "" {
		hreq.Header.Set("Authorization", "Bearer "+o.APIKey)
	}
	client := o.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(hreq)
	if err != nil {
		return "", fmt.Errorf("call judge: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("read judge reply: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return "", &HTTPError{Status: resp.StatusCode, Body: string(b)}
	}
	var r struct {
		Choices []struct {
			Message struct {
				Content *string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return "", fmt.Errorf("decode judge reply: %w", err)
	}
	if len(r.Choices) == 0 {
		return "", fmt.Errorf("judge reply has no choices")
	}
	if r.Choices[0].Message.Content == nil {
		return "", ErrNullContent
	}
	return *r.Choices[0].Message.Content, nil
}
