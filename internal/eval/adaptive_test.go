package eval

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/eval/task"
)

// window feeds l one window's worth of completions, each of latency lat.
func window(l *limiter, lat time.Duration) {
	n := l.Limit()
	for range n {
		l.mu.Lock()
		l.inflight++
		l.mu.Unlock()
		l.release(true, lat)
	}
}

func TestLimiterAdaptiveGrowth(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name    string
		windows []time.Duration // mean latency of each window, in order
		backoff bool            // a 429 after the windows
		want    int
		growing bool
	}{
		{"warm-up window is not measured", []time.Duration{5 * ms}, false, 256, true},
		{"no queue yet: grows by half", []time.Duration{5 * ms, 100 * ms}, false, 384, true},
		{"latency grows less than twofold: grows on", []time.Duration{5 * ms, 100 * ms, 150 * ms}, false, 576, true},
		{"queue formed (latency doubled): stops", []time.Duration{5 * ms, 100 * ms, 150 * ms, 200 * ms}, false, 576, false},
		{"stopped stays stopped", []time.Duration{5 * ms, 100 * ms, 150 * ms, 200 * ms, 10 * ms}, false, 576, false},
		{"a faster window lowers the bar", []time.Duration{5 * ms, 100 * ms, 50 * ms, 99 * ms}, false, 864, true},
		{"grows up to the cap", []time.Duration{ms, ms, ms, ms, ms, ms, ms, ms, ms}, false, MaxAdaptiveConcurrency, false},
		{"overload steps back a third", []time.Duration{5 * ms, 100 * ms, 150 * ms}, true, 384, false},
		{"overload never goes below the start", nil, true, DefaultConcurrency, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLimiter(0)
			for _, lat := range tt.windows {
				window(l, lat)
			}
			if tt.backoff {
				l.backoff()
			}
			if got := l.Limit(); got != tt.want {
				t.Errorf("limit = %d, want %d", got, tt.want)
			}
			if l.growing != tt.growing {
				t.Errorf("growing = %v, want %v", l.growing, tt.growing)
			}
		})
	}
}

func TestLimiterFixed(t *testing.T) {
	l := newLimiter(3)
	for range 5 {
		window(l, time.Millisecond)
	}
	l.backoff()
	if got := l.Limit(); got != 3 {
		t.Fatalf("fixed limit moved to %d, want 3", got)
	}
	ctx := context.Background()
	for i := range 3 {
		if err := l.acquire(ctx); err != nil {
			t.Fatalf("acquire %d: %v", i, err)
		}
	}
	got := make(chan error, 1)
	go func() { got <- l.acquire(ctx) }()
	select {
	case err := <-got:
		t.Fatalf("a 4th acquire at limit 3 returned (%v) before a release", err)
	case <-time.After(50 * time.Millisecond):
	}
	l.release(true, time.Millisecond)
	if err := <-got; err != nil {
		t.Fatalf("acquire after a release: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() { got <- l.acquire(cctx) }()
	cancel()
	if err := <-got; err == nil {
		t.Fatal("acquire at the limit returned nil after its context ended")
	}
}

// TestClientOverloaded checks that the client reports 429 and 503 answers
// (and no other failure) to Overloaded, and still retries them as before.
func TestClientOverloaded(t *testing.T) {
	tests := []struct {
		status int
		want   int
	}{{429, 1}, {503, 1}, {500, 0}, {502, 0}}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			calls := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls++
				if calls == 1 {
					http.Error(w, `{"error":{"message":"busy"}}`, tt.status)
					return
				}
				fmt.Fprint(w, `{"choices":[{"message":{"role":"assistant","content":"ok"}}]}`)
			}))
			defer srv.Close()
			got := 0
			c := &Client{BaseURL: srv.URL + "/v1", Model: "m", Overloaded: func() { got++ },
				Sleep: func(context.Context, time.Duration) error { return nil }}
			out, err := c.Chat(context.Background(), task.Sample{ID: "1", Messages: []task.Message{{Role: "user", Content: "hi"}}}, 10, task.StyleInspect)
			if err != nil || out.Content != "ok" {
				t.Fatalf("Chat = %+v, %v; want ok after one retry", out, err)
			}
			if got != tt.want || calls != 2 {
				t.Errorf("HTTP %d: Overloaded called %d times (want %d), server called %d times (want 2)", tt.status, got, tt.want, calls)
			}
		})
	}
}

// TestLimitReadsOnlyThoseRows checks that Run with --limit N parses no row
// past the Nth: a split broken after its fifth row evaluates with limit 3
// and fails to load without a limit.
func TestLimitReadsOnlyThoseRows(t *testing.T) {
	data := t.TempDir()
	if err := os.MkdirAll(filepath.Join(data, "gsm8k"), 0o755); err != nil {
		t.Fatal(err)
	}
	var rows strings.Builder
	for i := range 5 {
		fmt.Fprintf(&rows, `{"question": "What is %d + %d?", "answer": "so\n#### %d"}`+"\n", i, i, 2*i)
	}
	rows.WriteString("{not json\n")
	if err := os.WriteFile(filepath.Join(data, "gsm8k", "test.jsonl"), []byte(rows.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	fs := &fakeServer{t: t, replies: map[string]any{}} // every request overflows: scored 0
	srv := httptest.NewServer(fs)
	defer srv.Close()
	for _, tt := range []struct {
		limit   int
		wantErr bool
	}{{3, false}, {5, false}, {6, true}, {0, true}} {
		t.Run(fmt.Sprintf("limit=%d", tt.limit), func(t *testing.T) {
			sum, err := Run(context.Background(), Options{
				Task: "gsm8k", OutDir: t.TempDir(),
				Target:   Target{Backend: BackendURL, BaseURL: srv.URL + "/v1"},
				Data:     Data{DataDir: data, Limit: tt.limit},
				Requests: Requests{Sleep: noSleep},
			})
			if tt.wantErr {
				if err == nil {
					t.Fatalf("limit %d read past the broken row: %+v", tt.limit, sum)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sum.Scored != tt.limit {
				t.Errorf("scored %d, want %d", sum.Scored, tt.limit)
			}
		})
	}
}
