package eval

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/eval/evaltest"
	"github.com/ptb-dev/ptb/internal/eval/judge"
)

// TestHealthBenchJudgeRateLimited: a grading server that answers each
// grading prompt first with 429 and Retry-After: 2, then with a grade. Every
// criterion is graded (none counted as not met for want of a grade), and
// each wait is the 2 s the header asked for (waits recorded, not timed).
func TestHealthBenchJudgeRateLimited(t *testing.T) {
	data := dataDir(t)
	var mu sync.Mutex
	seen := map[string]bool{}
	limited := 0
	js := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var req struct{ Messages []judge.Message }
		_ = json.Unmarshal(b, &req)
		prompt := req.Messages[len(req.Messages)-1].Content
		mu.Lock()
		first := !seen[prompt]
		seen[prompt] = true
		if first {
			limited++
		}
		mu.Unlock()
		if first {
			w.Header().Set("Retry-After", "2")
			http.Error(w, `{"error":{"message":"Rate limit reached for gpt-5-mini"}}`, http.StatusTooManyRequests)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"message": map[string]any{"content": "```json\n{\"explanation\": \"ok\", \"criteria_met\": true}\n```"}}}})
	}))
	defer js.Close()
	n := 4
	replies, _ := answers(t, "healthbench", data, n)
	srv := httptest.NewServer(&fakeServer{t: t, replies: replies})
	defer srv.Close()
	var waits []time.Duration
	j := judge.NewOpenAI(js.URL, "k")
	j.Sleep = func(_ context.Context, d time.Duration) error {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		return nil
	}
	taskSleeps := 0
	o := Options{
		Task: "healthbench", OutDir: t.TempDir(), Judge: j, Pinned: evaltest.NewMirror(t).Store(t),
		Target:   Target{Backend: BackendURL, BaseURL: srv.URL + "/v1"},
		Data:     Data{DataDir: data, Limit: n},
		Requests: Requests{Concurrency: 2, Sleep: func(context.Context, time.Duration) error { taskSleeps++; return nil }},
	}
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	done, err := readScored(o.OutDir + "/" + SamplesFile)
	if err != nil {
		t.Fatal(err)
	}
	criteria := 0
	for id, sc := range done {
		for i, c := range sc.Criteria {
			criteria++
			if c.Failed || !c.Met {
				t.Errorf("sample %s criterion %d: %+v, want graded and met", id, i, c)
			}
		}
	}
	if criteria == 0 || limited != criteria {
		t.Errorf("%d criteria, %d rate-limited prompts: want every criterion limited once", criteria, limited)
	}
	if len(waits) != criteria {
		t.Errorf("%d waits for %d 429s", len(waits), criteria)
	}
	for _, d := range waits {
		if d != 2*time.Second {
			t.Errorf("waited %v, want the 2 s of Retry-After", d)
		}
	}
	if taskSleeps != 0 {
		t.Errorf("the task's own retry loop slept %d times: the SDK-level retry should have absorbed the 429s", taskSleeps)
	}
	if sum.Metrics["total_grader_calls"] != criteria {
		t.Errorf("total_grader_calls %v, want %d", sum.Metrics["total_grader_calls"], criteria)
	}
}
