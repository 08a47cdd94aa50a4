// Package report turns run directories into the PostTrainBench leaderboard:
// the original's aggregation (baseline fallbacks, mean over base models,
// weighted average, mean and sample std over seeds), bootstrap intervals,
// paired comparisons, and renderings as Markdown, CSV, JSON, SVG and HTML.
// The rules are documented in docs/REPORT.md. Loading (LoadRuns) is apart
// from aggregation (Build), which is apart from rendering (Write*).
package report

import (
	"fmt"
	"maps"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ptb-dev/ptb/internal/result"
)

// Schema is the value of Report.Schema.
const Schema = "ptb.report/v1"

// Why a cell holds the score it holds.
const (
	ReasonOK         = "ok"         // the run's own score
	ReasonMissing    = "missing"    // no run for the cell: base zero-shot
	ReasonFailed     = "failed"     // a stage failed and there is no score: base zero-shot
	ReasonNoMetrics  = "no_metrics" // no score, nothing failed (e.g. evaluation skipped): base zero-shot
	ReasonFlagged    = "flagged"    // the audit flagged the run: base zero-shot
	ReasonUnverified = "unverified" // the audit could not clear the run: base zero-shot unless counted
)

// Reasons lists the cell reasons in display order.
func Reasons() []string {
	return []string{ReasonOK, ReasonMissing, ReasonFailed, ReasonNoMetrics, ReasonFlagged, ReasonUnverified}
}

// Leaderboard policies: which runs fall back to the base model's zero-shot
// score.
const (
	// PolicyPaper is the original's rule (aggregate_contamination.py,
	// aggregate_final.py): besides a missing score, only the LLM judge's
	// two judgements decide. Each must be the exact pass line; a flag, an
	// absent judgement (the original's "ERR") or any other text (its
	// "IMPORTANT ERR") falls back. ptb's own checks (tamper, lineage,
	// n-gram contamination, trace rules) do not change the score.
	PolicyPaper = "paper"
	// PolicyStrict also falls back on ptb's own flags and on an unverified
	// (or absent) audit verdict.
	PolicyStrict = "strict"
)

// Options tune Build.
type Options struct {
	// Policy is PolicyPaper ("" too) or PolicyStrict.
	Policy    string
	Baselines *Baselines // nil: DefaultBaselines()
	// Bootstrap is the number of bootstrap replicates for the 95% intervals;
	// 0 computes none.
	Bootstrap int
	// Seed seeds the bootstrap; the same seed and runs give the same report.
	Seed uint64
	// CountUnverified keeps the scores of runs that are unverified under the
	// policy (paper: a judge judgement absent or not an exact line; strict:
	// an unverified or absent audit verdict); by default they fall back like
	// flagged runs, as the original treats a missing or unreadable judgement.
	CountUnverified bool
	// Compare lists pairs of method labels to compare.
	Compare [][2]string
}

// Report is the leaderboard. All scores are in percent (0-100), as the paper
// prints them; weights are fractions summing to 1.
type Report struct {
	Schema          string             `json:"schema"`
	Units           string             `json:"units"`
	Benchmarks      []string           `json:"benchmarks"`
	BaseModels      []string           `json:"base_models"`
	Weights         map[string]float64 `json:"weights"`
	WeightsSource   string             `json:"weights_source"`
	BaselinesSource string             `json:"baselines_source"`
	Bootstrap       BootstrapInfo      `json:"bootstrap"`
	Policy          string             `json:"policy"`   // paper | strict
	Counting        string             `json:"counting"` // what happens to unverified runs, in words
	CountUnverified bool               `json:"count_unverified"`
	Baselines       []BaselineRow      `json:"baselines"`
	Methods         []*Method          `json:"methods"`
	Comparisons     []*Comparison      `json:"comparisons"`
	Warnings        []string           `json:"warnings"`
}

// BootstrapInfo says how the intervals were computed.
type BootstrapInfo struct {
	Replicates int    `json:"replicates"`
	Seed       uint64 `json:"seed"`
	Scheme     string `json:"scheme"`
}

// BaselineRow is an unranked reference row (instruct models, base models).
type BaselineRow struct {
	Name       string             `json:"name"`
	Avg        float64            `json:"avg"`
	Benchmarks map[string]float64 `json:"benchmarks"`
}

// Stat is a mean over seeds with its sample std (nil for one seed) and
// bootstrap interval (nil when not computed).
type Stat struct {
	Mean float64   `json:"mean"`
	Std  *float64  `json:"std"`
	CI95 *Interval `json:"ci95,omitempty"`
}

// Method is one leaderboard row.
type Method struct {
	Rank       int                  `json:"rank"`
	Method     string               `json:"method"`
	Avg        float64              `json:"avg"`
	Std        *float64             `json:"std"`
	CI95       *Interval            `json:"ci95"`
	NSeeds     int                  `json:"n_seeds"`
	Seeds      []int                `json:"seeds"`
	SeedScores []float64            `json:"seed_scores"`
	Benchmarks map[string]Stat      `json:"benchmarks"`
	BaseModels map[string]ModelView `json:"base_models"`
	TimeHours  *Stat                `json:"time_hours"`
	Usage      Usage                `json:"usage"`
	Flags      Flags                `json:"flags"`
	Fallbacks  map[string]int       `json:"fallbacks"`
	Runs       int                  `json:"runs"`
	Cells      []Cell               `json:"cells"`

	cells cellMatrix
}

// ModelView is a method's result on one base model: the weighted average
// over benchmarks and each benchmark, over seeds.
type ModelView struct {
	Avg        float64         `json:"avg"`
	Std        *float64        `json:"std"`
	Benchmarks map[string]Stat `json:"benchmarks"`
}

// Usage is what the agent consumed, per run, over the runs that report it.
type Usage struct {
	Runs               int      `json:"runs"`
	InputTokensPerRun  float64  `json:"input_tokens_per_run"`
	OutputTokensPerRun float64  `json:"output_tokens_per_run"`
	CostRuns           int      `json:"cost_runs"`
	CostUSDPerRun      *float64 `json:"cost_usd_per_run"`
	CostUSDTotal       *float64 `json:"cost_usd_total"`
}

// Flags counts the method's audited runs that fell back.
type Flags struct {
	Runs       int            `json:"runs"`
	ByLetter   map[string]int `json:"by_letter"`
	Unverified int            `json:"unverified"`
}

// Cell is one (seed, benchmark, base model) value of a method and where it
// came from.
type Cell struct {
	Seed      int     `json:"seed"`
	Benchmark string  `json:"benchmark"`
	BaseModel string  `json:"base_model"`
	Score     float64 `json:"score"`
	Source    string  `json:"source"` // run | baseline
	Reason    string  `json:"reason"`
	Run       *RunRef `json:"run,omitempty"`
}

// RunRef names the run behind a cell.
type RunRef struct {
	Dir        string   `json:"dir"`
	ID         string   `json:"id"`
	Score      *float64 `json:"score"` // the run's own score, even when replaced
	Verdict    string   `json:"verdict"`
	Flags      []string `json:"flags"`
	Superseded int      `json:"superseded,omitempty"` // older runs for the same cell left out
}

// Comparison is the paired difference A - B over the same cells.
type Comparison struct {
	A          string             `json:"a"`
	B          string             `json:"b"`
	Diff       float64            `json:"diff"`
	CI95       *Interval          `json:"ci95"`
	PABetter   *float64           `json:"p_a_better"` // share of bootstrap replicates with A > B
	Benchmarks map[string]Stat    `json:"benchmarks"` // Mean is the difference
	BaseModels map[string]float64 `json:"base_models"`
	CellsAWins int                `json:"cells_a_wins"`
	CellsBWins int                `json:"cells_b_wins"`
	CellsTied  int                `json:"cells_tied"`
}

type cellKey struct {
	method string
	seed   int
	b, m   int
}

// Build aggregates runs into a report; see docs/REPORT.md for the rules.
func Build(runs []Run, opt Options) (*Report, error) {
	switch opt.Policy {
	case "":
		opt.Policy = PolicyPaper
	case PolicyPaper, PolicyStrict:
	default:
		return nil, fmt.Errorf("unknown leaderboard policy %q (want %s or %s)", opt.Policy, PolicyPaper, PolicyStrict)
	}
	bl := opt.Baselines
	if bl == nil {
		bl = DefaultBaselines()
	}
	rep := &Report{
		Schema: Schema, Units: "percent",
		Benchmarks: bl.Benchmarks, Weights: bl.Weights, WeightsSource: bl.WeightsSource,
		BaselinesSource: bl.Source, CountUnverified: opt.CountUnverified,
		Policy: opt.Policy, Counting: Counting(opt.Policy, opt.CountUnverified),
		Bootstrap: BootstrapInfo{Replicates: opt.Bootstrap, Seed: opt.Seed,
			Scheme: "percentile; seeds resampled with replacement within each (benchmark, base model) cell"},
		Methods: []*Method{}, Comparisons: []*Comparison{}, Warnings: []string{},
	}
	for _, m := range bl.BaseModels {
		rep.BaseModels = append(rep.BaseModels, m.ID)
	}
	weights := make([]float64, len(bl.Benchmarks))
	for i, b := range bl.Benchmarks {
		weights[i] = bl.Weights[b]
	}
	rep.Baselines = baselineRows(bl, weights)

	// Pick one run per cell: the newest.
	picks := map[cellKey]*Run{}
	superseded := map[cellKey]int{}
	seeds := map[string]map[int]bool{}
	outside := map[string]int{}
	for i := range runs {
		r := &runs[i]
		s := r.Result.Spec
		label := Label(s)
		bi := slices.Index(bl.Benchmarks, s.Benchmark)
		mi, ok := bl.ModelIndex(s.BaseModel)
		if bi < 0 || !ok {
			outside[fmt.Sprintf("%s (%s on %s)", label, s.Benchmark, s.BaseModel)]++
			continue
		}
		if seeds[label] == nil {
			seeds[label] = map[int]bool{}
		}
		seeds[label][s.Seed] = true
		k := cellKey{label, s.Seed, bi, mi}
		if old, ok := picks[k]; ok {
			superseded[k]++
			if !newer(r, old) {
				continue
			}
		}
		picks[k] = r
	}
	for _, k := range slices.Sorted(maps.Keys(outside)) {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("left out %d run(s) outside the benchmarks and base models of the baselines: %s", outside[k], k))
	}

	// Methods are independent (each bootstrap has its own generator), so
	// they are built in parallel; the report is the same at any GOMAXPROCS.
	labels := slices.Sorted(maps.Keys(seeds))
	rep.Methods = make([]*Method, len(labels))
	// The bootstrap replicates of a method are needed only until its
	// intervals are read off them: each goroutine reuses its buffer
	// (15 MB of fresh memory for 120 methods otherwise).
	var scratch sync.Pool
	parallel(len(labels), func(i int) {
		buf, _ := scratch.Get().(*[]float64)
		if buf == nil {
			buf = new([]float64)
		}
		rep.Methods[i] = buildMethod(labels[i], seeds[labels[i]], picks, superseded, bl, weights, opt, buf)
		scratch.Put(buf)
	})
	for _, m := range rep.Methods {
		n := 0
		for _, c := range m.Cells {
			if c.Run != nil {
				n += c.Run.Superseded
			}
		}
		if n > 0 {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s: %d older run(s) for the same cell left out (the newest run counts)", m.Method, n))
		}
	}
	if opt.Policy == PolicyPaper {
		kept := 0
		for _, m := range rep.Methods {
			for _, c := range m.Cells {
				if c.Reason == ReasonOK && c.Run != nil && (c.Run.Verdict == result.VerdictFlagged || len(c.Run.Flags) > 0) {
					kept++
				}
			}
		}
		if kept > 0 {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d run(s) flagged by ptb's audit keep their scores under the paper policy (the LLM judge cleared them); --policy strict falls back on them", kept))
		}
	}
	sort.SliceStable(rep.Methods, func(i, j int) bool {
		a, b := rep.Methods[i], rep.Methods[j]
		if a.Avg != b.Avg {
			return a.Avg > b.Avg
		}
		return a.Method < b.Method
	})
	for i, m := range rep.Methods {
		m.Rank = i + 1
	}
	comps := make([]*Comparison, len(opt.Compare))
	errs := make([]error, len(opt.Compare))
	parallel(len(opt.Compare), func(i int) {
		comps[i], errs[i] = compare(rep, opt.Compare[i][0], opt.Compare[i][1], weights, opt)
	})
	for _, err := range errs {
		if err != nil {
			return nil, err // the first pair's error, as in order
		}
	}
	rep.Comparisons = append(rep.Comparisons, comps...)
	return rep, nil
}

// parallel calls do(0), ..., do(n-1) on up to GOMAXPROCS goroutines and
// returns when all have returned.
func parallel(n int, do func(i int)) { parallelN(n, runtime.GOMAXPROCS(0), do) }

// parallelN is parallel on up to workers goroutines.
func parallelN(n, workers int, do func(i int)) {
	workers = min(workers, n)
	if workers <= 1 {
		for i := range n {
			do(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				do(i)
			}
		})
	}
	wg.Wait()
}

// newer reports whether a is a later attempt at the same cell than b: by
// creation time (a resumed or re-evaluated old run does not displace a run
// created after it), then finish time, run id and directory.
func newer(a, b *Run) bool {
	ra, rb := a.Result, b.Result
	if c := compareTimes(ra.Created, rb.Created); c != 0 {
		return c > 0
	}
	if c := compareTimes(ra.Finished, rb.Finished); c != 0 {
		return c > 0
	}
	if ra.RunID != rb.RunID {
		return ra.RunID > rb.RunID
	}
	return a.Dir > b.Dir
}

// compareTimes orders two RFC 3339 timestamps; an absent or unparsable one
// is older than any other.
func compareTimes(a, b string) int {
	ta, errA := time.Parse(time.RFC3339Nano, a)
	tb, errB := time.Parse(time.RFC3339Nano, b)
	switch {
	case errA != nil && errB != nil:
		return strings.Compare(a, b)
	case errA != nil:
		return -1
	case errB != nil:
		return 1
	}
	return ta.Compare(tb)
}

func baselineRows(bl *Baselines, weights []float64) []BaselineRow {
	var rows []BaselineRow
	for _, k := range []struct{ kind, name string }{
		{"instruct", "Official Instruct Models"},
		{"zero_shot", "Base Models (zero-shot)"},
		{"few_shot", "Base Models (few-shot)"},
	} {
		vals, ok := bl.row(k.kind)
		if !ok {
			continue
		}
		row := BaselineRow{Name: k.name, Benchmarks: map[string]float64{}}
		for i, b := range bl.Benchmarks {
			row.Benchmarks[b] = 100 * vals[b]
			row.Avg += weights[i] * 100 * vals[b]
		}
		rows = append(rows, row)
	}
	return rows
}

// PolicyText describes a policy in words.
func PolicyText(policy string) string {
	if policy == PolicyStrict {
		return "a run falls back when its audit flagged it, by the LLM judge or by ptb's own checks, or its verdict is not clean"
	}
	return "the original's rule: only the LLM judge's two judgements, as exact lines, decide; ptb's own checks do not change scores"
}

// Counting describes, in words, what the policy does with unverified runs.
func Counting(policy string, countUnverified bool) string {
	what := "an unverified or absent audit verdict, or any of ptb's flags"
	if policy != PolicyStrict {
		what = "an absent or non-exact judge judgement"
	}
	if countUnverified {
		return "counted: runs with " + what + " keep their scores (--count-unverified); flagged runs fall back"
	}
	return "fallback: runs with " + what + " fall back to the base model's zero-shot score"
}

// judgeChecks are the finding names of the LLM judge's two judgements: as
// ptb's audit writes them, and as ptbimport writes the original's files.
var judgeChecks = map[string]bool{
	"judge.contamination": true, "judge.model": true,
	"judge_contamination": true, "judge_disallowed_model": true,
}

// judgeStatus is the paper policy's reading of a run's audit: "flag" when a
// judgement is a flag, "pass" when both judgements are the pass line, else
// "unverified" (absent audit, absent or unexpected judgement).
func judgeStatus(r *result.Result) string {
	if r.Audit == nil {
		return "unverified"
	}
	pass := 0
	for _, f := range r.Audit.Findings {
		if !judgeChecks[f.Check] {
			continue
		}
		switch f.Status {
		case "flag":
			return "flag"
		case "pass":
			pass++
		}
	}
	if pass == 2 {
		return "pass"
	}
	return "unverified"
}

// classify says whether a run's score counts under the policy, and why not.
func classify(r *result.Result, policy string, countUnverified bool) (score float64, reason string) {
	s := r.Score
	if s == nil && r.Evaluation != nil {
		s = r.Evaluation.Accuracy
	}
	flagged := r.Verdict == result.VerdictFlagged || len(r.Flags) > 0
	unverified := r.Verdict != result.VerdictClean
	if policy != PolicyStrict {
		js := judgeStatus(r)
		flagged, unverified = js == "flag", js == "unverified"
	}
	switch {
	case flagged:
		return 0, ReasonFlagged
	case s == nil || math.IsNaN(*s) || math.IsInf(*s, 0):
		for _, st := range r.Stages {
			if st.Status == result.StatusFailed {
				return 0, ReasonFailed
			}
		}
		if r.Solve != nil && r.Solve.EndReason == result.EndHarnessError {
			return 0, ReasonFailed
		}
		return 0, ReasonNoMetrics
	case unverified && !countUnverified:
		return 0, ReasonUnverified
	}
	return *s, ReasonOK
}

// buildMethod builds one method's row; scratch holds the bootstrap
// replicates (grown as needed, its contents overwritten).
func buildMethod(label string, seedSet map[int]bool, picks map[cellKey]*Run, superseded map[cellKey]int, bl *Baselines, weights []float64, opt Options, scratch *[]float64) *Method {
	seeds := make([]int, 0, len(seedSet))
	for s := range seedSet {
		seeds = append(seeds, s)
	}
	slices.Sort(seeds)
	nb, nm, ns := len(bl.Benchmarks), len(bl.BaseModels), len(seeds)
	m := &Method{
		Method: label, NSeeds: ns, Seeds: seeds,
		Benchmarks: map[string]Stat{}, BaseModels: map[string]ModelView{},
		Fallbacks: map[string]int{}, Flags: Flags{ByLetter: map[string]int{}},
		Cells: make([]Cell, 0, nb*nm*ns),
		cells: newCellMatrix(nb, nm, ns),
	}
	for _, r := range Reasons() {
		m.Fallbacks[r] = 0
	}
	times := make([][]float64, ns)
	var inTok, outTok, cost float64
	for b := range nb {
		for mi := range nm {
			for si, seed := range seeds {
				k := cellKey{label, seed, b, mi}
				c := Cell{Seed: seed, Benchmark: bl.Benchmarks[b], BaseModel: bl.BaseModels[mi].ID}
				run := picks[k]
				var score float64
				if run == nil {
					c.Reason = ReasonMissing
				} else {
					rr := run.Result
					score, c.Reason = classify(rr, opt.Policy, opt.CountUnverified)
					ref := &RunRef{Dir: run.Dir, ID: rr.RunID, Verdict: rr.Verdict, Flags: rr.Flags, Superseded: superseded[k]}
					if rr.Score != nil && !math.IsNaN(*rr.Score) && !math.IsInf(*rr.Score, 0) {
						v := 100 * *rr.Score
						ref.Score = &v
					}
					c.Run = ref
					m.Runs++
					if c.Reason == ReasonFlagged {
						m.Flags.Runs++
						for _, f := range rr.Flags {
							m.Flags.ByLetter[f]++
						}
					}
					if c.Reason != ReasonFlagged && rr.Verdict != result.VerdictClean {
						m.Flags.Unverified++
					}
					if rr.Solve != nil && rr.Solve.TimeTakenS > 0 {
						times[si] = append(times[si], rr.Solve.TimeTakenS/3600)
					}
					if u := rr.Usage; u != nil && u.Source != "unavailable" && (u.Source != "" || u.InputTokens+u.OutputTokens > 0 || u.CostUSD != nil) {
						m.Usage.Runs++
						inTok += float64(u.InputTokens)
						outTok += float64(u.OutputTokens)
						if u.CostUSD != nil {
							m.Usage.CostRuns++
							cost += *u.CostUSD
						}
					}
				}
				m.Fallbacks[c.Reason]++
				if c.Reason == ReasonOK {
					c.Source = "run"
				} else {
					c.Source = "baseline"
					score = bl.BaseModels[mi].ZeroShot[bl.Benchmarks[b]]
				}
				c.Score = 100 * score
				m.cells.at(b, mi)[si] = c.Score
				m.Cells = append(m.Cells, c)
			}
		}
	}
	if m.Usage.Runs > 0 {
		m.Usage.InputTokensPerRun = inTok / float64(m.Usage.Runs)
		m.Usage.OutputTokensPerRun = outTok / float64(m.Usage.Runs)
	}
	if m.Usage.CostRuns > 0 {
		per, total := cost/float64(m.Usage.CostRuns), cost
		m.Usage.CostUSDPerRun, m.Usage.CostUSDTotal = &per, &total
	}
	var seedTimes []float64
	for _, t := range times {
		if len(t) > 0 {
			seedTimes = append(seedTimes, mean(t))
		}
	}
	if len(seedTimes) > 0 {
		m.TimeHours = &Stat{Mean: mean(seedTimes), Std: sampleStd(seedTimes)}
	}

	// Per seed: columns (mean over base models) and the weighted sum.
	cols := make([][]float64, nb) // cols[b][s]
	for b := range nb {
		cols[b] = make([]float64, ns)
		for s := range ns {
			sum := 0.0
			for mi := range nm {
				sum += m.cells.at(b, mi)[s]
			}
			cols[b][s] = sum / float64(nm)
		}
	}
	m.SeedScores = make([]float64, ns)
	col := make([]float64, nb)
	for s := range ns {
		for b := range nb {
			col[b] = cols[b][s]
		}
		m.SeedScores[s] = weighted(col, weights)
	}
	m.Avg, m.Std = mean(m.SeedScores), sampleStd(m.SeedScores)
	for b, name := range bl.Benchmarks {
		m.Benchmarks[name] = Stat{Mean: mean(cols[b]), Std: sampleStd(cols[b])}
	}
	for mi, bm := range bl.BaseModels {
		v := ModelView{Benchmarks: map[string]Stat{}}
		per := make([]float64, ns)
		for b, name := range bl.Benchmarks {
			cell := m.cells.at(b, mi)
			v.Benchmarks[name] = Stat{Mean: mean(cell), Std: sampleStd(cell)}
			for s := range ns {
				per[s] += weights[b] * cell[s]
			}
		}
		v.Avg, v.Std = mean(per), sampleStd(per)
		m.BaseModels[bm.ID] = v
	}

	if opt.Bootstrap > 0 && ns >= 2 {
		rng := newRNG(opt.Seed, "method", label)
		nr := opt.Bootstrap
		*scratch = slices.Grow((*scratch)[:0], (nb+1)*nr)[:(nb+1)*nr]
		avgReps := (*scratch)[:nr:nr]
		benchReps := make([][]float64, nb)
		for b := range benchReps {
			benchReps[b] = (*scratch)[(b+1)*nr : (b+2)*nr : (b+2)*nr]
		}
		for i := range opt.Bootstrap {
			m.cells.resample(rng, col)
			avgReps[i] = weighted(col, weights)
			for b := range nb {
				benchReps[b][i] = col[b]
			}
		}
		m.CI95 = percentileCI(avgReps)
		for b, name := range bl.Benchmarks {
			st := m.Benchmarks[name]
			st.CI95 = percentileCI(benchReps[b])
			m.Benchmarks[name] = st
		}
	}
	return m
}

func compare(rep *Report, a, b string, weights []float64, opt Options) (*Comparison, error) {
	find := func(name string) (*Method, error) {
		for _, m := range rep.Methods {
			if m.Method == name {
				return m, nil
			}
		}
		var names []string
		for _, m := range rep.Methods {
			names = append(names, fmt.Sprintf("%q", m.Method))
		}
		return nil, fmt.Errorf("compare: no method %q; the methods are %s", name, strings.Join(names, ", "))
	}
	ma, err := find(a)
	if err != nil {
		return nil, err
	}
	mb, err := find(b)
	if err != nil {
		return nil, err
	}
	c := &Comparison{A: a, B: b, Diff: ma.Avg - mb.Avg, Benchmarks: map[string]Stat{}, BaseModels: map[string]float64{}}
	for _, name := range rep.Benchmarks {
		c.Benchmarks[name] = Stat{Mean: ma.Benchmarks[name].Mean - mb.Benchmarks[name].Mean}
	}
	for _, name := range rep.BaseModels {
		c.BaseModels[name] = ma.BaseModels[name].Avg - mb.BaseModels[name].Avg
	}
	for bi := range ma.cells.nb {
		for mi := range ma.cells.nm {
			d := mean(ma.cells.at(bi, mi)) - mean(mb.cells.at(bi, mi))
			switch {
			case math.Abs(d) < 1e-9:
				c.CellsTied++
			case d > 0:
				c.CellsAWins++
			default:
				c.CellsBWins++
			}
		}
	}
	if opt.Bootstrap > 0 && (ma.NSeeds >= 2 || mb.NSeeds >= 2) {
		rng := newRNG(opt.Seed, "compare", a, b)
		nb := len(rep.Benchmarks)
		ca, cb := make([]float64, nb), make([]float64, nb)
		reps := make([]float64, opt.Bootstrap)
		benchReps := make([][]float64, nb)
		for i := range benchReps {
			benchReps[i] = make([]float64, opt.Bootstrap)
		}
		better := 0
		for i := range opt.Bootstrap {
			ma.cells.resample(rng, ca)
			mb.cells.resample(rng, cb)
			reps[i] = weighted(ca, weights) - weighted(cb, weights)
			if reps[i] > 0 {
				better++
			}
			for bi := range nb {
				benchReps[bi][i] = ca[bi] - cb[bi]
			}
		}
		p := float64(better) / float64(opt.Bootstrap)
		c.PABetter = &p
		c.CI95 = percentileCI(reps)
		for bi, name := range rep.Benchmarks {
			st := c.Benchmarks[name]
			st.CI95 = percentileCI(benchReps[bi])
			c.Benchmarks[name] = st
		}
	}
	return c, nil
}
