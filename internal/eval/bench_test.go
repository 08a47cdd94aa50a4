package eval

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
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
	idle     atomic.Int64              // ns the server waited with nothing to run, after the first request
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
			t0 := time.Now()
			select {
			case <-s.wake:
				next = time.Time{}
				if first := s.first.Load(); first != nil {
					s.idle.Add(int64(time.Since(maxTime(t0, *first))))
				}
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

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Fill is the share of the server's capacity used from the first request on:
// the mean batch occupancy over the steps taken and the steps it could have
// taken while idle. Unlike a share of the nominal throughput it does not
// count against the client the steps that a loaded machine makes late.
func (s *batchSim) Fill() float64 {
	idleSteps := float64(s.idle.Load()) / float64(s.Step)
	return float64(s.seqSteps.Load()) / (float64(s.B) * (float64(s.steps.Load()) + idleSteps))
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
	return runBatchSimB(b, data, 64, 8, n, conc)
}

// runBatchSimB is runBatchSim against a server of batch size bs whose
// completions take tokens steps.
func runBatchSimB(b *testing.B, data string, bs, tokens, n, conc int) (wall, serving time.Duration, sim *batchSim) {
	b.Helper()
	sim = newBatchSim(bs, 10*time.Millisecond, tokens)
	srv := httptest.NewServer(sim)
	defer srv.Close()
	defer sim.Close()
	o := Options{
		Task: "gsm8k", OutDir: b.TempDir(),
		Target:   Target{Backend: BackendURL, BaseURL: srv.URL + "/v1"},
		Data:     Data{DataDir: data, Limit: n},
		Requests: Requests{MaxTokens: 4000, Concurrency: conc},
	}
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

// bigGSM8K returns a data directory whose gsm8k test split holds rows rows:
// the real split's rows repeated.
func bigGSM8K(b *testing.B, rows int) string {
	b.Helper()
	src, err := os.ReadFile(filepath.Join(dataDir(b), "gsm8k", "test.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSpace(string(src)), "\n")
	var sb strings.Builder
	for i := range rows {
		l := lines[i%len(lines)]
		sb.WriteString(strings.TrimSuffix(l, "\n") + "\n")
	}
	dir := b.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "gsm8k"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gsm8k", "test.jsonl"), []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkAdaptiveConcurrency measures the share of a batching server's
// capacity that the evaluation uses (saturation_pct: batchSim.Fill, the mean
// batch occupancy from the first request on, idle time included) with
// default settings (adaptive: start at DefaultConcurrency, grow while
// throughput grows) and, as the anchor, with concurrency fixed at
// DefaultConcurrency (fixed_pct), against the simulated continuous-batching
// server (B sequences per 10 ms step, 32-token completions: B=256 then
// takes 800 completions a second, which a loaded 2-core machine can still
// send and score) at B=64 and B=256, over 16 batches' worth of gsm8k
// samples. nominal_pct is the adaptive run's completions per second against
// B/(32 steps of 10 ms), which a loaded machine's late steps pull down.
// Goal: saturation_pct >= 97.
//
//	go test ./internal/eval -run '^$' -bench AdaptiveConcurrency -benchtime 1x
func BenchmarkAdaptiveConcurrency(b *testing.B) {
	const tokens = 32
	for _, bs := range []int{64, 256} {
		b.Run(fmt.Sprintf("B=%d", bs), func(b *testing.B) {
			n := 16 * bs
			data := bigGSM8K(b, n)
			for range b.N {
				_, _, sim := runBatchSimB(b, data, bs, tokens, n, DefaultConcurrency)
				b.ReportMetric(100*sim.Fill(), "fixed_pct")
				_, serving, sim := runBatchSimB(b, data, bs, tokens, n, 0)
				b.ReportMetric(100*sim.Fill(), "saturation_pct")
				b.ReportMetric(100*float64(n)/serving.Seconds()/sim.Saturated(), "nominal_pct")
			}
		})
	}
}
