package judge

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestCompleteReplyShapes: what the judge makes of each reply shape, and
// the request it sends (path, key, model).
func TestCompleteReplyShapes(t *testing.T) {
	cases := []struct {
		name    string
		status  int
		body    string
		want    string
		wantErr string // substring; "" = no error
		null    bool   // ErrNullContent
	}{
		{"content", 200, `{"choices":[{"message":{"role":"assistant","content":"[[A>B]]"}}]}`, "[[A>B]]", "", false},
		{"no choices", 200, `{"choices":[]}`, "", "judge reply has no choices", false},
		{"null message", 200, `{"choices":[{"message":null}]}`, "", "", true},
		{"null content", 200, `{"choices":[{"message":{"content":null}}]}`, "", "", true},
		{"no content", 200, `{"choices":[{"message":{"role":"assistant"}}]}`, "", "", true},
		{"not JSON", 200, `not json`, "", "decode judge reply", false},
		{"content not a string", 200, `{"choices":[{"message":{"content":5}}]}`, "", "decode judge reply", false},
		{"bad request", 400, `{"error":{"message":"maximum context length exceeded"}}`, "", "judge endpoint returned HTTP 400", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got struct {
				path, auth, ctype string
				body              openAIRequest
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got.path, got.auth, got.ctype = r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Type")
				b, _ := io.ReadAll(r.Body)
				json.Unmarshal(b, &got.body)
				w.WriteHeader(c.status)
				io.WriteString(w, c.body)
			}))
			defer srv.Close()
			j := NewOpenAI(srv.URL+"/v1/", "K")
			j.MaxRetries = -1
			text, err := j.Complete(context.Background(), Request{Messages: []Message{{Role: "user", Content: "grade"}}, MaxCompletionTokens: 7})
			switch {
			case c.null:
				if !errors.Is(err, ErrNullContent) {
					t.Fatalf("err = %v, want ErrNullContent", err)
				}
			case c.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
			default:
				if err != nil || text != c.want {
					t.Fatalf("got %q, %v; want %q", text, err, c.want)
				}
			}
			if got.path != "/v1/chat/completions" || got.auth != "Bearer K" || got.ctype != "application/json" ||
				got.body.Model != Model || got.body.MaxCompletionTokens != 7 || len(got.body.Messages) != 1 || got.body.Messages[0].Content != "grade" {
				t.Errorf("request: %+v", got)
			}
			if c.status == 400 && !IsBadRequest(err, "maximum context length") {
				t.Errorf("IsBadRequest(%v) = false", err)
			}
		})
	}
}
