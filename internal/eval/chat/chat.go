// Package chat is the one HTTP client of the OpenAI chat-completions API
// that ptb's evaluation uses: the eval client (a model's answers, from a
// server ptb started or one at --base-url) and the judge (a grading model)
// both build, send and read their requests here. Each keeps its own retry
// policy, the original's (eval: inspect's and the scripts'; judge: the
// OpenAI Python SDK's), on top of the shared pieces: Sleep, the request,
// the reply and its first message.
package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
)

// Message is one chat message as sent.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// NewRequest builds the POST of body (a JSON request) to
// baseURL/chat/completions, with a bearer key when key is set.
func NewRequest(ctx context.Context, baseURL, key string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(baseURL, "/")+"/chat/completions", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return req, nil
}

// Reply is an answer read in full.
type Reply struct {
	Status int
	Header http.Header
	Body   []byte
}

// OK says whether the status is 2xx.
func (r *Reply) OK() bool { return r.Status/100 == 2 }

// Send sends req with hc (nil = http.DefaultClient) and reads the reply.
// When the request could not be made (connection, timeout) the reply is
// nil; when its body could not be read, the reply has the status and
// header and err is the read error.
func Send(hc *http.Client, req *http.Request) (*Reply, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	r := &Reply{Status: resp.StatusCode, Header: resp.Header}
	r.Body, err = io.ReadAll(resp.Body)
	return r, err
}

// ErrNoChoices is a reply without choices; ErrNoMessage one whose first
// choice has no message (or a null one).
var (
	ErrNoChoices = errors.New("reply has no choices")
	ErrNoMessage = errors.New("reply's first choice has no message")
)

// FirstMessage decodes choices[0].message of a reply body, field by field
// (a field present as null is kept as the raw "null").
func FirstMessage(body []byte) (map[string]json.RawMessage, error) {
	var r struct {
		Choices []struct {
			Message map[string]json.RawMessage `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	if len(r.Choices) == 0 {
		return nil, ErrNoChoices
	}
	if r.Choices[0].Message == nil {
		return nil, ErrNoMessage
	}
	return r.Choices[0].Message, nil
}

// Sleep waits d or until ctx ends, through override when it is set (tests
// replace real waits between retries).
func Sleep(ctx context.Context, d time.Duration, override func(context.Context, time.Duration) error) error {
	if override != nil {
		return override(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
