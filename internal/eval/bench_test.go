package eval

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// batchSim is an OpenAI-compatible server that batches like vLLM's
// continuous batching: every decoding step costs the same wall time and
// advances up to B running sequences by one token; waiting requests join at
// the start of the next step when a slot is free; a request is answered when
// its sequence has produced Tokens tokens.
type batchSim struct {
	B      int
	Step   time.Duration
	Tokens int

	mu      sync.Mutex
	waiting []*simSeq
	wake    chan struct{}
	stop    chan struct{}

	steps    atomic.Int64              // decoding steps taken
	seqSteps atomic.Int64              // sum over steps of the running batch size
	first    atomic.Pointer[time.Time] // when the first request arrived
}

type simSeq struct {
	left int
	done chan struct{}
}

func newBatchSim(b int, step time.Duration, tokens int) *batchSim {
	s := &batchSim{B: b, Step: step, Tokens: tokens, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	go s.loop()
	return s
}

// Saturated is the server's best throughput in completions per second.
func (s *batchSim) Saturated() float64 {
	return float64(s.B) / (float64(s.Tokens) * s.Step.Seconds())
}

func (s *batchSim) Close() { close(s.stop) }

func (s *batchSim) loop() {
	var running []*simSeq
	var next time.Time
	for {
		s.mu.Lock()
		for len(running) < s.B && len(s.waiting) > 0 {
			running = append(running, s.waiting[0])
			s.waiting = s.waiting[1:]
		}
		s.mu.Unlock()
		if len(running) == 0 {
			select {
			case <-s.wake:
				next = time.Time{}
				continue
			case <-s.stop:
				return
			}
		}
		// Steps are scheduled on a grid so that sleep overshoot does not
		// accumulate; an idle server starts a fresh grid.
		now := time.Now()
		if next.IsZero() || now.Sub(next) > s.Step {
			next = now
		}
		next = next.Add(s.Step)
		time.Sleep(time.Until(next))
		s.steps.Add(1)
		s.seqSteps.Add(int64(len(running)))
		kept := running[:0]
		for _, q := range running {
			q.left--
			if q.left == 0 {
				close(q.done)
			} else {
				kept = append(kept, q)
			}
		}
		running = kept
		select {
		case <-s.stop:
			return
		default:
		}
	}
}

func (s *batchSim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/models" {
		fmt.Fprint(w, `{"data":[{"id":"final_model"}]}`)
		return
	}
	_, _ = io.Copy(io.Discard, r.Body)
	now := time.Now()
	s.first.CompareAndSwap(nil, &now)
	q := &simSeq{left: s.Tokens, done: make(chan struct{})}
	s.mu.Lock()
	s.waiting = append(s.waiting, q)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	select {
	case <-q.done:
	case <-r.Context().Done():
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"index": 0,
		"message": map[string]any{"role": "assistant", "content": "Let me think.\nANSWER: 18"}}}})
}

// runBatchSim evaluates n gsm8k samples against a fresh simulated server at
// the given concurrency. It returns the wall time of Run and the time from
// the first request reaching the server to Run's return (which leaves out
// loading the dataset).
func runBatchSim(b *testing.B, data string, n, conc int) (wall, serving time.Duration, sim *batchSim) {
	b.Helper()
	sim = newBatchSim(64, 10*time.Millisecond, 8)
	srv := httptest.NewServer(sim)
	defer srv.Close()
	defer sim.Close()
	o := Options{Task: "gsm8k", Backend: BackendURL, BaseURL: srv.URL + "/v1", DataDir: data, Limit: n,
		MaxTokens: 4000, Concurrency: conc, OutDir: b.TempDir()}
	start := time.Now()
	sum, err := Run(context.Background(), o)
	end := time.Now()
	if err != nil {
		b.Fatal(err)
	}
	if sum.Scored != n {
		b.Fatalf("scored %d of %d", sum.Scored, n)
	}
	return end.Sub(start), end.Sub(*sim.first.Load()), sim
}

// BenchmarkBatchingServer drives the real evaluation (client, worker pool,
// scoring, samples.jsonl) over a gsm8k-sized job against a simulated
// batching server (B=64 sequences per 10 ms step, 8-token completions):
// wall time of Run at concurrency 2 (gsm8k's --max-connections in the
// original) against the default concurrency (speedup_x), and the default's
// share of the server's saturated throughput B/(tokens*step): from the first
// request to the end of Run (saturation_pct), and over the whole of Run
// including loading the dataset (e2e_saturation_pct, a fixed cost that the
// short simulated completions make look large). batch_fill_pct is the mean
// batch occupancy per step. Goal: speedup_x >= 10, saturation_pct >= 90.
// The concurrency-2 run takes about 23 s.
//
//	go test ./internal/eval -run '^$' -bench BatchingServer -benchtime 1x
func BenchmarkBatchingServer(b *testing.B) {
	data := dataDir(b)
	const n = 512
	for range b.N {
		slow, _, _ := runBatchSim(b, data, n, 2)
		fast, serving, sim := runBatchSim(b, data, n, DefaultConcurrency)
		b.ReportMetric(slow.Seconds(), "conc2_s")
		b.ReportMetric(fast.Seconds(), "default_s")
		b.ReportMetric(slow.Seconds()/fast.Seconds(), "speedup_x")
		b.ReportMetric(100*float64(n)/serving.Seconds()/sim.Saturated(), "saturation_pct")
		b.ReportMetric(100*float64(n)/fast.Seconds()/sim.Saturated(), "e2e_saturation_pct")
		b.ReportMetric(100*float64(sim.seqSteps.Load())/float64(int64(sim.B)*sim.steps.Load()), "batch_fill_pct")
	}
}
