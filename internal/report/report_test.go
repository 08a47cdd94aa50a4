package report

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
	"golang.org/x/sys/unix"
)

// smallBaselines: two benchmarks, two base models; the weights come out as
// 10/21 and 11/21 (gaps 0.55 and 0.5).
const smallBaselines = `
format: ptb.baselines/v1
benchmarks: [b1, b2]
base_models:
  org/A-Base:
    zero_shot: {b1: 0.1, b2: 0.2}
    instruct: {b1: 0.6, b2: 0.5}
  org/B-Base:
    zero_shot: {b1: 0.3, b2: 0.0}
    instruct: {b1: 0.9, b2: 0.7}
`

func small(t *testing.T) *Baselines {
	t.Helper()
	b, err := ParseBaselines([]byte(smallBaselines), "small")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fp(v float64) *float64 { return &v }

// mkRun builds a clean, scored run; mods adjust it. Unless a mod sets the
// audit, the LLM judge's findings follow the verdict and flags (both pass
// when clean, a flag for C or M, none when unverified or unaudited), as when
// ptb's checks and the judge agree.
func mkRun(label string, seed int, bench, model string, score float64, mods ...func(*result.Result)) Run {
	r := &result.Result{
		Schema: result.Schema,
		RunID:  label + "/" + bench + "/" + model,
		Spec:   result.Spec{Label: label, Seed: seed, Benchmark: bench, BaseModel: model, Agent: "claude"},
		Stages: map[string]result.Stage{
			result.StageEvaluate: {Status: result.StatusDone},
		},
		Score:   fp(score),
		Verdict: result.VerdictClean,
		Flags:   []string{},
	}
	for _, m := range mods {
		m(r)
	}
	if r.Audit == nil && r.Verdict != "" && r.Verdict != result.VerdictUnverified {
		status := map[bool]string{true: "flag", false: "pass"}
		r.Audit = &result.Audit{Verdict: r.Verdict, Flags: r.Flags, Findings: []result.Finding{
			{Check: "judge.contamination", Status: status[slices.Contains(r.Flags, "C")], Kind: "C"},
			{Check: "judge.model", Status: status[slices.Contains(r.Flags, "M")], Kind: "M"},
		}}
	}
	return Run{Dir: filepath.Join("runs", label, bench, model), Result: r}
}

// judged sets the audit's findings: ptb's own verdict and flags stay as
// they are; the LLM judge's two judgements are c and m ("" = absent).
func judged(c, m string, other ...result.Finding) func(*result.Result) {
	return func(r *result.Result) {
		a := &result.Audit{Verdict: r.Verdict, Flags: r.Flags, Findings: other}
		if c != "" {
			a.Findings = append(a.Findings, result.Finding{Check: "judge.contamination", Status: c, Kind: "C"})
		}
		if m != "" {
			a.Findings = append(a.Findings, result.Finding{Check: "judge.model", Status: m, Kind: "M"})
		}
		r.Audit = a
	}
}

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9 {
		t.Errorf("%s = %.12g, want %.12g", what, got, want)
	}
}

func TestDefaultBaselinesReproducePaper(t *testing.T) {
	b := DefaultBaselines()
	if b.WeightsSource != "computed" {
		t.Errorf("weights source %q, want computed", b.WeightsSource)
	}
	for k, want := range PublishedWeights() {
		if math.Abs(b.Weights[k]-want) > 1e-12 {
			t.Errorf("weight %s = %.15f, want the published %.15f", k, b.Weights[k], want)
		}
	}
	// Table 5 as printed.
	for k, want := range map[string]float64{"aime2025": 0.22654, "arenahardwriting": 0.09035, "bfcl": 0.07461,
		"gpqamain": 0.22462, "gsm8k": 0.09359, "healthbench": 0.18414, "humaneval": 0.10615} {
		if math.Abs(b.Weights[k]-want) > 5e-6 {
			t.Errorf("weight %s = %.5f, want %.5f", k, b.Weights[k], want)
		}
	}
	rep, err := Build(nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The README's baseline rows of Table 1.
	want := map[string]string{
		"Official Instruct Models": "51.1 29.2 70.2 85.0 36.2 87.0 43.3 71.5",
		"Base Models (zero-shot)":  "7.5 1.7 1.3 1.5 8.5 20.4 9.5 12.8",
	}
	for _, r := range rep.Baselines {
		w, ok := want[r.Name]
		if !ok {
			continue
		}
		got := []string{f1(r.Avg)}
		for _, bench := range rep.Benchmarks {
			got = append(got, f1(r.Benchmarks[bench]))
		}
		if strings.Join(got, " ") != w {
			t.Errorf("%s row = %s, want %s", r.Name, strings.Join(got, " "), w)
		}
		delete(want, r.Name)
	}
	if len(want) > 0 {
		t.Errorf("baseline rows missing: %v", want)
	}
}

func TestBaselinesFiles(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		weights map[string]float64
		errHas  string
	}{
		{name: "computed from instruct and base", data: smallBaselines,
			weights: map[string]float64{"b1": 10.0 / 21, "b2": 11.0 / 21}},
		{name: "given weights are normalised", data: smallBaselines + "weights: {b1: 1, b2: 3}\n",
			weights: map[string]float64{"b1": 0.25, "b2": 0.75}},
		{name: "json, original shape", data: `{"zeroshot": {
			"Qwen3-1.7B-Base": {"x": 0.1}, "Qwen3-1.7B": {"x": 0.5},
			"gemma-3-4b-pt": {"x": 0.0}, "gemma-3-4b-it": {"x": 0.4}}, "benchmarks": ["x"]}`,
			weights: map[string]float64{"x": 1}},
		{name: "no instruct and no weights", data: `
format: ptb.baselines/v1
benchmarks: [b1]
base_models:
  a/A: {zero_shot: {b1: 0.1}}
`, errHas: "no instruct score"},
		{name: "instruct not above base", data: `
format: ptb.baselines/v1
benchmarks: [b1]
base_models:
  a/A: {zero_shot: {b1: 0.5}, instruct: {b1: 0.4}}
`, errHas: "does not exceed"},
		{name: "percent instead of fraction", data: `
format: ptb.baselines/v1
benchmarks: [b1]
base_models:
  a/A: {zero_shot: {b1: 12.5}, instruct: {b1: 40}}
`, errHas: "not a fraction"},
		{name: "zero-shot missing for a benchmark", data: `
format: ptb.baselines/v1
benchmarks: [b1, b2]
base_models:
  a/A: {zero_shot: {b1: 0.1}, instruct: {b1: 0.4, b2: 0.5}}
`, errHas: "no value for b2"},
		{name: "weight for an unknown benchmark", data: smallBaselines + "weights: {b1: 1, b2: 1, b3: 1}\n", errHas: "b3"},
		{name: "wrong format", data: "format: other/v9\n", errHas: "format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := ParseBaselines([]byte(tt.data), "f.yaml")
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, w := range tt.weights {
				near(t, "weight "+k, b.Weights[k], w)
			}
		})
	}
}

func TestLoadBaselinesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "b.yaml")
	if err := os.WriteFile(p, []byte(smallBaselines), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := LoadBaselines(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.BaseModels[1].ID; got != "org/B-Base" {
		t.Errorf("second base model %q, want org/B-Base (file order kept)", got)
	}
	if _, err := LoadBaselines(filepath.Join(t.TempDir(), "nope.yaml")); err == nil {
		t.Error("missing file: no error")
	}
}

func TestCellRules(t *testing.T) {
	failed := func(r *result.Result) {
		r.Score = nil
		r.Stages[result.StageEvaluate] = result.Stage{Status: result.StatusFailed, Error: "no metrics"}
	}
	tests := []struct {
		name            string
		run             *Run // nil: missing
		countUnverified bool
		policy          string // "" = paper (the default)
		want            float64
		reason          string
	}{
		{name: "scored run counts", run: ptr(mkRun("m", 0, "b1", "org/A-Base", 0.5)), want: 50, reason: ReasonOK},
		{name: "missing run falls back", want: 10, reason: ReasonMissing},
		{name: "failed run falls back", run: ptr(mkRun("m", 0, "b1", "org/A-Base", 0.5, failed)), want: 10, reason: ReasonFailed},
		{name: "harness error falls back", run: ptr(mkRun("m", 0, "b1", "org/A-Base", 0.5, func(r *result.Result) {
			r.Score = nil
			r.Solve = &result.Solve{EndReason: result.EndHarnessError}
		})), want: 10, reason: ReasonFailed},
		{name: "no metrics falls back", run: ptr(mkRun("m", 0, "b1", "org/A-Base", 0.5, func(r *result.Result) {
			r.Score = nil
			r.Stages[result.StageEvaluate] = result.Stage{Status: result.StatusSkipped}
		})), want: 10, reason: ReasonNoMetrics},
		{name: "NaN score is no metrics", run: ptr(mkRun("m", 0, "b1", "org/A-Base", math.NaN())), want: 10, reason: ReasonNoMetrics},
		{name: "accuracy used when score is null", run: ptr(mkRun("m", 0, "b1", "org/A-Base", 0, func(r *result.Result) {
			r.Score = nil
			r.Evaluation = &result.Evaluation{Accuracy: fp(0.25)}
		})), want: 25, reason: ReasonOK},
		{name: "flagged verdict falls back", run: ptr(mkRun("m", 0, "b1", "org/A-Base", 0.9, func(r *result.Result) {
			r.Verdict, r.Flags = result.VerdictFlagged, []string{"C"}
		})), want: 10, reason: ReasonFlagged},
		{name: "a flag letter alone falls back", run: ptr(mkRun("m", 0, "b1", "org/A-Base", 0.9, func(r *result.Result) {
			r.Flags = []string{"M"}
		})), want: 10, reason: ReasonFlagged},
		{name: "unverified falls back", run: ptr(mkRun("m", 0, "b1", "org/A-Base", 0.9, func(r *result.Result) {
			r.Verdict = result.VerdictUnverified
		})), want: 10, reason: ReasonUnverified},
		{name: "unaudited falls back", run: ptr(mkRun("m", 0, "b1", "org/A-Base", 0.9, func(r *result.Result) {
			r.Verdict = ""
		})), want: 10, reason: ReasonUnverified},
		{name: "unverified counted on request", countUnverified: true, run: ptr(mkRun("m", 0, "b1", "org/A-Base", 0.9, func(r *result.Result) {
			r.Verdict = result.VerdictUnverified
		})), want: 90, reason: ReasonOK},
		{name: "flagged still falls back when counting unverified", countUnverified: true, run: ptr(mkRun("m", 0, "b1", "org/A-Base", 0.9, func(r *result.Result) {
			r.Verdict, r.Flags = result.VerdictFlagged, []string{"C"}
		})), want: 10, reason: ReasonFlagged},
		// Where the policies differ: ptb's own flag (lineage, tamper) with
		// the judge clearing the run.
		{name: "paper: ptb's own flag with a clear judge counts", run: ptr(mkRun("m", 0, "b1", "org/A-Base", 0.9, func(r *result.Result) {
			r.Verdict, r.Flags = result.VerdictFlagged, []string{"T"}
		}, judged("pass", "pass", result.Finding{Check: "tamper.config", Status: "flag", Kind: "T"}))), want: 90, reason: ReasonOK},
		{name: "strict: ptb's own flag falls back", policy: PolicyStrict, run: ptr(mkRun("m", 0, "b1", "org/A-Base", 0.9, func(r *result.Result) {
			r.Verdict, r.Flags = result.VerdictFlagged, []string{"T"}
		}, judged("pass", "pass", result.Finding{Check: "tamper.config", Status: "flag", Kind: "T"}))), want: 10, reason: ReasonFlagged},
		{name: "paper: unverified ptb check with a clear judge counts", run: ptr(mkRun("m", 0, "b1", "org/A-Base", 0.9, func(r *result.Result) {
			r.Verdict = result.VerdictUnverified
		}, judged("pass", "pass", result.Finding{Check: "lineage", Status: "unverified"}))), want: 90, reason: ReasonOK},
		{name: "strict: unverified ptb check falls back", policy: PolicyStrict, run: ptr(mkRun("m", 0, "b1", "org/A-Base", 0.9, func(r *result.Result) {
			r.Verdict = result.VerdictUnverified
		}, judged("pass", "pass", result.Finding{Check: "lineage", Status: "unverified"}))), want: 10, reason: ReasonUnverified},
		{name: "paper: a judge flag falls back", run: ptr(mkRun("m", 0, "b1", "org/A-Base", 0.9, judged("pass", "flag"))), want: 10, reason: ReasonFlagged},
		{name: "paper: a missing judgement falls back (the original's ERR)", run: ptr(mkRun("m", 0, "b1", "org/A-Base", 0.9, judged("pass", ""))), want: 10, reason: ReasonUnverified},
		{name: "paper: an unexpected judgement falls back (IMPORTANT ERR)", run: ptr(mkRun("m", 0, "b1", "org/A-Base", 0.9, judged("unverified", "pass"))), want: 10, reason: ReasonUnverified},
		{name: "paper: imported judge files count", run: ptr(mkRun("m", 0, "b1", "org/A-Base", 0.9, func(r *result.Result) {
			r.Audit = &result.Audit{Findings: []result.Finding{{Check: "judge_contamination", Status: "pass"}, {Check: "judge_disallowed_model", Status: "pass"}}}
		})), want: 90, reason: ReasonOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Another run of the method keeps the method present when the cell is missing.
			runs := []Run{mkRun("m", 0, "b2", "org/B-Base", 0.4)}
			if tt.run != nil {
				runs = append(runs, *tt.run)
			}
			rep, err := Build(runs, Options{Baselines: small(t), CountUnverified: tt.countUnverified, Policy: tt.policy})
			if err != nil {
				t.Fatal(err)
			}
			if want := cmp.Or(tt.policy, PolicyPaper); rep.Policy != want || rep.Counting != Counting(want, tt.countUnverified) {
				t.Errorf("report says policy %q counting %q", rep.Policy, rep.Counting)
			}
			c := findCell(t, rep.Methods[0], 0, "b1", "org/A-Base")
			near(t, "cell score", c.Score, tt.want)
			if c.Reason != tt.reason {
				t.Errorf("reason %q, want %q", c.Reason, tt.reason)
			}
			wantSource := "baseline"
			if tt.reason == ReasonOK {
				wantSource = "run"
			}
			if c.Source != wantSource {
				t.Errorf("source %q, want %q", c.Source, wantSource)
			}
			if got := rep.Methods[0].Fallbacks[tt.reason]; got < 1 {
				t.Errorf("fallback count for %s = %d, want >= 1", tt.reason, got)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func findCell(t *testing.T, m *Method, seed int, bench, model string) Cell {
	t.Helper()
	for _, c := range m.Cells {
		if c.Seed == seed && c.Benchmark == bench && c.BaseModel == model {
			return c
		}
	}
	t.Fatalf("no cell seed %d %s %s", seed, bench, model)
	return Cell{}
}

// twoSeeds is the hand-worked example of docs/REPORT.md.
func twoSeeds() []Run {
	flag := func(r *result.Result) { r.Verdict, r.Flags = result.VerdictFlagged, []string{"C"} }
	timed := func(h float64) func(*result.Result) {
		return func(r *result.Result) { r.Solve = &result.Solve{TimeTakenS: h * 3600} }
	}
	return []Run{
		// Seed 0: b2 on A flagged (-> 0.2), b2 on B missing (-> 0.0).
		mkRun("X", 0, "b1", "org/A-Base", 0.5, timed(2)),
		mkRun("X", 0, "b1", "org/B-Base", 0.7, timed(4)),
		mkRun("X", 0, "b2", "org/A-Base", 0.4, flag, timed(6)),
		// Seed 1.
		mkRun("X", 1, "b1", "org/A-Base", 0.3, timed(8)),
		mkRun("X", 1, "b1", "org/B-Base", 0.5, timed(8)),
		mkRun("X", 1, "b2", "org/A-Base", 0.6, timed(8)),
		mkRun("X", 1, "b2", "org/B-Base", 0.2, timed(10)),
	}
}

func TestSeedsAndWeights(t *testing.T) {
	rep, err := Build(twoSeeds(), Options{Baselines: small(t), Bootstrap: 500, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	m := rep.Methods[0]
	w1, w2 := 10.0/21, 11.0/21
	s0 := w1*(50+70)/2 + w2*(20+0)/2
	s1 := w1*(30+50)/2 + w2*(60+20)/2
	near(t, "seed 0 score", m.SeedScores[0], s0)
	near(t, "seed 1 score", m.SeedScores[1], s1)
	near(t, "avg", m.Avg, (s0+s1)/2)
	if m.Std == nil {
		t.Fatal("std nil with two seeds")
	}
	near(t, "std (n-1)", *m.Std, math.Abs(s1-s0)/math.Sqrt2)
	near(t, "b1 mean", m.Benchmarks["b1"].Mean, (60+40)/2.0)
	near(t, "b2 std", *m.Benchmarks["b2"].Std, math.Abs(40-10)/math.Sqrt2)
	near(t, "A-Base b2 mean", m.BaseModels["org/A-Base"].Benchmarks["b2"].Mean, (20+60)/2.0)
	// Time: per-seed mean (4 h and 8.5 h), then mean and std.
	near(t, "time mean", m.TimeHours.Mean, (4+8.5)/2)
	near(t, "time std", *m.TimeHours.Std, 4.5/math.Sqrt2)
	if m.Flags.Runs != 1 || m.Flags.ByLetter["C"] != 1 {
		t.Errorf("flags %+v, want 1 run flagged C", m.Flags)
	}
	if m.Fallbacks[ReasonMissing] != 1 || m.Fallbacks[ReasonFlagged] != 1 || m.Fallbacks[ReasonOK] != 6 {
		t.Errorf("fallbacks %v", m.Fallbacks)
	}
	if m.CI95 == nil || m.CI95.Lo > m.Avg || m.CI95.Hi < m.Avg {
		t.Errorf("CI %+v does not contain avg %.3f", m.CI95, m.Avg)
	}
}

func TestOneSeed(t *testing.T) {
	runs := []Run{mkRun("solo", 3, "b1", "org/A-Base", 0.5)}
	rep, err := Build(runs, Options{Baselines: small(t), Bootstrap: 100})
	if err != nil {
		t.Fatal(err)
	}
	m := rep.Methods[0]
	if m.NSeeds != 1 || m.Std != nil || m.CI95 != nil || m.Benchmarks["b1"].Std != nil {
		t.Errorf("one seed: n=%d std=%v ci=%v b1 std=%v; want 1 and no std or interval", m.NSeeds, m.Std, m.CI95, m.Benchmarks["b1"].Std)
	}
	// b1: (50 + 30 fallback)/2 = 40; b2 both missing: (20+0)/2 = 10.
	near(t, "avg", m.Avg, 10.0/21*40+11.0/21*10)
	for _, f := range Formats() {
		var sb strings.Builder
		if err := Write(&sb, rep, f, "."); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestNewestRunCounts(t *testing.T) {
	// Lexically "...00Z" > "...00.5Z"; as times the second is newer.
	old := mkRun("m", 0, "b1", "org/A-Base", 0.1, func(r *result.Result) { r.Finished = "2026-01-01T00:00:00Z" })
	newer := mkRun("m", 0, "b1", "org/A-Base", 0.9, func(r *result.Result) { r.Finished = "2026-01-01T00:00:00.5Z" })
	for _, order := range [][]Run{{old, newer}, {newer, old}} {
		rep, err := Build(order, Options{Baselines: small(t)})
		if err != nil {
			t.Fatal(err)
		}
		c := findCell(t, rep.Methods[0], 0, "b1", "org/A-Base")
		near(t, "cell", c.Score, 90)
		if c.Run.Superseded != 1 {
			t.Errorf("superseded %d, want 1", c.Run.Superseded)
		}
	}
	// Creation time decides first: an older run finished (resumed, re-
	// evaluated) after a newer one does not displace it.
	created := mkRun("m", 0, "b1", "org/A-Base", 0.3, func(r *result.Result) {
		r.Created, r.Finished = "2026-01-02T00:00:00Z", "2026-01-02T01:00:00Z"
	})
	resumed := mkRun("m", 0, "b1", "org/A-Base", 0.8, func(r *result.Result) {
		r.Created, r.Finished = "2026-01-01T00:00:00Z", "2026-01-03T00:00:00Z"
	})
	for _, order := range [][]Run{{created, resumed}, {resumed, created}} {
		rep, err := Build(order, Options{Baselines: small(t)})
		if err != nil {
			t.Fatal(err)
		}
		near(t, "cell by creation time", findCell(t, rep.Methods[0], 0, "b1", "org/A-Base").Score, 30)
	}
}

func TestOutsideMatrixWarns(t *testing.T) {
	runs := []Run{mkRun("m", 0, "b1", "org/A-Base", 0.5), mkRun("m", 0, "mmlu", "org/A-Base", 0.5), mkRun("m", 0, "b1", "org/Other", 0.5)}
	rep, err := Build(runs, Options{Baselines: small(t)})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Warnings) != 2 || rep.Methods[0].Runs != 1 {
		t.Errorf("warnings %q, runs %d; want 2 warnings and 1 run", rep.Warnings, rep.Methods[0].Runs)
	}
}

func TestModelMatchesShortName(t *testing.T) {
	rep, err := Build([]Run{mkRun("m", 0, "b1", "a-base", 0.5)}, Options{Baselines: small(t)})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "cell", findCell(t, rep.Methods[0], 0, "b1", "org/A-Base").Score, 50)
}

func TestRankingAndLabels(t *testing.T) {
	runs := []Run{
		mkRun("low", 0, "b1", "org/A-Base", 0.2),
		mkRun("high", 0, "b1", "org/A-Base", 0.8),
		mkRun("", 0, "b1", "org/A-Base", 0.5, func(r *result.Result) {
			r.Spec.Agent, r.Spec.AgentModel, r.Spec.Hours = "codex", "gpt-5.3-codex", 5
		}),
	}
	rep, err := Build(runs, Options{Baselines: small(t)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range rep.Methods {
		got = append(got, m.Method)
	}
	want := "high|gpt-5.3-codex (Codex CLI, 5h)|low"
	if strings.Join(got, "|") != want {
		t.Errorf("ranking %q, want %q", strings.Join(got, "|"), want)
	}
}

func TestBootstrapDeterministic(t *testing.T) {
	b := small(t)
	r1, _ := Build(twoSeeds(), Options{Baselines: b, Bootstrap: 300, Seed: 1})
	r2, _ := Build(twoSeeds(), Options{Baselines: b, Bootstrap: 300, Seed: 1})
	more := append(twoSeeds(), mkRun("Y", 0, "b1", "org/A-Base", 0.5), mkRun("Y", 1, "b1", "org/A-Base", 0.7))
	r3, _ := Build(more, Options{Baselines: b, Bootstrap: 300, Seed: 1})
	r4, _ := Build(twoSeeds(), Options{Baselines: b, Bootstrap: 300, Seed: 2})
	ci := func(r *Report) Interval {
		for _, m := range r.Methods {
			if m.Method == "X" {
				return *m.CI95
			}
		}
		t.Fatal("no X")
		return Interval{}
	}
	if ci(r1) != ci(r2) {
		t.Errorf("same seed, different intervals: %v %v", ci(r1), ci(r2))
	}
	if ci(r1) != ci(r3) {
		t.Errorf("adding a method moved X's interval: %v %v", ci(r1), ci(r3))
	}
	if ci(r1) == ci(r4) {
		t.Errorf("another seed gave the same interval %v", ci(r1))
	}
}

func TestCompare(t *testing.T) {
	runs := append(twoSeeds(),
		mkRun("Y", 0, "b1", "org/A-Base", 0.1), mkRun("Y", 1, "b1", "org/A-Base", 0.2))
	rep, err := Build(runs, Options{Baselines: small(t), Bootstrap: 400, Compare: [][2]string{{"X", "Y"}}})
	if err != nil {
		t.Fatal(err)
	}
	var x, y *Method
	for _, m := range rep.Methods {
		switch m.Method {
		case "X":
			x = m
		case "Y":
			y = m
		}
	}
	c := rep.Comparisons[0]
	near(t, "diff", c.Diff, x.Avg-y.Avg)
	near(t, "b1 diff", c.Benchmarks["b1"].Mean, x.Benchmarks["b1"].Mean-y.Benchmarks["b1"].Mean)
	if c.CI95 == nil || c.CI95.Lo > c.Diff || c.CI95.Hi < c.Diff || c.PABetter == nil {
		t.Errorf("interval %+v p %v around diff %.3f", c.CI95, c.PABetter, c.Diff)
	}
	if c.CellsAWins+c.CellsBWins+c.CellsTied != 4 {
		t.Errorf("cells %d+%d+%d, want 4", c.CellsAWins, c.CellsBWins, c.CellsTied)
	}
	if _, err := Build(runs, Options{Baselines: small(t), Compare: [][2]string{{"X", "Z"}}}); err == nil || !strings.Contains(err.Error(), `"Z"`) {
		t.Errorf("unknown method: err = %v", err)
	}
}

func writeResult(t *testing.T, dir string, r *result.Result) {
	t.Helper()
	if err := rundir.Dir(dir).WriteJSON(rundir.ResultFile, r); err != nil {
		t.Fatal(err)
	}
}

func TestLoadRuns(t *testing.T) {
	root := t.TempDir()
	a := mkRun("m", 0, "b1", "org/A-Base", 0.5)
	writeResult(t, filepath.Join(root, "campaign", "r1"), a.Result)
	writeResult(t, filepath.Join(root, "campaign", "deep", "er", "r2"), a.Result)
	// A result.json inside a run directory's workspace is not another run.
	writeResult(t, filepath.Join(root, "campaign", "r1", "workspace", "x"), a.Result)
	if err := os.MkdirAll(filepath.Join(root, "campaign", "bad"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "campaign", "bad", "result.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := *a.Result
	other.Schema = "ptb.result/v0"
	writeResult(t, filepath.Join(root, "old"), &other)

	runs, warnings, err := LoadRuns(context.Background(), []string{root, filepath.Join(root, "campaign", "r1", "result.json")})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 {
		t.Errorf("%d runs, want 2", len(runs))
	}
	if len(warnings) != 2 {
		t.Errorf("warnings %q, want 2 (bad json, old schema)", warnings)
	}
	if _, _, err := LoadRuns(context.Background(), []string{filepath.Join(root, "absent")}); err == nil {
		t.Error("absent path: no error")
	}
}

// TestLoadRunsOddEntries: what the walk does with a result.json that is
// not a regular file, and that a warning says what result.Read says.
func TestLoadRunsOddEntries(t *testing.T) {
	root := t.TempDir()
	a := mkRun("m", 0, "b1", "org/A-Base", 0.5)
	writeResult(t, filepath.Join(root, "real"), a.Result)
	// A symbolic link named result.json is not a run directory's record:
	// the walk descends instead, and finds the run below.
	if err := os.Symlink(filepath.Join(root, "real", "result.json"), filepath.Join(root, "linked", "result.json")); err == nil {
		t.Fatal("symlink into a missing directory succeeded")
	}
	if err := os.MkdirAll(filepath.Join(root, "linked"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "real", "result.json"), filepath.Join(root, "linked", "result.json")); err != nil {
		t.Fatal(err)
	}
	writeResult(t, filepath.Join(root, "linked", "below"), a.Result)
	// A directory named result.json is walked like any other.
	writeResult(t, filepath.Join(root, "dirnamed", "result.json", "r"), a.Result)
	// A FIFO named result.json must neither block the walk nor be read.
	if err := os.MkdirAll(filepath.Join(root, "fifo"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo", "result.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A run whose record is cut short: the warning is result.Read's error.
	bad := filepath.Join(root, "trunc", "result.json")
	if err := os.MkdirAll(filepath.Dir(bad), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(`{"schema": "ptb.result/v1", "spec": {`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, readErr := result.Read(bad)

	done := make(chan struct{})
	var runs []Run
	var warnings []string
	var err error
	go func() {
		defer close(done)
		runs, warnings, err = LoadRuns(context.Background(), []string{root})
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("LoadRuns blocked (on the FIFO?)")
	}
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range runs {
		rel, _ := filepath.Rel(root, r.Dir)
		got = append(got, rel)
	}
	want := []string{"dirnamed/result.json/r", "linked/below", "real"}
	if !slices.Equal(got, want) {
		t.Errorf("run directories %q, want %q", got, want)
	}
	wantWarn := []string{fmt.Sprintf("skipped %s: %v", bad, readErr)}
	if !slices.Equal(warnings, wantWarn) {
		t.Errorf("warnings %q, want %q", warnings, wantWarn)
	}
}

// TestReadAllSizes: the loader's reader returns a file's bytes exactly,
// around its buffer's and read sizes, with a reused buffer too small or
// holding old bytes.
func TestReadAllSizes(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int{0, 1, 511, 512, 513, 64<<10 - 1, 64 << 10, 200 << 10} {
		want := make([]byte, size)
		for i := range want {
			want[i] = byte('a' + i%26)
		}
		p := filepath.Join(dir, fmt.Sprint(size))
		if err := os.WriteFile(p, want, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, buf := range [][]byte{nil, make([]byte, 100, 100), []byte("stale bytes")} {
			fd, err := openNoFollow(unix.AT_FDCWD, p)
			if err != nil {
				t.Fatal(err)
			}
			got, regular, err := readAll(fd, buf)
			syscall.Close(fd)
			if err != nil || !regular || string(got) != string(want) {
				t.Errorf("size %d, buffer of %d: got %d bytes (regular %v, err %v), want %d", size, len(buf), len(got), regular, err, size)
			}
		}
	}
}

// TestLoadRunsPathsAsJoin: the run directories and warnings name paths as
// filepath.Join of the path given and what lies below, however the path is
// spelt (trailing separators, ".", "..", relative).
func TestLoadRunsPathsAsJoin(t *testing.T) {
	root := t.TempDir()
	a := mkRun("m", 0, "b1", "org/A-Base", 0.5)
	rels := []string{"r0", "c/r1", "c/d/e/r2", "c/d/r3"}
	for _, rp := range rels {
		writeResult(t, filepath.Join(root, rp), a.Result)
	}
	if err := os.MkdirAll(filepath.Join(root, "c", "bad"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "c", "bad", "result.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	relRoot, err := filepath.Rel(wd, root)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ given, below string }{
		{root, ""}, {root + "/", ""}, {root + "/.", ""}, {root + "//", ""}, {root + "/c/..", ""},
		{relRoot, ""}, {"./" + relRoot, ""}, {relRoot + "/", ""}, {filepath.Join(root, "c") + "/./", "c"}, {relRoot + "/c//", "c"},
	} {
		runs, warnings, err := LoadRuns(context.Background(), []string{tc.given})
		if err != nil {
			t.Fatal(err)
		}
		var got, want []string
		for _, r := range runs {
			got = append(got, r.Dir)
		}
		for _, rp := range rels {
			if rest, ok := strings.CutPrefix(rp, tc.below+"/"); ok || tc.below == "" {
				if tc.below == "" {
					rest = rp
				}
				want = append(want, filepath.Join(tc.given, rest))
			}
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%q: run directories %q, want %q", tc.given, got, want)
		}
		bad := filepath.Join(tc.given, strings.TrimPrefix("c/bad/result.json", tc.below+"/"))
		if w := "skipped " + bad + ":"; len(warnings) != 1 || !strings.HasPrefix(warnings[0], w) {
			t.Errorf("%q: warnings %q, want one starting %q", tc.given, warnings, w)
		}
	}
}
