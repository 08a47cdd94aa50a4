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
	const s = AdaptiveStart // 384: 576, 864, 1296 after growing
	tests := []struct {
		name    string
		windows []time.Duration // mean latency of each window, in order
		backoff bool            // a 429 after the windows
		want    int
		growing bool
	}{
		{"warm-up window is not measured", []time.Duration{5 * ms}, false, s, true},
		{"no queue yet: grows by half", []time.Duration{5 * ms, 100 * ms}, false, s * 3 / 2, true},
		{"latency grows less than twofold: grows on", []time.Duration{5 * ms, 100 * ms, 150 * ms}, false, s * 9 / 4, true},
		{"queue formed (latency doubled): stops", []time.Duration{5 * ms, 100 * ms, 150 * ms, 200 * ms}, false, s * 9 / 4, false},
		{"stopped stays stopped", []time.Duration{5 * ms, 100 * ms, 150 * ms, 200 * ms, 10 * ms}, false, s * 9 / 4, false},
		{"a faster window lowers the bar", []time.Duration{5 * ms, 100 * ms, 50 * ms, 99 * ms}, false, s * 27 / 8, true},
		{"grows up to the cap", []time.Duration{ms, ms, ms, ms, ms, ms, ms, ms, ms}, false, MaxAdaptiveConcurrency, false},
		{"overload steps back a third", []time.Duration{5 * ms, 100 * ms, 150 * ms}, true, s * 9 / 4 * 2 / 3, false},
		{"overload never goes below the default", nil, true, DefaultConcurrency, false},
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

// TestLimiterHandsOverInOrder checks that a freed slot goes to the request
// that has waited longest, that a request whose context ends while waiting
// gives up its place (and a slot handed to it as it ended is passed on), and
// that an adaptive limiter starts samples ahead of its slots while a fixed
// one starts no more than its limit.
func TestLimiterHandsOverInOrder(t *testing.T) {
	ctx := context.Background()
	l := newLimiter(2)
	for range 2 {
		if err := l.acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	order := make(chan int, 3)
	cctx, cancel := context.WithCancel(ctx)
	for i := range 3 {
		c := ctx
		if i == 1 {
			c = cctx
		}
		go func() {
			if l.acquire(c) == nil {
				order <- i
			}
		}()
		// Wait until it queues, so that the order of waiting is i's.
		for {
			l.mu.Lock()
			n := len(l.waiters)
			l.mu.Unlock()
			if n == i+1 {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	cancel() // the second waiter leaves the queue
	for {
		l.mu.Lock()
		n := len(l.waiters)
		l.mu.Unlock()
		if n == 2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	var got []int
	for range 2 {
		l.release(true, time.Millisecond)
		got = append(got, <-order)
	}
	if got[0] != 0 || got[1] != 2 {
		t.Errorf("slots went to waiters %v, want [0 2]", got)
	}
	if l.inflight != 2 || len(l.waiters) != 0 {
		t.Errorf("inflight %d, waiters %d; want 2 and 0", l.inflight, len(l.waiters))
	}

	for _, tt := range []struct {
		fixed, want int
	}{{1, 1}, {3, 3}, {0, AdaptiveStart + AdaptiveStart/4}} {
		l := newLimiter(tt.fixed)
		n := 0
		sctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		for l.start(sctx) == nil {
			n++
		}
		cancel()
		if n != tt.want {
			t.Errorf("limiter(%d) started %d samples before one finished, want %d", tt.fixed, n, tt.want)
		}
		l.finish()
		if err := l.start(ctx); err != nil {
			t.Errorf("limiter(%d): start after a finish: %v", tt.fixed, err)
		}
	}
}
