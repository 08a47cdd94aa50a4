package report

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"html/template"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
)

func sampleReport(t testing.TB) *Report {
	t.Helper()
	rep, err := Build(synthRuns(3, 2, 42), Options{Bootstrap: 200, Seed: 1,
		Compare: [][2]string{{"agent-0 (Claude Code)", "agent-1 (Codex CLI)"}}})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// synthRuns makes methods x seeds full matrices of the default baselines
// (28 runs each) with random scores, a few flagged and failed runs, times,
// and usage.
func synthRuns(methods, seeds int, seed uint64) []Run {
	rng := rand.New(rand.NewPCG(seed, 0))
	bl := DefaultBaselines()
	agents := []string{"claude", "codex", "gemini", "opencode"}
	var runs []Run
	for m := range methods {
		for s := range seeds {
			for _, b := range bl.Benchmarks {
				for _, bm := range bl.BaseModels {
					r := &result.Result{
						Schema: result.Schema,
						RunID:  fmt.Sprintf("r-%d-%d-%s-%s", m, s, b, bm.ID),
						Spec: result.Spec{Agent: agents[m%4], AgentModel: fmt.Sprintf("agent-%d", m),
							BaseModel: bm.ID, Benchmark: b, Seed: s, Hours: 10},
						Stages:  map[string]result.Stage{result.StageEvaluate: {Status: result.StatusDone}},
						Score:   fp(rng.Float64()),
						Verdict: result.VerdictClean,
						Flags:   []string{},
						Solve:   &result.Solve{TimeTakenS: 3600 * (1 + 9*rng.Float64())},
						Usage:   &result.Usage{InputTokens: int64(rng.IntN(1e6)), OutputTokens: int64(rng.IntN(1e5)), CostUSD: fp(10 * rng.Float64()), Source: "gateway"},
					}
					switch rng.IntN(20) {
					case 0:
						r.Verdict, r.Flags = result.VerdictFlagged, []string{"C"}
					case 1:
						r.Score = nil
						r.Stages[result.StageEvaluate] = result.Stage{Status: result.StatusFailed}
					}
					runs = append(runs, Run{Dir: filepath.Join("runs", r.RunID), Result: r})
				}
			}
		}
	}
	return runs
}

func TestMarkdownTable(t *testing.T) {
	rep := sampleReport(t)
	var buf bytes.Buffer
	if err := Write(&buf, rep, "md", "."); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	lines := strings.Split(md, "\n")
	header := "| Rank | Method | Avg | AIME 2025 | Arena Hard | BFCL | GPQA | GSM8K | HealthBench | HumanEval |"
	if lines[2] != header {
		t.Errorf("header\n%s\nwant\n%s", lines[2], header)
	}
	if !strings.HasPrefix(lines[4], "| - | Official Instruct Models | 51.1 |") {
		t.Errorf("first row %q, want the unranked instruct row", lines[4])
	}
	rowRe := regexp.MustCompile(`^\| (\d) \| [^|]+ \| \d+\.\d ± \d+\.\d \|( \d+\.\d ± \d+\.\d \|){7}$`)
	for i := range 3 {
		if !rowRe.MatchString(lines[5+i]) {
			t.Errorf("method row %q does not look like 'rank | method | avg ± std | 7 x mean ± std'", lines[5+i])
		}
		if !strings.HasPrefix(lines[5+i], fmt.Sprintf("| %d |", i+1)) {
			t.Errorf("row %d not ranked %d: %q", i, i+1, lines[5+i])
		}
	}
	if !strings.HasPrefix(lines[8], "| - | Base Models (zero-shot) | 7.5 |") {
		t.Errorf("row after methods %q, want the zero-shot row", lines[8])
	}
	for _, want := range []string{"## Per base model", "## agent-0 (Claude Code) vs agent-1 (Codex CLI)", "95% CI"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
}

func TestJSONShape(t *testing.T) {
	rep := sampleReport(t)
	var buf bytes.Buffer
	if err := Write(&buf, rep, "json", "."); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Weights map[string]float64 `json:"weights"`
		Methods []struct {
			Method     string   `json:"method"`
			Avg        float64  `json:"avg"`
			Std        *float64 `json:"std"`
			NSeeds     int      `json:"n_seeds"`
			Benchmarks map[string]struct {
				Mean *float64 `json:"mean"`
				Std  *float64 `json:"std"`
			} `json:"benchmarks"`
		} `json:"methods"`
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Weights) != 7 || len(got.Methods) != 3 {
		t.Fatalf("%d weights, %d methods; want 7 and 3", len(got.Weights), len(got.Methods))
	}
	for _, m := range got.Methods {
		if m.Method == "" || m.NSeeds != 2 || m.Std == nil || m.Avg <= 1 || m.Avg > 100 {
			t.Errorf("method %+v: want a name, 2 seeds, a std and avg in percent", m)
		}
		if len(m.Benchmarks) != 7 {
			t.Errorf("%s: %d benchmarks", m.Method, len(m.Benchmarks))
		}
		for b, st := range m.Benchmarks {
			if st.Mean == nil || st.Std == nil {
				t.Errorf("%s %s: mean or std absent", m.Method, b)
			}
		}
	}
}

func TestCSV(t *testing.T) {
	rep := sampleReport(t)
	var buf bytes.Buffer
	if err := Write(&buf, rep, "csv", "."); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1+3+3 {
		t.Fatalf("%d rows, want header + 3 baselines + 3 methods", len(rows))
	}
	if rows[0][2] != "avg" || rows[4][0] != "1" || rows[1][0] != "" {
		t.Errorf("rows %q", rows[:5])
	}
}

func TestWriteDirAndFigures(t *testing.T) {
	rep := sampleReport(t)
	dir := t.TempDir()
	written, err := WriteDir(dir, rep, Formats())
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 4+2+7 {
		t.Errorf("wrote %d files, want 4 reports + 2 figures + 7 benchmark figures", len(written))
	}
	svg, err := os.ReadFile(filepath.Join(dir, "figures", "time_vs_score.svg"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(svg, []byte(`class="frontier"`)) || bytes.Count(svg, []byte(`<circle`)) != 3 {
		t.Errorf("time plot lacks the frontier or 3 points")
	}
	if err := Write(&bytes.Buffer{}, rep, "pdf", "."); err == nil {
		t.Error("unknown format: no error")
	}
}

func TestParetoFrontier(t *testing.T) {
	pts := []point{{label: "slow-best", t: 9, s: 30}, {label: "fast-bad", t: 1, s: 5}, {label: "dominated", t: 5, s: 4}, {label: "mid", t: 4, s: 20}}
	var got []string
	for _, p := range paretoFrontier(pts) {
		got = append(got, p.label)
	}
	if strings.Join(got, ",") != "fast-bad,mid,slow-best" {
		t.Errorf("frontier %v", got)
	}
}

func TestHTMLLinksAndEscaping(t *testing.T) {
	runs := []Run{mkRun(`<script>alert(1)</script>`, 0, "b1", "org/A-Base", 0.5)}
	runs[0].Dir = filepath.Join("runs", "a b", "r1")
	rep, err := Build(runs, Options{Baselines: small(t)})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteHTML(&buf, rep, "out"); err != nil {
		t.Fatal(err)
	}
	h := buf.String()
	if strings.Contains(h, "<script>alert") {
		t.Error("method label not escaped")
	}
	for _, want := range []string{`href="../runs/a%20b/r1/trace/"`, `href="../runs/a%20b/r1/eval/metrics.json"`, `href="../runs/a%20b/r1/audit/"`} {
		if !strings.Contains(h, want) {
			t.Errorf("html lacks %s", want)
		}
	}
}

// TestHTMLInChromium opens the report in headless Chromium: the leaderboard
// has one row per method and the inline SVG plots are in the DOM and paint.
func TestHTMLInChromium(t *testing.T) {
	browser := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		t.Skip("chromium not installed (apt-get install -y chromium); skipping the browser check")
	}
	rep := sampleReport(t)
	dir := t.TempDir()
	if _, err := WriteDir(dir, rep, []string{"html"}); err != nil {
		t.Fatal(err)
	}
	page := "file://" + filepath.Join(dir, "report.html")
	flags := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir=" + filepath.Join(dir, "profile")}
	run := func(extra ...string) []byte {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, browser, append(append(flags, extra...), page)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v\n%s", browser, err, stderr.String())
		}
		return out
	}
	dom := string(run("--dump-dom"))
	lb := regexp.MustCompile(`(?s)<table id="leaderboard">.*?</table>`).FindString(dom)
	if got := strings.Count(lb, `<tr class="method">`); got != len(rep.Methods) {
		t.Errorf("leaderboard has %d method rows in the DOM, want %d", got, len(rep.Methods))
	}
	if got := strings.Count(dom, "<svg"); got != 2+len(rep.Benchmarks) {
		t.Errorf("%d svg elements in the DOM, want %d", got, 2+len(rep.Benchmarks))
	}
	if !strings.Contains(dom, `<g class="bar">`) || !strings.Contains(dom, `<circle`) {
		t.Error("plots have no bars or points in the DOM")
	}
	shot := filepath.Join(dir, "shot.png")
	run("--screenshot="+shot, "--window-size=1280,2000", "--hide-scrollbars")
	png, err := os.ReadFile(shot)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) || len(png) < 20000 {
		t.Errorf("screenshot is %d bytes; want a PNG of a painted page (>20 kB)", len(png))
	}
	if p := os.Getenv("PTB_REPORT_SCREENSHOT"); p != "" {
		os.WriteFile(p, png, 0o644)
	}
}

// tenThousandRuns writes 10,000 result.json files under a temporary
// directory: 120 methods x 3 seeds x 28 cells = 10,080, cut to 10,000.
func tenThousandRuns(b *testing.B) string {
	b.Helper()
	root := b.TempDir()
	for _, r := range synthRuns(120, 3, 9)[:10000] {
		d := filepath.Join(root, r.Result.Spec.AgentModel, fmt.Sprint(r.Result.Spec.Seed), r.Result.Spec.Benchmark, filepath.Base(r.Result.Spec.BaseModel))
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
		data, _ := json.Marshal(r.Result)
		if err := os.WriteFile(filepath.Join(d, "result.json"), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return root
}

// BenchmarkTenThousandRuns: 10,000 result.json files on disk to every
// output (md, csv, json, html and the SVG figures), with 2,000 bootstrap
// replicates. scripts/bench/report.sh runs it beside the original's
// aggregation scripts.
func BenchmarkTenThousandRuns(b *testing.B) {
	root := tenThousandRuns(b)
	out := b.TempDir()
	cpu := startCPUTime(b)
	for b.Loop() {
		loaded, _, err := LoadRuns(context.Background(), []string{root})
		if err != nil || len(loaded) != 10000 {
			b.Fatalf("loaded %d runs: %v", len(loaded), err)
		}
		rep, err := Build(loaded, Options{Bootstrap: 2000, Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := WriteDir(out, rep, Formats()); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report()
}

// cpuTime reports, beside a benchmark's wall time, the CPU time (user and
// system, all threads) per op: on a shared machine the wall time of a
// parallel program says more about the neighbours than about the program.
type cpuTime struct {
	b     *testing.B
	start time.Duration
}

func startCPUTime(b *testing.B) *cpuTime { return &cpuTime{b, processCPU(b)} }

func (c *cpuTime) report() {
	c.b.ReportMetric(float64(processCPU(c.b)-c.start)/float64(time.Millisecond)/float64(c.b.N), "cpu-ms/op")
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTenThousandRunsPhases splits BenchmarkTenThousandRuns into its
// phases: load (walk and parse), build (aggregate and bootstrap), render
// (every format and figure into memory) and write (render and write the
// files atomically).
//
// With PTB_REPORT_BENCH_RUNS=DIR the phases run on the run directories under
// DIR instead of the synthetic ones, for instance the 10,000 runs
// scripts/bench/report.sh imports (KEEP=1 keeps them): imported records
// are larger than the synthetic ones (judge evidence, metrics, warnings).
func BenchmarkTenThousandRunsPhases(b *testing.B) {
	root, want := os.Getenv("PTB_REPORT_BENCH_RUNS"), -1
	if root == "" {
		root, want = tenThousandRuns(b), 10000
	}
	loaded, _, err := LoadRuns(context.Background(), []string{root})
	if err != nil || len(loaded) == 0 || want >= 0 && len(loaded) != want {
		b.Fatalf("loaded %d runs: %v", len(loaded), err)
	}
	opt := Options{Bootstrap: 2000, Seed: 1}
	rep, err := Build(loaded, opt)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("load", func(b *testing.B) {
		cpu := startCPUTime(b)
		defer cpu.report()
		for b.Loop() {
			if _, _, err := LoadRuns(context.Background(), []string{root}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("build", func(b *testing.B) {
		cpu := startCPUTime(b)
		defer cpu.report()
		for b.Loop() {
			if _, err := Build(loaded, opt); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("render", func(b *testing.B) {
		cpu := startCPUTime(b)
		defer cpu.report()
		for b.Loop() {
			for _, f := range Formats() {
				if err := Write(io.Discard, rep, f, root); err != nil {
					b.Fatal(err)
				}
			}
			Figures(rep)
		}
	})
	out := b.TempDir()
	b.Run("write", func(b *testing.B) {
		cpu := startCPUTime(b)
		defer cpu.report()
		for b.Loop() {
			if _, err := WriteDir(out, rep, Formats()); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestLinkerIsAbsRel: links computed with the working directory looked up
// once are those of filepath.Abs and filepath.Rel on every call.
func TestLinkerIsAbsRel(t *testing.T) {
	ref := func(base, target string) string {
		if base == "" {
			base = "."
		}
		ab, err1 := filepath.Abs(base)
		at, err2 := filepath.Abs(target)
		if err1 == nil && err2 == nil {
			if rel, err := filepath.Rel(ab, at); err == nil {
				return filepath.ToSlash(rel)
			}
		}
		return filepath.ToSlash(target)
	}
	targets := []string{"", "runs/a/r1", "runs/a/r1/trace", "./runs//a/../b/r2", "/abs/run", "/", ".", "..", "../up/run", "out/r"}
	for _, base := range []string{"", ".", "out", "out/deep/", "/tmp/x", "../sibling", "/"} {
		ln := newLinker(base)
		for _, target := range targets {
			link := ln.to(target)
			if want := ref(base, target); link != want {
				t.Errorf("base %q target %q: got %q, want %q", base, target, link, want)
			}
			for _, sub := range []string{rundir.TraceDir, rundir.AuditDir, rundir.MetricsFile} {
				if got, want := ln.under(link, sub), ref(base, filepath.Join(target, sub)); got != want {
					t.Errorf("base %q target %q below %q: got %q, want %q", base, target, sub, got, want)
				}
			}
		}
	}
}

// runRowsReference is the run rows as rendered before appendRunRows: one
// strings.Builder, every link through linker.under (path.Join) and
// escapePath.
func runRowsReference(m *Method, ln *linker) template.HTML {
	var sb strings.Builder
	sb.Grow(len(m.Cells) * 640)
	esc := html.EscapeString
	td := func(class, text string) {
		if class != "" {
			sb.WriteString(`<td class="` + class + `">`)
		} else {
			sb.WriteString("<td>")
		}
		sb.WriteString(text)
		sb.WriteString("</td>")
	}
	for _, c := range m.Cells {
		if c.Reason == ReasonOK {
			sb.WriteString("<tr>")
		} else {
			sb.WriteString(`<tr class="fallback">`)
		}
		td("l", strconv.Itoa(c.Seed))
		td("l", esc(c.Benchmark))
		td("l", esc(shortModel(c.BaseModel)))
		td("", f1(c.Score))
		td("l", esc(c.Source))
		td("l", esc(c.Reason))
		if c.Run == nil {
			sb.WriteString(`<td class="l"></td><td class="l"></td></tr>` + "\n")
			continue
		}
		dir := ln.to(c.Run.Dir)
		link := func(sub, slash, text string) {
			sb.WriteString(`<a href="`)
			sb.WriteString(esc(escapePath(ln.under(dir, sub))))
			sb.WriteString(slash + `">` + text + `</a> `)
		}
		td("l", esc(c.Run.ID))
		sb.WriteString(`<td class="l">`)
		link("", "/", "dir")
		link(rundir.TraceDir, "/", "trace")
		link(rundir.AuditDir, "/", "audit")
		link(rundir.MetricsFile, "", "metrics")
		sb.WriteString("</td></tr>\n")
	}
	return template.HTML(sb.String())
}

// TestRunRowsIsReference: the rows rendered into a shared buffer, with the
// links of a run sharing its escaped directory, are the bytes of the old
// rendering, for a report's cells and for run directories of every odd
// shape (relative and absolute, unclean, ".", "/", "*", characters that
// need escaping in a URL or in HTML, non-ASCII) from several link bases.
func TestRunRowsIsReference(t *testing.T) {
	rep := sampleReport(t)
	var buf []byte
	for _, base := range []string{"", ".", "out", "/tmp/x", "../sibling"} {
		ln := newLinker(base)
		for _, m := range rep.Methods {
			buf = appendRunRows(buf[:0], m, ln)
			if got, want := string(buf), string(runRowsReference(m, ln)); got != want {
				t.Fatalf("base %q method %q:\ngot  %s\nwant %s", base, m.Method, got, want)
			}
		}
	}
	dirs := []string{"", ".", "..", "/", "*", "./*", "runs/*", "a", "runs/a/r1", "./runs//a/../b/r2", "runs/a/", "/abs/run", "/abs/run/",
		"../up/run", "a b/c&d", "100%/x", "é/日本", "a?b#c", "x:y/z", "<b>'\"", "a+b=c;d@e$f,g", "~user/-_.!"}
	rng := rand.New(rand.NewPCG(3, 4))
	pieces := []string{"a", "/", "..", ".", " ", "%", "&", "*", "é", "#", "?", ":", "<", "\"", "'", "+"}
	for range 2000 {
		var sb strings.Builder
		for range 1 + rng.IntN(6) {
			sb.WriteString(pieces[rng.IntN(len(pieces))])
		}
		dirs = append(dirs, sb.String())
	}
	m := &Method{}
	for i, d := range dirs {
		m.Cells = append(m.Cells, Cell{Seed: i, Benchmark: "gsm8k", BaseModel: "Qwen/Qwen3-1.7B-Base", Score: float64(i) / 7,
			Source: "run", Reason: []string{ReasonOK, ReasonFlagged}[i%2], Run: &RunRef{Dir: d, ID: "id<" + d}})
	}
	m.Cells = append(m.Cells, Cell{Seed: 1, Benchmark: "a&b", BaseModel: "x/y<z>", Score: -0.05, Source: "baseline", Reason: ReasonMissing})
	for _, base := range []string{"", ".", "out", "/tmp/x", "../sibling", "/", "*", "a b"} {
		ln := newLinker(base)
		buf = appendRunRows(buf[:0], m, ln)
		got, want := strings.Split(string(buf), "\n"), strings.Split(string(runRowsReference(m, ln)), "\n")
		if len(got) != len(want) {
			t.Fatalf("base %q: %d rows, want %d", base, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("base %q row %d:\ngot  %s\nwant %s", base, i, got[i], want[i])
			}
		}
	}
}

// TestRunLinksNeedNoEscaping: appendRunLinks appends the subpaths of a run
// directory as they are.
func TestRunLinksNeedNoEscaping(t *testing.T) {
	for _, l := range runLinks {
		sub := filepath.ToSlash(l.sub)
		if got := html.EscapeString(escapePath(sub)); got != sub || path.Clean("x/"+sub) != "x/"+sub && sub != "" {
			t.Errorf("%q escapes to %q or is not clean", sub, got)
		}
	}
}

// TestMdEscapeIsReplacer: the shortcut for cells with nothing to escape
// gives the Replacer's result.
func TestMdEscapeIsReplacer(t *testing.T) {
	ref := strings.NewReplacer("|", `\|`, "\n", " ")
	rng := rand.New(rand.NewPCG(9, 9))
	pieces := []string{"a", "|", "\n", "\r", `\`, "é", " ", "||", "\n\n"}
	for range 5000 {
		var sb strings.Builder
		for range rng.IntN(6) {
			sb.WriteString(pieces[rng.IntN(len(pieces))])
		}
		s := sb.String()
		if got, want := mdEscape(s), ref.Replace(s); got != want {
			t.Fatalf("mdEscape(%q) = %q, want %q", s, got, want)
		}
	}
}

// failAfter accepts n bytes, then fails every write.
type failAfter struct{ n int }

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		return 0, errors.New("disk full")
	}
	f.n -= len(p)
	return len(p), nil
}

// TestWriteHTMLRowsWriteError: the run rows, which go to the writer
// themselves, stop the page with the writer's error.
func TestWriteHTMLRowsWriteError(t *testing.T) {
	rep := sampleReport(t)
	var full bytes.Buffer
	if err := WriteHTML(&full, rep, "."); err != nil {
		t.Fatal(err)
	}
	// Fail within the run rows: after the first <tbody> of the runs.
	at := strings.Index(full.String(), `<table class="runs">`) + 600
	if err := WriteHTML(&failAfter{at}, rep, "."); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("got %v, want the writer's error", err)
	}
}
