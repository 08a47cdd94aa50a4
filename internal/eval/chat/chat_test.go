package chat

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestFirstMessage(t *testing.T) {
	cases := []struct {
		body, content string
		err           error
		decodeErr     bool
	}{
		{`{"choices":[{"message":{"content":"hi"}}]}`, `"hi"`, nil, false},
		{`{"choices":[{"message":{"content":null}}]}`, `null`, nil, false},
		{`{"choices":[]}`, "", ErrNoChoices, false},
		{`{}`, "", ErrNoChoices, false},
		{`{"choices":[{"message":null}]}`, "", ErrNoMessage, false},
		{`{"choices":[{}]}`, "", ErrNoMessage, false},
		{`[1]`, "", nil, true},
	}
	for _, c := range cases {
		m, err := FirstMessage([]byte(c.body))
		switch {
		case c.decodeErr:
			if err == nil || errors.Is(err, ErrNoChoices) || errors.Is(err, ErrNoMessage) {
				t.Errorf("%s: err = %v, want a decode error", c.body, err)
			}
		case c.err != nil:
			if !errors.Is(err, c.err) {
				t.Errorf("%s: err = %v, want %v", c.body, err, c.err)
			}
		default:
			if err != nil || string(m["content"]) != c.content {
				t.Errorf("%s: got %s, %v; want %s", c.body, m["content"], err, c.content)
			}
		}
	}
}

func TestSend(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/chat/completions" || r.Header.Get("Authorization") != "Bearer K" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request line", 400)
			return
		}
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(429)
		w.Write(b)
	}))
	req, err := NewRequest(context.Background(), srv.URL+"/v1/", "K", []byte(`{"x":1}`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Send(srv.Client(), req)
	if err != nil || r.Status != 429 || r.OK() || r.Header.Get("Retry-After") != "1" || string(r.Body) != `{"x":1}` {
		t.Fatalf("got %+v, %v", r, err)
	}
	srv.Close()
	req, _ = NewRequest(context.Background(), srv.URL, "", nil)
	if r, err := Send(nil, req); r != nil || err == nil {
		t.Fatalf("closed server: got %+v, %v; want no reply and an error", r, err)
	}
	if req.Header.Get("Authorization") != "" {
		t.Error("empty key sent as a bearer token")
	}
}
