package eval

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestClientReplyShapes: what the eval client makes of each reply shape,
// for inspect-style (lenient) and script-style (strict) tasks.
func TestClientReplyShapes(t *testing.T) {
	cases := []struct {
		name       string
		status     int
		body       string
		strict     bool
		want       string
		wantTools  int
		wantErr    string
		wantStatus int
		null       bool
	}{
		{"content", 200, `{"choices":[{"message":{"content":"42"}}]}`, false, "42", 0, "", 0, false},
		{"tool calls", 200, `{"choices":[{"message":{"content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}}]}`, false, "", 1, "", 0, false},
		{"no choices", 200, `{"choices":[]}`, false, "", 0, "response has no choices or message", 0, false},
		{"null message", 200, `{"choices":[{"message":null}]}`, false, "", 0, "response has no choices or message", 0, false},
		{"null content, lenient", 200, `{"choices":[{"message":{"content":null}}]}`, false, "", 0, "", 0, false},
		{"null content, strict", 200, `{"choices":[{"message":{"content":null}}]}`, true, "", 0, "", 0, true},
		{"no content key, strict", 200, `{"choices":[{"message":{}}]}`, true, "", 0, "response message has no content key", 0, false},
		{"not JSON", 200, `nope`, false, "", 0, "decode response", 0, false},
		{"server error", 500, `{"error":{"message":"boom"}}`, false, "", 0, "inference server returned HTTP 500: boom", 500, false},
		{"plain error body", 400, "bad\n", false, "", 0, "inference server returned HTTP 400: bad", 400, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var path, auth string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				path, auth = r.URL.Path, r.Header.Get("Authorization")
				w.WriteHeader(c.status)
				io.WriteString(w, c.body)
			}))
			defer srv.Close()
			cl := &Client{BaseURL: srv.URL + "/v1/", APIKey: "K", Model: "m", HTTP: srv.Client()}
			out, err := cl.post(context.Background(), []byte(`{"model":"m"}`), c.strict)
			var se *statusError
			switch {
			case c.null:
				if !errors.Is(err, errNullContent) {
					t.Fatalf("err = %v, want errNullContent", err)
				}
			case c.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				if c.wantStatus != 0 && (!errors.As(err, &se) || se.status != c.wantStatus) {
					t.Fatalf("err = %#v, want a statusError %d", err, c.wantStatus)
				}
			default:
				if err != nil || out.Content != c.want || len(out.ToolCalls) != c.wantTools {
					t.Fatalf("got %+v, %v; want %q with %d tool calls", out, err, c.want, c.wantTools)
				}
			}
			if path != "/v1/chat/completions" || auth != "Bearer K" {
				t.Errorf("request to %s with %q", path, auth)
			}
		})
	}
}
