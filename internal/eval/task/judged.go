package task

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ptb-dev/ptb/internal/eval/dataset"
	"github.com/ptb-dev/ptb/internal/eval/judge"
	"github.com/ptb-dev/ptb/internal/eval/pytext"
)

// Data files of the judged tasks. The data ships with ptb, as with the
// original (internal/eval/dataset/shipped). The judge prompts come through
// Config.Prompts: package pinned fetches them from upstream at pinned
// commits and checks their digests (docs/EVAL.md).
var (
	ArenaHardQuestions = dataset.File{Shipped: "arenahard_question.jsonl.gz", Local: "arenahard/question.jsonl"}
	ArenaHardBaseline  = dataset.File{Shipped: "arenahard_Qwen3-1.7B.jsonl.gz", Local: "arenahard/Qwen3-1.7B.jsonl"}
	HealthBenchData    = dataset.File{Shipped: "healthbench_easy.jsonl.gz", Local: "healthbench/healthbench_easy.jsonl"}
)

const (
	arenaJudgeMaxTokens  = 49152
	healthGraderAttempts = 5
)

// judgePrompt loads a pinned judge prompt through p.
func judgePrompt(ctx context.Context, p Prompts, task, name string) (string, error) {
	if p == nil {
		return "", fmt.Errorf("%s: no pinned judge prompts configured", task)
	}
	s, err := p.JudgePrompt(ctx, name)
	if err != nil {
		return "", fmt.Errorf("%s judge prompt: %w", task, err)
	}
	return s, nil
}

// ArenaHardUserTemplate is arena-hard-v2.0's judge prompt_template.
const ArenaHardUserTemplate = "<|User Prompt|>\n{QUESTION}\n\n<|The Start of Assistant A's Answer|>\n{ANSWER_A}\n<|The End of Assistant A's Answer|>\n\n<|The Start of Assistant B's Answer|>\n{ANSWER_B}\n<|The End of Assistant B's Answer|>"

// fillTemplate substitutes {NAME} placeholders in one pass (Python
// str.format: substituted values are not re-scanned).
func fillTemplate(tmpl string, vals map[string]string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		j := strings.IndexByte(tmpl[i:], '}')
		if j < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		if v, ok := vals[tmpl[i+1:i+j]]; ok {
			b.WriteString(tmpl[:i])
			b.WriteString(v)
		} else {
			b.WriteString(tmpl[:i+j+1])
		}
		tmpl = tmpl[i+j+1:]
	}
}

// ArenaHard.

var (
	verdictDouble = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\[\[([AB<>=]+)\]\]`) })
	verdictSingle = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\[([AB<>=]+)\]`) })
)

// ArenaHardVerdict is get_score: the last [[label]] in the upper-cased
// judgment, else the last [label]; "" when none.
func ArenaHardVerdict(judgment string) string {
	u := strings.ToUpper(judgment)
	for _, re := range []*regexp.Regexp{verdictDouble(), verdictSingle()} {
		if ms := re.FindAllStringSubmatch(u, -1); len(ms) > 0 {
			return ms[len(ms)-1][1]
		}
	}
	return ""
}

// arenaScoreMap is score_map with weight 3 (A's perspective in game terms).
var arenaScoreMap = map[string][]float64{
	"A>B": {1}, "A>>B": {1, 1, 1}, "A=B": {0.5}, "A<<B": {0, 0, 0}, "A<B": {0},
	"B>A": {0}, "B>>A": {0, 0, 0}, "B=A": {0.5}, "B<<A": {1, 1, 1}, "B<A": {1},
}

type arenaData struct{ question, baseline string }

type arenaHard struct {
	strict  bool
	rep     *pytext.Repeater
	prompts Prompts
	system  string
}

func init() {
	Register(Registration{Name: "arenahardwriting", Files: []dataset.File{ArenaHardQuestions, ArenaHardBaseline},
		New: func(strict bool, cfg Config) Task {
			a := newArenaHard(strict)
			a.prompts = cfg.Prompts
			return a
		}})
}

func newArenaHard(strict bool) *arenaHard {
	return &arenaHard{strict: strict, rep: pytext.NewRepeater()}
}

func (a *arenaHard) Info() Info {
	return Info{Name: "arenahardwriting", Version: version(a.strict), MaxTokens: [3]int{16384, 12288, 8192}, Attempts: [3]int{4, 3, 2},
		Concurrency: 1, DevLimit: 32, Style: StyleScript, Judge: true}
}

func (a *arenaHard) Load(ctx context.Context, src dataset.Source) ([]Sample, error) {
	qs, err := dataset.Records(ctx, src, ArenaHardQuestions)
	if err != nil {
		return nil, err
	}
	base, err := dataset.Records(ctx, src, ArenaHardBaseline)
	if err != nil {
		return nil, err
	}
	if a.system, err = judgePrompt(ctx, a.prompts, "arenahardwriting", PromptArenaHardJudge); err != nil {
		return nil, err
	}
	answers := map[string]string{}
	for i, raw := range base {
		var r struct {
			UID      string `json:"uid"`
			Messages []struct {
				Content json.RawMessage `json:"content"`
			} `json:"messages"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("arenahard baseline row %d: %w", i, err)
		}
		if len(r.Messages) == 0 {
			continue
		}
		var c struct {
			Answer string `json:"answer"`
		}
		_ = json.Unmarshal(r.Messages[len(r.Messages)-1].Content, &c)
		answers[r.UID] = c.Answer
	}
	out := make([]Sample, 0, len(qs))
	for i, raw := range qs {
		var q struct {
			UID    string `json:"uid"`
			Prompt string `json:"prompt"`
		}
		if err := json.Unmarshal(raw, &q); err != nil {
			return nil, fmt.Errorf("arenahard question %d: %w", i, err)
		}
		b, ok := answers[q.UID]
		if !ok {
			return nil, fmt.Errorf("arenahard question %s has no baseline answer", q.UID)
		}
		out = append(out, Sample{ID: q.UID, Messages: []Message{{Role: "user", Content: q.Prompt}}, data: arenaData{q.Prompt, b}})
	}
	// The original always shuffles with random.Random(42); --limit N keeps the first N.
	rng := pytext.NewRandom(42)
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out, nil
}

// judgeArena is one game: up to 3 attempts, 5·2^attempt s after a failure,
// dropping reasoning_effort after a 400 that mentions it. "" after 3 failures.
func (a *arenaHard) judgeArena(ctx context.Context, env Env, user string) (string, error) {
	req := judge.Request{Messages: []judge.Message{{Role: "system", Content: a.system}, {Role: "user", Content: user}},
		MaxCompletionTokens: arenaJudgeMaxTokens, ReasoningEffort: "medium"}
	for attempt := range 3 {
		text, err := env.Judge.Complete(ctx, req)
		if err == nil {
			return text, nil
		}
		if errors.Is(err, judge.ErrNullContent) {
			if a.strict {
				return "", nil
			}
			return "", fmt.Errorf("judge returned null content (the original crashes here): %w", err)
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if judge.IsBadRequest(err, "reasoning") && req.ReasoningEffort != "" {
			req.ReasoningEffort = ""
			continue
		}
		if attempt < 2 {
			if err := env.sleep(ctx, time.Duration(5<<attempt)*time.Second); err != nil {
				return "", err
			}
		}
	}
	return "", nil
}

func (a *arenaHard) Score(ctx context.Context, env Env, s Sample, out Output) (Scored, error) {
	d, ok := s.data.(arenaData)
	if !ok {
		return Scored{}, fmt.Errorf("arenahard sample %s was not loaded by this task", s.ID)
	}
	if env.Judge == nil {
		return Scored{}, errors.New("arenahardwriting needs a judge (OpenAI API or a grading endpoint); none was configured")
	}
	answer := a.rep.Limit(pytext.StripThinkScript(out.Content))
	sc := Scored{ID: s.ID, Completion: answer, Extracted: answer}
	games := [2][2]string{{d.baseline, answer}, {answer, d.baseline}}
	var maps [2][]float64
	for g, ab := range games {
		user := fillTemplate(ArenaHardUserTemplate, map[string]string{"QUESTION": d.question, "ANSWER_A": ab[0], "ANSWER_B": ab[1]})
		text, err := a.judgeArena(ctx, env, user)
		if err != nil {
			return Scored{}, fmt.Errorf("arenahard %s game %d: %w", s.ID, g+1, err)
		}
		label := ""
		if text != "" {
			label = ArenaHardVerdict(text)
		}
		sc.Verdicts = append(sc.Verdicts, label)
	}
	// _judgments_to_battles: a question with no verdict in either game is
	// dropped before score_map is consulted, so a missing verdict in one game
	// and an unknown label in the other skip the question; only two verdicts
	// with an unknown label crash the original.
	for _, label := range sc.Verdicts {
		if label == "" {
			sc.Skipped = true
			return sc, nil
		}
	}
	for g, label := range sc.Verdicts {
		m, ok := arenaScoreMap[label]
		if !ok {
			if a.strict {
				sc.Skipped = true
				return sc, nil
			}
			return Scored{}, fmt.Errorf("arenahard %s game %d: verdict %q is not in score_map (the original crashes here)", s.ID, g+1, label)
		}
		maps[g] = m
	}
	for _, v := range maps[0] {
		sc.Entries = append(sc.Entries, 1-v)
	}
	sc.Entries = append(sc.Entries, maps[1]...)
	sc.Score, _ = MeanStderr(sc.Entries)
	return sc, nil
}

func (a *arenaHard) Metrics(scored []Scored) map[string]any {
	var entries []float64
	for _, s := range scored {
		if !s.Skipped {
			entries = append(entries, s.Entries...)
		}
	}
	m, se := MeanStderr(entries)
	return map[string]any{"accuracy": m, "stderr": se}
}

// HealthBench.

type rubric struct {
	Criterion string   `json:"criterion"`
	Points    float64  `json:"points"`
	Tags      []string `json:"tags"`
}

type healthData struct {
	prompt  []Message
	rubrics []rubric
	theme   string
}

type healthBench struct {
	strict   bool
	rep      *pytext.Repeater
	prompts  Prompts
	template string
}

func init() {
	Register(Registration{Name: "healthbench", Files: []dataset.File{HealthBenchData},
		New: func(strict bool, cfg Config) Task {
			h := newHealthBench(strict)
			h.prompts = cfg.Prompts
			return h
		}})
}

func newHealthBench(strict bool) *healthBench {
	return &healthBench{strict: strict, rep: pytext.NewRepeater()}
}

func (h *healthBench) Info() Info {
	return Info{Name: "healthbench", Version: version(h.strict), MaxTokens: [3]int{16384, 12288, 8192}, Attempts: [3]int{4, 3, 2},
		Concurrency: 1, DevLimit: 32, Style: StyleScript, Judge: true}
}

func (h *healthBench) Load(ctx context.Context, src dataset.Source) ([]Sample, error) {
	recs, err := dataset.Records(ctx, src, HealthBenchData)
	if err != nil {
		return nil, err
	}
	if h.template, err = judgePrompt(ctx, h.prompts, "healthbench", PromptHealthBenchGrader); err != nil {
		return nil, err
	}
	out := make([]Sample, 0, len(recs))
	for i, raw := range recs {
		var r struct {
			PromptID    string    `json:"prompt_id"`
			Prompt      []Message `json:"prompt"`
			Rubrics     []rubric  `json:"rubrics"`
			ExampleTags []string  `json:"example_tags"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("healthbench row %d: %w", i, err)
		}
		theme := ""
		for _, t := range r.ExampleTags {
			if strings.HasPrefix(t, "theme:") {
				theme = strings.TrimPrefix(t, "theme:")
				break
			}
		}
		out = append(out, Sample{ID: r.PromptID, Messages: r.Prompt, data: healthData{r.Prompt, r.Rubrics, theme}})
	}
	rng := pytext.NewRandom(42)
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out, nil
}

// HealthBenchConversation renders the conversation for the grader.
func HealthBenchConversation(prompt []Message, response string) string {
	var parts []string
	for _, m := range prompt {
		parts = append(parts, m.Role+": "+m.Content)
	}
	parts = append(parts, "assistant: "+response)
	return strings.Join(parts, "\n\n")
}

// HealthBenchRubric renders a rubric item as "[points] criterion".
func HealthBenchRubric(points float64, criterion string) string {
	return "[" + pyNumber(points) + "] " + criterion
}

func pyNumber(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return fmt.Sprintf("%d", int64(f))
	}
	return pytext.FloatRepr(f)
}

var graderFenceRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile("^```json" + pyS + "*|" + pyS + "*```$") })

// ParseGraderReply is the grader reply parsing: strip, drop a leading
// ```json and a trailing ```, json.loads (empty on error); accepted only if
// criteria_met is a JSON boolean.
func ParseGraderReply(text string) (met, accepted bool) {
	cleaned := graderFenceRE().ReplaceAllString(pytext.Strip(text), "")
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(cleaned), &m); err != nil {
		return false, false
	}
	v, ok := m["criteria_met"]
	if !ok {
		return false, false
	}
	switch strings.TrimSpace(string(v)) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

func (h *healthBench) grade(ctx context.Context, env Env, convo string, r rubric) (bool, bool, error) {
	// Python str.replace, as the original: every occurrence, in this order
	// (a response that contains "<<rubric_item>>" is filled too).
	prompt := strings.ReplaceAll(h.template, "<<conversation>>", convo)
	prompt = strings.ReplaceAll(prompt, "<<rubric_item>>", HealthBenchRubric(r.Points, r.Criterion))
	req := judge.Request{Messages: []judge.Message{{Role: "user", Content: prompt}}, MaxCompletionTokens: arenaJudgeMaxTokens}
	for attempt := range healthGraderAttempts {
		text, err := env.Judge.Complete(ctx, req)
		if err != nil {
			if ctx.Err() != nil {
				return false, false, ctx.Err()
			}
			if err := env.sleep(ctx, time.Duration(2*(attempt+1))*time.Second); err != nil {
				return false, false, err
			}
			continue
		}
		if met, ok := ParseGraderReply(text); ok {
			return met, true, nil
		}
	}
	return false, false, nil
}

func (h *healthBench) Score(ctx context.Context, env Env, s Sample, out Output) (Scored, error) {
	d, ok := s.data.(healthData)
	if !ok {
		return Scored{}, fmt.Errorf("healthbench sample %s was not loaded by this task", s.ID)
	}
	if env.Judge == nil {
		return Scored{}, errors.New("healthbench needs a judge (OpenAI API or a grading endpoint); none was configured")
	}
	answer := h.rep.Limit(pytext.StripThinkScript(out.Content))
	convo := HealthBenchConversation(d.prompt, answer)
	crit := make([]Criterion, len(d.rubrics))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 8)
	for i, r := range d.rubrics {
		axis := ""
		for _, t := range r.Tags {
			if strings.HasPrefix(t, "axis:") {
				axis = strings.TrimPrefix(t, "axis:")
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			met, ok, err := h.grade(ctx, env, convo, r)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			crit[i] = Criterion{Points: int(r.Points), Met: met, Axis: axis, Failed: !ok}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return Scored{}, fmt.Errorf("healthbench %s: %w", s.ID, firstErr)
	}
	return Scored{ID: s.ID, Completion: answer, Extracted: answer, Score: HealthBenchNormalized(crit), Criteria: crit, Theme: d.theme, GraderCall: len(crit)}, nil
}

// HealthBenchNormalized is Σ met points / Σ positive points (0 if none), unclipped.
func HealthBenchNormalized(crit []Criterion) float64 {
	var total, max float64
	for _, c := range crit {
		if c.Points > 0 {
			max += float64(c.Points)
		}
		if c.Met {
			total += float64(c.Points)
		}
	}
	if max <= 0 {
		return 0
	}
	return total / max
}

func clip01(x float64) float64 { return math.Min(1, math.Max(0, x)) }

// HealthBenchMetrics aggregates scored examples; see EVAL_SPEC §9.4. The
// bootstrap uses its own seeded generator, not numpy's PCG64 (docs/EVAL.md).
func HealthBenchMetrics(scored []Scored) map[string]any {
	vals := scores(scored)
	mean, _ := MeanStderr(vals)
	acc := clip01(mean)
	var se float64
	if len(vals) > 0 {
		rng := rand.New(rand.NewPCG(42, 0))
		means := make([]float64, 1000)
		for b := range means {
			var s float64
			for range vals {
				s += vals[rng.IntN(len(vals))]
			}
			means[b] = clip01(s / float64(len(vals)))
		}
		var mu float64
		for _, m := range means {
			mu += m
		}
		mu /= float64(len(means))
		for _, m := range means {
			se += (m - mu) * (m - mu)
		}
		se = math.Sqrt(se / float64(len(means)))
	}
	byTheme := map[string][]float64{}
	type pool struct{ met, pos float64 }
	byAxis := map[string]*pool{}
	calls := 0
	for _, s := range scored {
		byTheme[s.Theme] = append(byTheme[s.Theme], s.Score)
		calls += s.GraderCall
		for _, c := range s.Criteria {
			p := byAxis[c.Axis]
			if p == nil {
				p = &pool{}
				byAxis[c.Axis] = p
			}
			if c.Met {
				p.met += float64(c.Points)
			}
			if c.Points > 0 {
				p.pos += float64(c.Points)
			}
		}
	}
	themes := map[string]any{}
	for t, v := range byTheme {
		m, _ := MeanStderr(v)
		themes[t] = clip01(m)
	}
	axes := map[string]any{}
	keys := make([]string, 0, len(byAxis))
	for k := range byAxis {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if p := byAxis[k]; p.pos > 0 && k != "" {
			axes[k] = clip01(p.met / p.pos)
		}
	}
	return map[string]any{"accuracy": acc, "stderr": se, "n_examples": len(scored), "total_grader_calls": calls, "by_theme": themes, "by_axis": axes}
}

func (h *healthBench) Metrics(scored []Scored) map[string]any { return HealthBenchMetrics(scored) }
