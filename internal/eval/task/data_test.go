package task

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/eval/dataset"
	"github.com/ptb-dev/ptb/internal/eval/evaltest"
)

func TestGSM8KFewshotSHA(t *testing.T) {
	src := dataset.Dir(evaltest.Datasets(t))
	train, err := dataset.Records(context.Background(), src, GSM8KTrain)
	if err != nil {
		t.Fatal(err)
	}
	sys, err := GSM8KFewshot(train)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(sys))
	if got := hex.EncodeToString(sum[:]); got != GSM8KFewshotSHA256 || len([]rune(sys)) != 5872 {
		t.Errorf("few-shot sha256 %s (%d chars), want %s (5872)", got, len([]rune(sys)), GSM8KFewshotSHA256)
	}
	if sys != gsm8kFewshotSystem {
		t.Errorf("the shipped few-shot message differs from the one built from the train split")
	}
	samples, err := mustTask(t, "gsm8k").Load(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != 1319 || samples[0].Messages[0].Content != sys || !strings.HasSuffix(samples[0].Messages[1].Content, "\n\nReasoning:") {
		t.Errorf("gsm8k load: %d samples", len(samples))
	}
	odd := 0
	for _, s := range samples {
		if strings.ContainsAny(s.Target, ",-") {
			odd++
		}
	}
	if odd != 16 {
		t.Errorf("%d targets with commas or signs, want 16", odd)
	}
}

// tokens flattens JSON into its token stream, so that comparing two streams
// checks values and key order but not spacing or escaping.
func tokens(t *testing.T, raw []byte) []any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out []any
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		out = append(out, tok)
	}
}

func TestBFCLRequestsMatchInspect(t *testing.T) {
	dir := evaltest.Datasets(t)
	samples, err := mustTask(t, "bfcl").Load(context.Background(), dataset.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "bfcl", "exec_simple_inspect_requests.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	i := 0
	tk := mustTask(t, "bfcl")
	for sc.Scan() {
		var want struct {
			ID         string          `json:"id"`
			Messages   json.RawMessage `json:"messages"`
			Tools      json.RawMessage `json:"tools"`
			ToolChoice string          `json:"tool_choice"`
			Target     struct {
				Function  string          `json:"function"`
				Arguments json.RawMessage `json:"arguments"`
			} `json:"target"`
		}
		if err := json.Unmarshal(sc.Bytes(), &want); err != nil {
			t.Fatal(err)
		}
		if i >= len(samples) {
			t.Fatalf("fixture has more than %d samples", len(samples))
		}
		s := samples[i]
		i++
		msgs, _ := json.Marshal(s.Messages)
		if s.ID != want.ID || !reflect.DeepEqual(tokens(t, msgs), tokens(t, want.Messages)) {
			t.Errorf("%s: messages differ", want.ID)
		}
		if !reflect.DeepEqual(tokens(t, s.Tools), tokens(t, want.Tools)) {
			t.Errorf("%s: tools differ\n got %s\nwant %s", want.ID, s.Tools, want.Tools)
		}
		// The ground truth sent back as a tool call scores 1.
		got, err := tk.Score(context.Background(), Env{}, s, Output{ToolCalls: []ToolCall{{Type: "function", Function: FunctionCall{Name: want.Target.Function, Arguments: string(want.Target.Arguments)}}}})
		if err != nil || got.Score != 1 {
			t.Errorf("%s: ground truth scored %v (%v)", want.ID, got.Score, err)
		}
		fn, args, _ := TargetArguments(s)
		wantArgs, _ := decodeJSONPy(string(want.Target.Arguments))
		gotArgs, _ := decodeJSONPy(args)
		if fn != want.Target.Function || !pyEqual(gotArgs, wantArgs, true) {
			t.Errorf("%s: target %s(%s), want %s(%s)", want.ID, fn, args, want.Target.Function, want.Target.Arguments)
		}
	}
	if i != 100 || len(samples) != 100 {
		t.Errorf("compared %d of %d samples, want 100", i, len(samples))
	}
}

func TestDevSubsets(t *testing.T) {
	src := dataset.Dir(evaltest.Datasets(t))
	tests := []struct {
		task string
		want []string // EVAL_SPEC §8.1, §9.1: first ids of random.Random(42).shuffle
	}{
		{"arenahardwriting", []string{"934879a5b80a421b", "86e476fd58be4568", "042351d2911d453b", "fbee6c5e1f704f1d", "62d4303c62af4c02"}},
		{"healthbench", []string{"877efd3d-801c-47fe-b31b-0516fafccfcb", "c17ec1d2-78a8-4a0b-beb0-a448fd7c7aea", "77837307-e6e1-4816-9c21-c82250c09d93"}},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		samples, err := mustTask(t, tt.task).Load(context.Background(), overlay{dataset.Dir(dir), src})
		if err != nil {
			t.Fatal(err)
		}
		for i, id := range tt.want {
			if samples[i].ID != id {
				t.Errorf("%s sample %d = %s, want %s", tt.task, i, samples[i].ID, id)
			}
		}
	}
}

// overlay opens from the first source that has the file.
type overlay []dataset.Source

func (o overlay) Open(ctx context.Context, f dataset.File) (io.ReadCloser, string, error) {
	var err error
	for _, s := range o {
		var rc io.ReadCloser
		var name string
		if rc, name, err = s.Open(ctx, f); err == nil {
			return rc, name, nil
		}
	}
	return nil, "", err
}

func TestHumanEvalVectors(t *testing.T) {
	env := Env{Programs: evaltest.Programs(t, HumanEvalLimits, 3*time.Second)}
	samples, err := mustTask(t, "humaneval").Load(context.Background(), dataset.Dir(evaltest.Datasets(t)))
	if err != nil {
		t.Fatal(err)
	}
	body := "    for i in range(len(numbers)):\n        for j in range(i + 1, len(numbers)):\n            if abs(numbers[i] - numbers[j]) < threshold:\n                return True\n    return False\n"
	def := "def has_close_elements(numbers, threshold):\n"
	helperBody := "    for i in range(len(numbers)):\n        for j in range(i + 1, len(numbers)):\n            if helper(numbers[i], numbers[j]) < threshold:\n                return True\n    return False\n"
	oneLiner := "return any(abs(a-b) < threshold for i,a in enumerate(numbers) for b in numbers[i+1:])\n"
	completions := map[string]string{
		"fenced python block with full function":             "```python\nfrom typing import List\n\n" + def + body + "```",
		"fenced python block, def only":                      "```python\n" + def + body + "```",
		"bare body, no fence":                                body,
		"bare full function, no fence":                       def + body,
		"plain ``` fence":                                    "```\n" + def + body + "```",
		"helper function before target":                      "```python\ndef helper(a, b):\n    return abs(a - b)\n\n" + def + helperBody + "```",
		"fence without colon-newline-4spaces (one-liner)":    "```python\n" + oneLiner + "```",
		"wrong answer":                                       "```python\n" + def + "    return False\n```",
		"infinite loop":                                      "```python\n" + def + "    while True:\n        pass\n```",
		"think block then fence (think stripped by inspect)": "<think>let me think</think>\n```python\n" + def + body + "```",
	}
	v := vectors(t)
	tk := mustTask(t, "humaneval")
	if len(v["humaneval"]) != len(completions) {
		t.Fatalf("%d humaneval vectors, %d completions", len(v["humaneval"]), len(completions))
	}
	var wg sync.WaitGroup
	for _, c := range v["humaneval"] {
		comp, ok := completions[str(c, "case")]
		if !ok {
			t.Errorf("no completion for case %q", str(c, "case"))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := tk.Score(context.Background(), env, samples[0], Output{Content: comp})
			if err != nil {
				t.Error(err)
				return
			}
			if got.Extracted != str(c, "extracted_answer") || got.Score != score(str(c, "score")) {
				t.Errorf("%s: got (%q, %v), want (%q, %s)", str(c, "case"), got.Extracted, got.Score, str(c, "extracted_answer"), str(c, "score"))
			}
		}()
	}
	wg.Wait()
}

// TestHumanEvalCanonical: through the program pool, every canonical
// solution scores 1 and every corrupted one (it raises first) 0, in both
// versions.
func TestHumanEvalCanonical(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 656 python programs")
	}
	env := Env{Programs: evaltest.Programs(t, HumanEvalLimits, 20*time.Second)}
	samples, err := mustTask(t, "humaneval").Load(context.Background(), dataset.Dir(evaltest.Datasets(t)))
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != 164 {
		t.Fatalf("%d samples, want 164", len(samples))
	}
	for _, version := range []string{Faithful, Strict} {
		tk, err := New("humaneval", version, Config{})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for _, s := range samples {
			for _, corrupt := range []bool{false, true} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					sol := s.Target
					want := 1.0
					if corrupt {
						sol = "    raise ValueError('corrupted')\n" + sol
						want = 0
					}
					got, err := tk.Score(context.Background(), env, s, Output{Content: sol})
					if err != nil || got.Score != want {
						t.Errorf("%s %s corrupt=%v: score %v (%v)", version, s.ID, corrupt, got.Score, err)
					}
				}()
			}
		}
		wg.Wait()
	}
}
