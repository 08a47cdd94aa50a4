package judge

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRetryDelay(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	h := func(kv ...string) http.Header {
		x := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			x.Set(kv[i], kv[i+1])
		}
		return x
	}
	cases := []struct {
		name string
		n    int
		h    http.Header
		r    float64
		want time.Duration
	}{
		{"first retry, no header, no jitter", 0, nil, 0, 500 * time.Millisecond},
		{"second retry", 1, nil, 0, time.Second},
		{"capped at 8 s", 6, nil, 0, 8 * time.Second},
		{"jitter takes off up to a quarter", 1, nil, 0.5, 875 * time.Millisecond},
		{"Retry-After seconds", 0, h("Retry-After", "2"), 0.9, 2 * time.Second},
		{"Retry-After fractional", 0, h("Retry-After", "1.5"), 0, 1500 * time.Millisecond},
		{"retry-after-ms wins", 0, h("retry-after-ms", "250", "Retry-After", "7"), 0, 250 * time.Millisecond},
		{"Retry-After HTTP date", 0, h("Retry-After", now.Add(30*time.Second).Format(http.TimeFormat)), 0, 30 * time.Second},
		{"Retry-After over 60 s is ignored", 1, h("Retry-After", "120"), 0, time.Second},
		{"Retry-After zero is ignored", 0, h("Retry-After", "0"), 0, 500 * time.Millisecond},
		{"Retry-After garbage is ignored", 0, h("Retry-After", "soon"), 0, 500 * time.Millisecond},
		{"date in the past is ignored", 0, h("Retry-After", now.Add(-time.Minute).Format(http.TimeFormat)), 0, 500 * time.Millisecond},
	}
	for _, c := range cases {
		if got := RetryDelay(c.n, c.h, now, c.r); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func TestShouldRetry(t *testing.T) {
	cases := []struct {
		status int
		header string
		want   bool
	}{
		{400, "", false}, {401, "", false}, {404, "", false}, {408, "", true}, {409, "", true},
		{429, "", true}, {500, "", true}, {503, "", true},
		{400, "true", true}, {429, "false", false}, {500, "false", false}, {200, "", false},
	}
	for _, c := range cases {
		h := http.Header{}
		if c.header != "" {
			h.Set("x-should-retry", c.header)
		}
		if got := ShouldRetry(c.status, h); got != c.want {
			t.Errorf("%d x-should-retry=%q: got %v, want %v", c.status, c.header, got, c.want)
		}
	}
}

// scripted answers a sequence of (status, headers); after it, 200 "ok".
type scripted struct {
	mu    sync.Mutex
	steps []func(w http.ResponseWriter)
	calls int
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	i := s.calls
	s.calls++
	s.mu.Unlock()
	if i < len(s.steps) {
		s.steps[i](w)
		return
	}
	_, _ = w.Write([]byte(`{"choices":[{"message":{"content":"ok"}}]}`))
}

func status(code int, kv ...string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i < len(kv); i += 2 {
			w.Header().Set(kv[i], kv[i+1])
		}
		w.WriteHeader(code)
		_, _ = w.Write([]byte(`{"error":{"message":"busy"}}`))
	}
}

func TestCompleteRetries(t *testing.T) {
	cases := []struct {
		name      string
		steps     []func(w http.ResponseWriter)
		retries   int
		wantCalls int
		wantErr   string
		wantWaits []time.Duration
	}{
		{"429 then ok", []func(http.ResponseWriter){status(429, "Retry-After", "2")}, 0, 2, "", []time.Duration{2 * time.Second}},
		{"two 503s then ok", []func(http.ResponseWriter){status(503), status(503)}, 0, 3, "", []time.Duration{500 * time.Millisecond, time.Second}},
		{"three 500s: gives up after 2 retries", []func(http.ResponseWriter){status(500), status(500), status(500)}, 0, 3, "HTTP 500", []time.Duration{500 * time.Millisecond, time.Second}},
		{"400 is not retried", []func(http.ResponseWriter){status(400)}, 0, 1, "HTTP 400", nil},
		{"x-should-retry false on 429", []func(http.ResponseWriter){status(429, "x-should-retry", "false")}, 0, 1, "HTTP 429", nil},
		{"x-should-retry true on 400", []func(http.ResponseWriter){status(400, "x-should-retry", "true")}, 0, 2, "", []time.Duration{500 * time.Millisecond}},
		{"408 and 409", []func(http.ResponseWriter){status(408), status(409)}, 0, 3, "", []time.Duration{500 * time.Millisecond, time.Second}},
		{"no retries configured", []func(http.ResponseWriter){status(429)}, -1, 1, "HTTP 429", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &scripted{steps: c.steps}
			srv := httptest.NewServer(s)
			defer srv.Close()
			var waits []time.Duration
			j := NewOpenAI(srv.URL, "k")
			j.MaxRetries = c.retries
			j.Rand = func() float64 { return 0 }
			j.Sleep = func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
			got, err := j.Complete(context.Background(), Request{Messages: []Message{{Role: "user", Content: "hi"}}})
			if c.wantErr == "" && (err != nil || got != "ok") {
				t.Fatalf("got %q, %v", got, err)
			}
			if c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("error %v, want %q", err, c.wantErr)
			}
			if s.calls != c.wantCalls {
				t.Errorf("%d calls, want %d", s.calls, c.wantCalls)
			}
			if len(waits) != len(c.wantWaits) {
				t.Fatalf("waits %v, want %v", waits, c.wantWaits)
			}
			for i := range waits {
				if waits[i] != c.wantWaits[i] {
					t.Errorf("wait %d = %v, want %v", i, waits[i], c.wantWaits[i])
				}
			}
		})
	}
}

// A connection error (nothing listening) is retried twice.
func TestCompleteRetriesConnectionErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	n := 0
	j := NewOpenAI(url, "k")
	j.Sleep = func(context.Context, time.Duration) error { n++; return nil }
	_, err := j.Complete(context.Background(), Request{})
	if err == nil || n != 2 {
		t.Errorf("err %v after %d waits, want an error after 2", err, n)
	}
	var he *HTTPError
	if errors.As(err, &he) {
		t.Errorf("connection error reported as HTTP: %v", err)
	}
	if NewOpenAI("", "").Client.Timeout != 600*time.Second {
		t.Errorf("timeout %v, want the SDK's 600 s", NewOpenAI("", "").Client.Timeout)
	}
}
