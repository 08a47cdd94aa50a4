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

	"github.com/ptb-dev/ptb/internal/eval/dataset"
	"github.com/ptb-dev/ptb/internal/eval/evaltest"
	"github.com/ptb-dev/ptb/internal/eval/judge"
	"github.com/ptb-dev/ptb/internal/eval/task"
)

// dataDir builds a data root: the shared datasets plus stand-ins for what is
// not shipped (AIME, GPQA: synthetic rows; judge prompts).
func dataDir(t testing.TB) string {
	t.Helper()
	shared := evaltest.Datasets(t)
	dir := t.TempDir()
	for _, d := range []string{"gsm8k", "humaneval", "bfcl", "arenahard", "healthbench"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
		ents, _ := os.ReadDir(filepath.Join(shared, d))
		for _, e := range ents {
			if err := os.Symlink(filepath.Join(shared, d, e.Name()), filepath.Join(dir, d, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	write := func(p, s string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var aime, gpqa strings.Builder
	gpqa.WriteString("Record ID,Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3\n")
	for i := range 30 {
		fmt.Fprintf(&aime, `{"id": %d, "problem": "What is %d + %d?", "answer": %d}`+"\n", i, i, i, 2*i)
		fmt.Fprintf(&gpqa, "rec%d,Which is right %d?,right%d,wrong%da,wrong%db,wrong%dc\n", i, i, i, i, i, i)
	}
	write("aime2025/test.jsonl", aime.String())
	write("gpqa/gpqa_main.csv", gpqa.String())
	return dir
}

// answers maps a request's last message to the reply the fake server gives:
// correct for even positions, wrong for odd ones.
func answers(t *testing.T, name, data string, n int) (map[string]any, float64) {
	t.Helper()
	tk, _ := task.New(name, "", task.Config{Prompts: prompts{store: evaltest.NewMirror(t).Store(t)}})
	samples, err := tk.Load(context.Background(), dataset.Dir(data))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	good := 0
	for i, s := range samples[:n] {
		key := s.Messages[len(s.Messages)-1].Content
		right := i%2 == 0
		if right {
			good++
		}
		switch name {
		case "gsm8k", "aime2025":
			ans := s.Target
			if !right {
				ans = "none"
			}
			m[key] = "Reasoning.\nANSWER: " + ans
		case "gpqamain":
			ans := s.Target
			if !right {
				ans = string(rune('A' + (int(s.Target[0]-'A')+1)%4))
			}
			m[key] = "<think>hmm</think>ANSWER: " + ans
		case "humaneval":
			sol := s.Target
			if !right {
				sol = "    raise ValueError()\n"
			}
			m[key] = "```python\ndef solution():\n" + sol + "```"
		case "bfcl":
			fn, args, _ := task.TargetArguments(s)
			if !right {
				args = "{}"
			}
			m[key] = []map[string]any{{"id": "call_1", "type": "function", "function": map[string]any{"name": fn, "arguments": args}}}
		default:
			m[key] = "An answer."
		}
	}
	return m, float64(good) / float64(n)
}

type fakeServer struct {
	t        *testing.T
	replies  map[string]any
	requests atomic.Int64
	fail429  atomic.Int64 // answer this many requests with 429 first
	mu       sync.Mutex
	bad      []string
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/models" {
		fmt.Fprint(w, `{"data":[{"id":"final_model"}]}`)
		return
	}
	f.requests.Add(1)
	if f.fail429.Add(-1) >= 0 {
		http.Error(w, `{"error":{"message":"slow down"}}`, 429)
		return
	}
	b, _ := io.ReadAll(r.Body)
	var req map[string]json.RawMessage
	_ = json.Unmarshal(b, &req)
	for k := range req {
		switch k {
		case "model", "messages", "max_tokens", "tools", "tool_choice":
		default:
			f.mu.Lock()
			f.bad = append(f.bad, k)
			f.mu.Unlock()
		}
	}
	var msgs []task.Message
	_ = json.Unmarshal(req["messages"], &msgs)
	reply, ok := f.replies[msgs[len(msgs)-1].Content]
	if !ok {
		http.Error(w, `{"error":{"message":"This model's maximum context length is 10 tokens"}}`, 400)
		return
	}
	msg := map[string]any{"role": "assistant", "content": nil}
	if s, ok := reply.(string); ok {
		msg["content"] = s
	} else {
		msg["tool_calls"] = reply
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"index": 0, "message": msg}}})
}

// fakeJudge answers like gpt-5-mini would, in a fixed way.
func fakeJudge(t *testing.T) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var req struct {
			Model               string `json:"model"`
			MaxCompletionTokens int    `json:"max_completion_tokens"`
			Messages            []judge.Message
		}
		_ = json.Unmarshal(b, &req)
		reply := "My final verdict: [[B>A]]"
		if strings.Contains(req.Messages[len(req.Messages)-1].Content, "# Rubric item") {
			reply = "```json\n{\"explanation\": \"ok\", \"criteria_met\": true}\n```"
		}
		if req.Model != judge.Model || req.MaxCompletionTokens != 49152 {
			http.Error(w, "bad judge request", 400)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"message": map[string]any{"content": reply}}}})
	}))
}

func noSleep(context.Context, time.Duration) error { return nil }

func TestEndToEndAllTasks(t *testing.T) {
	data := dataDir(t)
	js := fakeJudge(t)
	defer js.Close()
	for _, name := range task.Names() {
		t.Run(name, func(t *testing.T) {
			n := 12
			replies, want := answers(t, name, data, n)
			fs := &fakeServer{t: t, replies: replies}
			fs.fail429.Store(2)
			srv := httptest.NewServer(fs)
			defer srv.Close()
			o := Options{
				Task: name, OutDir: t.TempDir(), Judge: judge.NewOpenAI(js.URL, "k"), Pinned: evaltest.NewMirror(t).Store(t),
				Target:   Target{Backend: BackendURL, BaseURL: srv.URL + "/v1"},
				Data:     Data{DataDir: data, Limit: n},
				Requests: Requests{Sleep: noSleep, Concurrency: 8},
			}
			if name == "humaneval" {
				o.Sandbox = evaltest.Sandbox(t)
			}
			sum, err := Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			if len(fs.bad) > 0 {
				t.Errorf("requests carried fields %v", fs.bad)
			}
			switch name {
			case "arenahardwriting":
				want = 0.5 // B>A in both games: candidate wins game 1, loses game 2
			case "healthbench":
				want = sum.Accuracy // every criterion met; checked below
				if sum.Metrics["n_examples"] != n {
					t.Errorf("n_examples %v", sum.Metrics["n_examples"])
				}
			}
			if sum.Scored != n || !closeTo(sum.Accuracy, want) {
				t.Errorf("accuracy %v over %d, want %v over %d", sum.Accuracy, sum.Scored, want, n)
			}
			b, err := os.ReadFile(filepath.Join(o.OutDir, MetricsFile))
			if err != nil || !strings.HasPrefix(string(b), "{\n  \"accuracy\": ") {
				t.Errorf("metrics.json: %s %v", b, err)
			}
			_, hasStderr := sum.Metrics["stderr"]
			if hasStderr == (name == "bfcl") {
				t.Errorf("stderr present=%v for %s", hasStderr, name)
			}
		})
	}
}

func closeTo(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestContextOverflowIsScored(t *testing.T) {
	data := dataDir(t)
	fs := &fakeServer{t: t, replies: map[string]any{}} // every request overflows
	srv := httptest.NewServer(fs)
	defer srv.Close()
	out := t.TempDir()
	sum, err := Run(context.Background(), Options{
		Task: "gsm8k", OutDir: out,
		Target:   Target{Backend: BackendURL, BaseURL: srv.URL + "/v1"},
		Data:     Data{DataDir: data, Limit: 3},
		Requests: Requests{Sleep: noSleep},
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Scored != 3 || sum.Accuracy != 0 {
		t.Errorf("summary %+v", sum)
	}
	done, _ := readScored(filepath.Join(out, SamplesFile))
	if !strings.Contains(done["0"].Completion, "maximum context length") || done["0"].Output.StopReason != "model_length" {
		t.Errorf("sample 0: %+v", done["0"])
	}
}

func TestResumeAndReplay(t *testing.T) {
	data := dataDir(t)
	replies, _ := answers(t, "gsm8k", data, 20)
	fs := &fakeServer{t: t, replies: replies}
	srv := httptest.NewServer(fs)
	defer srv.Close()
	out := t.TempDir()
	o := Options{
		Task: "gsm8k", OutDir: out,
		Target:   Target{Backend: BackendURL, BaseURL: srv.URL + "/v1"},
		Data:     Data{DataDir: data, Limit: 10},
		Requests: Requests{Sleep: noSleep},
	}
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	o.Limit = 20
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if got := fs.requests.Load(); got != 20 || sum.Scored != 20 || !closeTo(sum.Accuracy, 0.5) {
		t.Errorf("%d requests, summary %+v", got, sum)
	}
	// A different version or generation length must not mix into the same directory.
	o.Version = task.Strict
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "another --out") {
		t.Errorf("mixed versions: %v", err)
	}
	o.Version = ""
	o.MaxTokens = 100
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "max tokens from the retry ladder, not 100") {
		t.Errorf("mixed max tokens: %v", err)
	}
	o.MaxTokens = 0
	// Replay the recorded completions: same score, no server.
	done, _ := readScored(filepath.Join(out, SamplesFile))
	var lines []string
	for id, sc := range done {
		b, _ := json.Marshal(map[string]any{"id": id, "completion": sc.Output.Content})
		lines = append(lines, string(b))
	}
	resp := filepath.Join(t.TempDir(), "responses.jsonl")
	if err := os.WriteFile(resp, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := Run(context.Background(), Options{
		Task: "gsm8k", OutDir: t.TempDir(),
		Target: Target{Backend: BackendReplay, Responses: resp},
		Data:   Data{DataDir: data, Limit: 20},
	})
	if err != nil {
		t.Fatal(err)
	}
	if rs.Accuracy != sum.Accuracy || rs.Missing != 0 {
		t.Errorf("replay %+v, live %+v", rs, sum)
	}
}

func TestMissingJudgeOrSandbox(t *testing.T) {
	for _, name := range []string{"humaneval", "healthbench", "arenahardwriting"} {
		_, err := Run(context.Background(), Options{Task: name, OutDir: t.TempDir(), Target: Target{Backend: BackendReplay}})
		if err == nil {
			t.Errorf("%s ran without sandbox/judge", name)
		}
	}
}

// A crash mid-write leaves a torn last line; the resumed run cuts it off and
// redoes that sample, and the file stays readable.
func TestResumeAfterTornWrite(t *testing.T) {
	data := dataDir(t)
	replies, _ := answers(t, "gsm8k", data, 6)
	fs := &fakeServer{t: t, replies: replies}
	srv := httptest.NewServer(fs)
	defer srv.Close()
	out := t.TempDir()
	o := Options{
		Task: "gsm8k", OutDir: out,
		Target:   Target{Backend: BackendURL, BaseURL: srv.URL + "/v1"},
		Data:     Data{DataDir: data, Limit: 4},
		Requests: Requests{Sleep: noSleep},
	}
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(out, SamplesFile)
	b, _ := os.ReadFile(p)
	lines := strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
	torn := strings.Join(lines[:3], "") + lines[3][:len(lines[3])/2] // the 4th record half-written
	os.WriteFile(p, []byte(torn), 0o644)
	o.Limit = 6
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Scored != 6 {
		t.Errorf("scored %d, want 6", sum.Scored)
	}
	if got := fs.requests.Load(); got != 4+3 {
		t.Errorf("%d requests, want 7 (4, then the torn one and two new)", got)
	}
	done, err := readScored(p)
	if err != nil || len(done) != 6 {
		t.Errorf("samples.jsonl after resume: %d records, %v", len(done), err)
	}
	// A samples file without its state file is not adopted.
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, SamplesFile), []byte(torn), 0o644)
	o.OutDir = other
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "no eval.json") {
		t.Errorf("orphan samples.jsonl: %v", err)
	}
}
