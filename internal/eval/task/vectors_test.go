package task

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/eval/evaltest"
	"github.com/ptb-dev/ptb/internal/eval/judge"
	"github.com/ptb-dev/ptb/internal/eval/pytext"
)

// vectors reads reference_vectors.txt: section title -> JSON lines.
func vectors(t *testing.T) map[string][]map[string]any {
	t.Helper()
	f, err := os.Open(filepath.Join(evaltest.Shared(t), "spec", "reference_vectors.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]map[string]any{}
	sec := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "### ") {
			sec = strings.Fields(strings.TrimPrefix(line, "### "))[0]
			if strings.HasPrefix(line, "### inspect <think>") {
				sec = "think"
			}
			continue
		}
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		out[sec] = append(out[sec], m)
	}
	return out
}

func str(m map[string]any, k string) string { s, _ := m[k].(string); return s }

func score(s string) float64 {
	if s == "C" {
		return 1
	}
	return 0
}

func mustTask(t testing.TB, name string) Task {
	t.Helper()
	tk, err := New(name, "", Config{Prompts: testPrompts})
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// staticPrompts stands in for the pinned judge prompts (package pinned
// fetches and checks the real ones; its tests and eval's cover that path).
type staticPrompts map[string]string

func (s staticPrompts) JudgePrompt(_ context.Context, name string) (string, error) {
	p, ok := s[name]
	if !ok {
		return "", fmt.Errorf("no prompt %q", name)
	}
	return p, nil
}

var testPrompts = staticPrompts{
	PromptArenaHardJudge:    "Judge the answers. End with [[A>B]] or similar.",
	PromptHealthBenchGrader: "# Conversation\n<<conversation>>\n\n# Rubric item\n<<rubric_item>>",
}

func TestVectorsGSM8K(t *testing.T) {
	v := vectors(t)
	tk := mustTask(t, "gsm8k")
	if len(v["gsm8k"]) < 20 {
		t.Fatalf("only %d gsm8k vectors", len(v["gsm8k"]))
	}
	for _, c := range v["gsm8k"] {
		got, err := tk.Score(context.Background(), Env{}, Sample{ID: "x", Target: str(c, "target")}, Output{Content: str(c, "completion")})
		if err != nil {
			t.Fatal(err)
		}
		if got.Extracted != str(c, "extracted") || got.Score != score(str(c, "score")) {
			t.Errorf("%q vs %q: got (%q, %v), want (%q, %s)", str(c, "completion"), str(c, "target"), got.Extracted, got.Score, str(c, "extracted"), str(c, "score"))
		}
	}
	for _, c := range v["think"] {
		if got := pytext.StripThinkInspect(str(c, "raw")); got != str(c, "completion_after_think_strip") {
			t.Errorf("strip %q = %q, want %q", str(c, "raw"), got, str(c, "completion_after_think_strip"))
		}
		got, _ := tk.Score(context.Background(), Env{}, Sample{Target: "18"}, Output{Content: str(c, "raw")})
		if got.Extracted != str(c, "extracted") || got.Score != score(str(c, "score_vs_18")) {
			t.Errorf("%q: got (%q, %v), want (%q, %s)", str(c, "raw"), got.Extracted, got.Score, str(c, "extracted"), str(c, "score_vs_18"))
		}
	}
}

func TestVectorsAIME(t *testing.T) {
	v := vectors(t)
	tk := mustTask(t, "aime2025")
	if len(v["aime2025"]) < 10 {
		t.Fatalf("only %d aime vectors", len(v["aime2025"]))
	}
	for _, c := range v["aime2025"] {
		if got := RemoveBoxed(str(c, "completion")); got != str(c, "after_remove_boxed") {
			t.Errorf("RemoveBoxed(%q) = %q, want %q", str(c, "completion"), got, str(c, "after_remove_boxed"))
		}
		got, _ := tk.Score(context.Background(), Env{}, Sample{Target: str(c, "target")}, Output{Content: str(c, "completion")})
		if got.Extracted != str(c, "extracted") || got.Score != score(str(c, "score")) {
			t.Errorf("%q vs %q: got (%q, %v), want (%q, %s)", str(c, "completion"), str(c, "target"), got.Extracted, got.Score, str(c, "extracted"), str(c, "score"))
		}
	}
}

func TestVectorsGPQA(t *testing.T) {
	v := vectors(t)
	tk := mustTask(t, "gpqamain")
	if len(v["gpqa"]) < 10 {
		t.Fatalf("only %d gpqa vectors", len(v["gpqa"]))
	}
	for _, c := range v["gpqa"] {
		want := ""
		if p, _ := c["parsed"].([]any); len(p) > 0 {
			want = p[0].(string)
		}
		got, _ := tk.Score(context.Background(), Env{}, Sample{Target: str(c, "target_letter")}, Output{Content: str(c, "completion")})
		if got.Extracted != want || got.Score != score(str(c, "score")) {
			t.Errorf("%q: got (%q, %v), want (%q, %s)", str(c, "completion"), got.Extracted, got.Score, want, str(c, "score"))
		}
	}
}

func TestVectorsBFCL(t *testing.T) {
	v := vectors(t)
	for _, strict := range []bool{false, true} {
		tk := &bfcl{strict: strict}
		for _, c := range v["bfcl"] {
			name, args, err := parsePyCall(str(c, "ground_truth"))
			if err != nil {
				t.Fatal(err)
			}
			s := Sample{ID: "x", Target: str(c, "ground_truth"), data: bfclTarget{Function: name, Arguments: args}}
			var out Output
			calls, _ := c["tool_calls"].([]any)
			for _, call := range calls {
				pair := call.([]any)
				out.ToolCalls = append(out.ToolCalls, ToolCall{Function: FunctionCall{Name: pair[0].(string), Arguments: pair[1].(string)}})
			}
			got, _ := tk.Score(context.Background(), Env{}, s, out)
			want := score(str(c, "score"))
			if strict && str(c, "case") == "bool given as int" {
				want = 0 // the strict version's fix
			}
			if got.Score != want {
				t.Errorf("strict=%v %s: score %v, want %v", strict, str(c, "case"), got.Score, want)
			}
		}
	}
}

func TestVectorsHealthBenchGrader(t *testing.T) {
	v := vectors(t)
	if len(v["healthbench"]) < 7 {
		t.Fatalf("only %d healthbench vectors", len(v["healthbench"]))
	}
	for _, c := range v["healthbench"] {
		met, ok := ParseGraderReply(str(c, "grader_output"))
		wantMet, _ := c["criteria_met"].(bool)
		if ok != c["accepted"].(bool) || met != wantMet {
			t.Errorf("%q: got (%v, %v), want (%v, %v)", str(c, "grader_output"), met, ok, wantMet, c["accepted"])
		}
	}
	conv := HealthBenchConversation([]Message{{Role: "user", Content: "hi"}, {Role: "assistant", Content: "hello"}, {Role: "user", Content: "I have a headache"}}, "Drink water.")
	if want := "user: hi\n\nassistant: hello\n\nuser: I have a headache\n\nassistant: Drink water."; conv != want {
		t.Errorf("conversation = %q", conv)
	}
	if got := HealthBenchRubric(5, "Advises hydration."); got != "[5] Advises hydration." {
		t.Errorf("rubric = %q", got)
	}
	if got := HealthBenchRubric(-3, "Is rude."); got != "[-3] Is rude." {
		t.Errorf("rubric = %q", got)
	}
}

func TestVectorsLimitRepetitions(t *testing.T) {
	v := vectors(t)
	r := pytext.NewRepeater()
	if len(v["limit_repetitions"]) < 8 {
		t.Fatalf("only %d vectors", len(v["limit_repetitions"]))
	}
	for _, c := range v["limit_repetitions"] {
		if got := r.Limit(str(c, "input")); got != str(c, "output") {
			t.Errorf("Limit(%q) = %q, want %q", str(c, "input"), got, str(c, "output"))
		}
	}
}

func TestVectorsArenaHard(t *testing.T) {
	v := vectors(t)
	if len(v["arenahard"]) < 9 {
		t.Fatalf("only %d vectors", len(v["arenahard"]))
	}
	for _, c := range v["arenahard"] {
		want, _ := c["label"].(string)
		if got := ArenaHardVerdict(str(c, "judgment")); got != want {
			t.Errorf("verdict(%q) = %q, want %q", str(c, "judgment"), got, want)
		}
	}
}

func TestArenaHardAggregate(t *testing.T) {
	// EVAL_SPEC §8.6: (B>>A, A>B), (A=B, A=B), (A>>B, B>A), (B>A, B>>A), plus a skipped question.
	games := [][2]string{{"B>>A", "A>B"}, {"A=B", "A=B"}, {"A>>B", "B>A"}, {"B>A", "B>>A"}}
	var scored []Scored
	for _, g := range games {
		var e []float64
		for _, x := range arenaScoreMap[g[0]] {
			e = append(e, 1-x)
		}
		e = append(e, arenaScoreMap[g[1]]...)
		scored = append(scored, Scored{Entries: e})
	}
	scored = append(scored, Scored{Skipped: true, Entries: []float64{1}})
	m := (&arenaHard{}).Metrics(scored)
	if a := m["accuracy"].(float64); !near(a, 0.428571) {
		t.Errorf("accuracy %v", a)
	}
	if s := m["stderr"].(float64); !near(s, 0.126851) {
		t.Errorf("stderr %v", s)
	}
}

func near(a, b float64) bool { return a-b < 5e-6 && b-a < 5e-6 }

func TestHealthBenchAggregate(t *testing.T) {
	A := Scored{Criteria: []Criterion{{5, true, "accuracy", false}, {3, false, "completeness", false}, {-2, true, "communication_quality", false}}}
	B := Scored{Criteria: []Criterion{{4, false, "completeness", false}, {-6, true, "accuracy", false}}}
	C := Scored{Criteria: []Criterion{{10, true, "completeness", false}, {5, true, "accuracy", false}}}
	for _, s := range []*Scored{&A, &B, &C} {
		s.Score = HealthBenchNormalized(s.Criteria)
	}
	if A.Score != 0.375 || B.Score != -1.5 || C.Score != 1 {
		t.Fatalf("normalized %v %v %v", A.Score, B.Score, C.Score)
	}
	m := HealthBenchMetrics([]Scored{A, B, C})
	ax := m["by_axis"].(map[string]any)
	if m["accuracy"].(float64) != 0 || !near(ax["accuracy"].(float64), 0.4) || !near(ax["completeness"].(float64), 0.588235) {
		t.Errorf("A,B,C metrics %v", m)
	}
	if _, ok := ax["communication_quality"]; ok {
		t.Errorf("axis with no positive points kept: %v", ax)
	}
	m = HealthBenchMetrics([]Scored{A, C})
	ax = m["by_axis"].(map[string]any)
	if !near(m["accuracy"].(float64), 0.6875) || !near(ax["accuracy"].(float64), 1) || !near(ax["completeness"].(float64), 0.769231) {
		t.Errorf("A,C metrics %v", m)
	}
}

// seqJudge answers the games of one question in order.
type seqJudge struct {
	replies []string
	n       int
}

func (j *seqJudge) Complete(context.Context, judge.Request) (string, error) {
	r := j.replies[j.n]
	j.n++
	return r, nil
}

// One game without a verdict and the other with a label outside score_map:
// the original drops the question (its None check comes before the
// score_map lookup); two verdicts with an unknown label crash it.
func TestArenaHardMissingAndUnknownVerdict(t *testing.T) {
	cases := []struct {
		g1, g2      string
		wantSkipped bool
		wantErr     bool
		wantEntries int
	}{
		{"no verdict", "[[A]]", true, false, 0},
		{"[[A]]", "no verdict", true, false, 0},
		{"[[A>>>B]]", "[[B>A]]", false, true, 0},
		{"[[B>A]]", "[[A>>B]]", false, false, 4},
		{"no verdict", "[[A>B]]", true, false, 0},
	}
	for _, c := range cases {
		a := newArenaHard(false)
		s := Sample{ID: "q1", data: arenaData{question: "Write a poem.", baseline: "A poem."}}
		sc, err := a.Score(context.Background(), Env{Judge: &seqJudge{replies: []string{c.g1, c.g2}}}, s, Output{Content: "My poem."})
		if (err != nil) != c.wantErr {
			t.Errorf("%q/%q: error %v, want error %v", c.g1, c.g2, err, c.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		if sc.Skipped != c.wantSkipped || len(sc.Entries) != c.wantEntries {
			t.Errorf("%q/%q: skipped %v entries %v, want skipped %v and %d entries", c.g1, c.g2, sc.Skipped, sc.Entries, c.wantSkipped, c.wantEntries)
		}
	}
}
