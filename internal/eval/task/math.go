package task

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/ptb-dev/ptb/internal/eval/dataset"
	"github.com/ptb-dev/ptb/internal/eval/pytext"
)

// Data files (hub revision "main" where the original pins none; see docs/EVAL.md).
var (
	GSM8KTest  = dataset.File{Repo: "openai/gsm8k", Revision: "main", Path: "main/test-00000-of-00001.parquet", Local: "gsm8k/test.jsonl", Shipped: "gsm8k_test.jsonl.gz"}
	GSM8KTrain = dataset.File{Repo: "openai/gsm8k", Revision: "main", Path: "main/train-00000-of-00001.parquet", Local: "gsm8k/train.jsonl"}
	AIME2025   = dataset.File{Repo: "math-ai/aime25", Revision: "main", Path: "test.jsonl", Local: "aime2025/test.jsonl"}
	GPQAMain   = dataset.File{Repo: "Idavidrein/gpqa", Revision: "main", Path: "gpqa_main.csv", Local: "gpqa/gpqa_main.csv", Gated: true}
)

// GSM8KFewshotIndices are the train rows of HF datasets' shuffle(seed=42),
// first 10 (numpy default_rng(42).permutation(7473)).
var GSM8KFewshotIndices = []int{3082, 2184, 5897, 2437, 6330, 819, 3812, 5878, 5302, 5876}

// GSM8KFewshotSHA256 is the sha256 of the 10-shot system message.
const GSM8KFewshotSHA256 = "588566f0f639c921fe0fb2d15b08cf81323ff9edd2a54b888aa69949b597e2e2"

const gsm8kTemplate = "Solve the following math problem step by step. The last line of your response should be of the form \"ANSWER: $ANSWER\" (without quotes) where $ANSWER is the answer to the problem.\n\n{prompt}\n\nRemember to put your answer on its own line at the end in the form \"ANSWER: $ANSWER\" (without quotes) where $ANSWER is the answer to the problem, and you do not need to use a \\boxed command.\n\nReasoning:"

const aimeTemplate = "Solve the following math problem step by step.\nThe last line of your response should be of the form \"ANSWER: $ANSWER\" (without quotes) where $ANSWER is the answer to the problem.\n\n{prompt}\n\nRemember to put your answer on its own line at the end in the form \"ANSWER: $ANSWER\" (without quotes) where $ANSWER is the answer to the problem, and you do not need to use a \\boxed command."

type gsm8kRecord struct {
	Question string `json:"question"`
	Answer   string `json:"answer"`
}

// splitGSM8K returns (target, reasoning) of a GSM8K answer field.
func splitGSM8K(answer string) (string, string) {
	parts := strings.Split(answer, "####")
	target := pytext.Strip(parts[len(parts)-1])
	return target, pytext.Strip(strings.Join(parts[:len(parts)-1], "####"))
}

// GSM8KFewshot builds the 10-shot system message from the train split's records.
func GSM8KFewshot(train []json.RawMessage) (string, error) {
	var shots []string
	for _, i := range GSM8KFewshotIndices {
		if i >= len(train) {
			return "", fmt.Errorf("gsm8k train split has %d rows, need index %d", len(train), i)
		}
		var r gsm8kRecord
		if err := json.Unmarshal(train[i], &r); err != nil {
			return "", fmt.Errorf("gsm8k train row %d: %w", i, err)
		}
		t, reasoning := splitGSM8K(r.Answer)
		shots = append(shots, r.Question+"\n\nReasoning:\n"+reasoning+"\n\nANSWER: "+t)
	}
	return strings.Join(shots, "\n\n"), nil
}

func init() {
	Register(Registration{Name: "gsm8k", Files: []dataset.File{GSM8KTest},
		New: func(strict bool, _ Config) Task { return &gsm8k{strict: strict} }})
}

type gsm8k struct{ strict bool }

func (g *gsm8k) Info() Info {
	return Info{Name: "gsm8k", Version: version(g.strict), MaxTokens: [3]int{4000, 3000, 2000}, Attempts: [3]int{4, 3, 2},
		Concurrency: 2, DevLimit: 150, Style: StyleInspect, GPUMemory: "0.3"}
}

// gsm8kFewshotSystem is the 10-shot system message, shipped as the spec
// recommends (EVAL_SPEC 2.2) so that an evaluation needs only the test
// split; TestGSM8KFewshotSHA checks it equals GSM8KFewshot over the train
// split.
//
//go:embed gsm8k_fewshot_system.txt
var gsm8kFewshotSystem string

func (g *gsm8k) Load(ctx context.Context, src dataset.Source) ([]Sample, error) {
	return g.LoadFirst(ctx, src, 0)
}

// LoadFirst implements FirstLoader.
func (g *gsm8k) LoadFirst(ctx context.Context, src dataset.Source, n int) ([]Sample, error) {
	system := gsm8kFewshotSystem
	if sum := sha256.Sum256([]byte(system)); hex.EncodeToString(sum[:]) != GSM8KFewshotSHA256 {
		return nil, fmt.Errorf("gsm8k few-shot system message has sha256 %x, want %s", sum, GSM8KFewshotSHA256)
	}
	test, err := dataset.RecordsN(ctx, src, GSM8KTest, n)
	if err != nil {
		return nil, err
	}
	out := make([]Sample, 0, len(test))
	for i, raw := range test {
		var r gsm8kRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("gsm8k test row %d: %w", i, err)
		}
		t, _ := splitGSM8K(r.Answer)
		out = append(out, Sample{
			ID:       strconv.Itoa(i),
			Messages: []Message{{Role: "system", Content: system}, {Role: "user", Content: strings.Replace(gsm8kTemplate, "{prompt}", r.Question, 1)}},
			Target:   t,
		})
	}
	return out, nil
}

func (g *gsm8k) Score(ctx context.Context, env Env, s Sample, out Output) (Scored, error) {
	c := pytext.StripThinkInspect(out.Content)
	ext, ok := matchNumber(c, s.Target, g.strict)
	return Scored{ID: s.ID, Completion: c, Extracted: ext, Score: boolScore(ok), Target: s.Target}, nil
}

func (g *gsm8k) Metrics(scored []Scored) map[string]any { return accuracyStderr(scored) }

// matchNumber is inspect's match(numeric=True) (faithful) or an exact
// comparison of the last number with the target (strict).
func matchNumber(completion, target string, strict bool) (string, bool) {
	if !strict {
		return pytext.MatchEnd(completion, target)
	}
	nums := strictNumberRE().FindAllString(completion, -1)
	if len(nums) == 0 {
		return "", false
	}
	last := nums[len(nums)-1]
	a, err1 := strconv.ParseFloat(strings.ReplaceAll(last, ",", ""), 64)
	b, err2 := strconv.ParseFloat(strings.ReplaceAll(strings.TrimSpace(target), ",", ""), 64)
	return last, err1 == nil && err2 == nil && a == b
}

var strictNumberRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[-+]?\d[\d,]*(?:\.\d+)?`) })

func init() {
	Register(Registration{Name: "aime2025", Files: []dataset.File{AIME2025},
		New: func(strict bool, _ Config) Task { return &aime{strict: strict} }})
}

type aime struct{ strict bool }

func (a *aime) Info() Info {
	return Info{Name: "aime2025", Version: version(a.strict), MaxTokens: [3]int{16000, 12000, 8000}, Attempts: [3]int{4, 3, 2},
		Concurrency: 6, Style: StyleInspect, GPUMemory: "0.8"}
}

func (a *aime) Load(ctx context.Context, src dataset.Source) ([]Sample, error) {
	return a.LoadFirst(ctx, src, 0)
}

// LoadFirst implements FirstLoader.
func (a *aime) LoadFirst(ctx context.Context, src dataset.Source, n int) ([]Sample, error) {
	recs, err := dataset.RecordsN(ctx, src, AIME2025, n)
	if err != nil {
		return nil, err
	}
	out := make([]Sample, 0, len(recs))
	for i, raw := range recs {
		var r struct {
			ID      json.RawMessage `json:"id"`
			Problem string          `json:"problem"`
			Answer  json.RawMessage `json:"answer"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("aime2025 row %d: %w", i, err)
		}
		out = append(out, Sample{
			ID:       pyStr(r.ID, strconv.Itoa(i)),
			Messages: []Message{{Role: "user", Content: strings.Replace(aimeTemplate, "{prompt}", r.Problem, 1)}},
			Target:   pyStr(r.Answer, ""),
		})
	}
	return out, nil
}

// pyStr is str(value) of a JSON string or number; def when absent.
func pyStr(raw json.RawMessage, def string) string {
	if len(raw) == 0 || string(raw) == "null" {
		return def
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

var boxedRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\\boxed\{(.+)\}`) })

// RemoveBoxed is aime_scorer's un-boxing: greedy, within a line.
func RemoveBoxed(s string) string { return boxedRE().ReplaceAllString(s, "$1") }

func (a *aime) Score(ctx context.Context, env Env, s Sample, out Output) (Scored, error) {
	c := pytext.StripThinkInspect(out.Content)
	ext, ok := matchNumber(RemoveBoxed(c), s.Target, a.strict)
	return Scored{ID: s.ID, Completion: c, Extracted: ext, Score: boolScore(ok), Target: s.Target}, nil
}

func (a *aime) Metrics(scored []Scored) map[string]any { return accuracyStderr(scored) }

// GPQA.

const gpqaTemplate = "Answer the following multiple choice question. The last line of your response should be of the following format: 'ANSWER: $LETTER' (without quotes) where LETTER is one of A,B,C,D. Think step by step before answering.\n\n{question}\n\n{choices}"

const (
	pyS = `[\t\n\v\f\r \x1c-\x1f\x85\xa0\p{Z}]`
	pyD = `\p{Nd}`
	pyW = `[\p{L}\p{N}_]`
)

var (
	gpqaStrictRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?im)^ANSWER` + pyS + `*:` + pyS + `*([A-Za-z` + pyD + ` ,]+)` + pyS + `*(?:$|\n|\.)`)
	})
	gpqaLenientRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)ANSWER` + pyS + `*:` + pyS + `*([A-Za-z` + pyD + ` ,]+)(?:[^\p{L}\p{N}_]|\n|$|\.)`)
	})
	gpqaLastRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)ANSWER` + pyS + `*:` + pyS + `*\**\(?([A-Da-d])\)?\**(?:[^\p{L}\p{N}_]|$)`)
	})
)

var _ = pyW

// ParseGPQA is multiple_choice's answer parsing: the first strict match, else
// the first lenient match; group 1 stripped, trailing "." removed; valid only
// if exactly one of A-D (case-sensitive). "" means no answer.
func ParseGPQA(c string) string {
	m := gpqaStrictRE().FindStringSubmatch(c)
	if m == nil {
		m = gpqaLenientRE().FindStringSubmatch(c)
	}
	if m == nil {
		return ""
	}
	a := strings.TrimRight(pytext.Strip(m[1]), ".")
	switch a {
	case "A", "B", "C", "D":
		return a
	}
	return ""
}

// parseGPQAStrict takes the last "ANSWER: X" with X a letter A-D in any case,
// optionally bold or parenthesised.
func parseGPQAStrict(c string) string {
	ms := gpqaLastRE().FindAllStringSubmatch(c, -1)
	if len(ms) == 0 {
		return ""
	}
	return strings.ToUpper(ms[len(ms)-1][1])
}

type gpqaData struct{ Letter string }

func init() {
	Register(Registration{Name: "gpqamain", Files: []dataset.File{GPQAMain},
		New: func(strict bool, cfg Config) Task { return &gpqa{strict: strict, seed: cfg.Seed} }})
}

type gpqa struct {
	strict bool
	seed   uint32
}

func (g *gpqa) Info() Info {
	return Info{Name: "gpqamain", Version: version(g.strict), MaxTokens: [3]int{16000, 12000, 8000}, Attempts: [3]int{4, 3, 2},
		Concurrency: 6, DevLimit: 50, Style: StyleInspect, GPUMemory: "0.8"}
}

func (g *gpqa) Load(ctx context.Context, src dataset.Source) ([]Sample, error) {
	return g.LoadFirst(ctx, src, 0)
}

// LoadFirst implements FirstLoader: the choice shuffle draws row by row, so
// the first n rows come out as they do in a full load.
func (g *gpqa) LoadFirst(ctx context.Context, src dataset.Source, n int) ([]Sample, error) {
	recs, err := dataset.RecordsN(ctx, src, GPQAMain, n)
	if err != nil {
		return nil, err
	}
	rng := pytext.NewRandom(g.seed)
	out := make([]Sample, 0, len(recs))
	for i, raw := range recs {
		var r map[string]string
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("gpqamain row %d: %w", i, err)
		}
		orig := []string{r["Correct Answer"], r["Incorrect Answer 1"], r["Incorrect Answer 2"], r["Incorrect Answer 3"]}
		pos := []int{0, 1, 2, 3}
		rng.Shuffle(4, func(a, b int) { pos[a], pos[b] = pos[b], pos[a] })
		var lines []string
		letter := ""
		for k, p := range pos {
			l := string(rune('A' + k))
			lines = append(lines, l+") "+orig[p])
			if p == 0 {
				letter = l
			}
		}
		prompt := strings.Replace(gpqaTemplate, "{question}", r["Question"], 1)
		prompt = strings.Replace(prompt, "{choices}", strings.Join(lines, "\n"), 1)
		id := r["Record ID"]
		if id == "" {
			id = strconv.Itoa(i)
		}
		out = append(out, Sample{ID: id, Messages: []Message{{Role: "user", Content: prompt}}, Target: letter, data: gpqaData{letter}})
	}
	return out, nil
}

func (g *gpqa) Score(ctx context.Context, env Env, s Sample, out Output) (Scored, error) {
	c := pytext.StripThinkInspect(out.Content)
	var a string
	if g.strict {
		a = parseGPQAStrict(c)
	} else {
		a = ParseGPQA(c)
	}
	return Scored{ID: s.ID, Completion: c, Extracted: a, Score: boolScore(a != "" && a == s.Target), Target: s.Target}, nil
}

func (g *gpqa) Metrics(scored []Scored) map[string]any { return accuracyStderr(scored) }
