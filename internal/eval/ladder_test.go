package eval

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ptb-dev/ptb/internal/eval/dataset"
	"github.com/ptb-dev/ptb/internal/eval/task"
)

// tokenServer answers gsm8k requests, failing (HTTP 400, not a context
// overflow, so the sample fails) every request at failAt tokens, or only
// the request whose last message is failOnly when that is set.
type tokenServer struct {
	failAt   int
	failOnly string
	mu       sync.Mutex
	byTokens map[int]int
}

func (s *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		MaxTokens int            `json:"max_tokens"`
		Messages  []task.Message `json:"messages"`
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	s.mu.Lock()
	s.byTokens[req.MaxTokens]++
	s.mu.Unlock()
	if req.MaxTokens == s.failAt && (s.failOnly == "" || req.Messages[len(req.Messages)-1].Content == s.failOnly) {
		http.Error(w, `{"error":{"message":"engine error at this length"}}`, http.StatusBadRequest)
		return
	}
	fmt.Fprint(w, `{"choices":[{"index":0,"message":{"role":"assistant","content":"ANSWER: 1"}}]}`)
}

func countLines(t *testing.T, p string) (int, map[int]int) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		return -1, nil
	}
	defer f.Close()
	n, byTokens := 0, map[int]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var s task.Scored
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatal(err)
		}
		n++
		byTokens[s.MaxTokens]++
	}
	return n, byTokens
}

func TestFaithfulLadderRerunsWholeSet(t *testing.T) {
	data := dataDir(t)
	const n = 5
	tk, _ := task.New("gsm8k", "", task.Config{})
	all, err := tk.Load(context.Background(), dataset.Dir(data))
	if err != nil {
		t.Fatal(err)
	}
	last := all[n-1].Messages[len(all[n-1].Messages)-1].Content
	cases := []struct {
		name     string
		ladder   string
		failOnly string
		// want: samples.jsonl by max tokens; failed attempts kept (lines each)
		want       map[int]int
		wantFailed []int
		want3000   int // requests at 3000
	}{
		{"faithful, every request fails at 4000", LadderFaithful, "", map[int]int{3000: n}, nil, n},
		{"faithful, one sample fails at 4000", LadderFaithful, last, map[int]int{3000: n}, []int{n - 1, n - 1, n - 1, n - 1}, n},
		{"per-sample keeps what finished", LadderPerSample, last, map[int]int{4000: n - 1, 3000: 1}, nil, 1},
		{"default is faithful", "", last, map[int]int{3000: n}, []int{n - 1, n - 1, n - 1, n - 1}, n},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ts := &tokenServer{failAt: 4000, failOnly: c.failOnly, byTokens: map[int]int{}}
			srv := httptest.NewServer(ts)
			defer srv.Close()
			o := Options{
				Task: "gsm8k", OutDir: t.TempDir(),
				Target:   Target{Backend: BackendURL, BaseURL: srv.URL + "/v1", Model: "m"},
				Data:     Data{DataDir: data, Limit: n},
				Requests: Requests{Sleep: noSleep, Concurrency: 1, Ladder: c.ladder},
			}
			sum, err := Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Scored != n {
				t.Errorf("scored %d", sum.Scored)
			}
			got, byTokens := countLines(t, filepath.Join(o.OutDir, SamplesFile))
			if got != n || fmt.Sprint(byTokens) != fmt.Sprint(c.want) {
				t.Errorf("samples.jsonl: %d lines by max tokens %v, want %v", got, byTokens, c.want)
			}
			for i, want := range c.wantFailed {
				if got, _ := countLines(t, filepath.Join(o.OutDir, FailedAttemptFile(i+1))); got != want {
					t.Errorf("%s: %d lines, want %d", FailedAttemptFile(i+1), got, want)
				}
			}
			if got, _ := countLines(t, filepath.Join(o.OutDir, FailedAttemptFile(len(c.wantFailed)+1))); got != -1 {
				t.Errorf("%s exists with %d lines", FailedAttemptFile(len(c.wantFailed)+1), got)
			}
			if ts.byTokens[3000] != c.want3000 || ts.byTokens[2000] != 0 {
				t.Errorf("requests by max tokens %v: want %d at 3000 and none at 2000", ts.byTokens, c.want3000)
			}
			if c.ladder != LadderPerSample && ts.byTokens[4000] < 4 {
				t.Errorf("requests at 4000: %d, want at least one per attempt (4)", ts.byTokens[4000])
			}
		})
	}
}

// Every attempt fails: no metrics, as in the original.
func TestFaithfulLadderAllFail(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"message":"broken"}}`, http.StatusBadRequest)
	}))
	defer srv.Close()
	o := Options{
		Task: "gsm8k", OutDir: t.TempDir(),
		Target:   Target{Backend: BackendURL, BaseURL: srv.URL + "/v1", Model: "m"},
		Data:     Data{DataDir: dataDir(t), Limit: 3},
		Requests: Requests{Sleep: noSleep, Concurrency: 1},
	}
	if _, err := Run(context.Background(), o); err == nil {
		t.Fatal("no error")
	}
	if _, err := os.Stat(filepath.Join(o.OutDir, MetricsFile)); err == nil {
		t.Error("metrics.json written")
	}
	for i := 1; i <= 9; i++ {
		if got, _ := countLines(t, filepath.Join(o.OutDir, FailedAttemptFile(i))); got > 0 {
			t.Errorf("%s has %d lines: nothing succeeded", FailedAttemptFile(i), got)
		}
	}
}

// A faithful evaluation resumed after a crash continues the attempt its
// samples belong to when they were all made at one setting; samples of
// mixed settings are set aside and the ladder starts over.
func TestFaithfulLadderResume(t *testing.T) {
	data := dataDir(t)
	const n = 5
	tk, _ := task.New("gsm8k", "", task.Config{})
	all, err := tk.Load(context.Background(), dataset.Dir(data))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		kept      []int // max tokens of the samples already in samples.jsonl
		want4000  int   // requests at 4000
		want3000  int
		setAside  int // lines in samples.failed-1.jsonl (-1: none)
		wantFinal map[int]int
	}{
		{"continues at 3000", []int{3000, 3000}, 0, n - 2, -1, map[int]int{3000: n}},
		{"mixed settings start over", []int{4000, 3000}, 4, n, 2, map[int]int{3000: n}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := t.TempDir()
			os.WriteFile(filepath.Join(out, StateFile), []byte(`{"task": "gsm8k", "version": "faithful", "ladder": "faithful"}`), 0o644)
			var lines []byte
			for i, mt := range c.kept {
				b, _ := json.Marshal(task.Scored{ID: all[i].ID, Completion: "ANSWER: 1", MaxTokens: mt})
				lines = append(append(lines, b...), '\n')
			}
			os.WriteFile(filepath.Join(out, SamplesFile), lines, 0o644)
			ts := &tokenServer{failAt: 4000, byTokens: map[int]int{}}
			srv := httptest.NewServer(ts)
			defer srv.Close()
			o := Options{
				Task: "gsm8k", OutDir: out,
				Target:   Target{Backend: BackendURL, BaseURL: srv.URL + "/v1", Model: "m"},
				Data:     Data{DataDir: data, Limit: n},
				Requests: Requests{Sleep: noSleep, Concurrency: 1},
			}
			if _, err := Run(context.Background(), o); err != nil {
				t.Fatal(err)
			}
			if ts.byTokens[3000] != c.want3000 || (c.want4000 == 0) != (ts.byTokens[4000] == 0) {
				t.Errorf("requests by max tokens %v, want %d at 3000 and %d at 4000", ts.byTokens, c.want3000, c.want4000)
			}
			if got, _ := countLines(t, filepath.Join(out, FailedAttemptFile(1))); got != c.setAside {
				t.Errorf("%s: %d lines, want %d", FailedAttemptFile(1), got, c.setAside)
			}
			if _, by := countLines(t, filepath.Join(out, SamplesFile)); fmt.Sprint(by) != fmt.Sprint(c.wantFinal) {
				t.Errorf("samples.jsonl by max tokens %v, want %v", by, c.wantFinal)
			}
		})
	}
}
