package ptbimport

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/report"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
)

func TestParseMethod(t *testing.T) {
	tests := []struct {
		dir                          string
		agent, variant, model, label string
		hours                        float64
		seed                         int
	}{
		{"claude_claude-opus-4-6_10h_run2", "claude", "", "claude-opus-4-6", "claude-opus-4-6 (Claude Code)", 10, 2},
		{"codex_gpt-5.2_10h_v6_seed1", "codex", "", "gpt-5.2", "gpt-5.2 (Codex CLI)", 10, 1},
		{"codex_gpt-5.1-codex-max_10h_final_v3", "codex", "", "gpt-5.1-codex-max", "gpt-5.1-codex-max (Codex CLI)", 10, -1},
		{"codex_non_api_high_gpt-5.4_10h_run3", "codex", "codex_non_api_high", "gpt-5.4", "gpt-5.4 (Codex CLI, codex_non_api_high)", 10, 3},
		{"opencode_opencode_gemini-3.1-pro_5h_run1", "opencode", "", "opencode_gemini-3.1-pro", "opencode_gemini-3.1-pro (OpenCode, 5h)", 5, 1},
		{"gemini_models_gemini-3-pro-preview_10h_v5", "gemini", "", "models_gemini-3-pro-preview", "models_gemini-3-pro-preview (Gemini CLI)", 10, -1},
		{"claude_non_api_claude-opus-4-6_1m__10h_run1", "claude", "claude_non_api", "claude-opus-4-6_1m_", "claude-opus-4-6_1m_ (Claude Code, claude_non_api)", 10, 1},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			m := ParseMethod(tt.dir)
			got := fmt.Sprintf("%s|%s|%s|%s|%g|%d", m.Agent, m.Variant, m.AgentModel, m.Label, m.Hours, m.Seed)
			want := fmt.Sprintf("%s|%s|%s|%s|%g|%d", tt.agent, tt.variant, tt.model, tt.label, tt.hours, tt.seed)
			if got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

func TestAssignSeeds(t *testing.T) {
	// The original's Opus-4.5 group: two unnumbered directories and a _seed1.
	dirs := []string{"claude_claude-opus-4-5_10h_final_v3", "claude_claude-opus-4-5_10h_v5", "claude_claude-opus-4-5_10h_v6_seed1", "codex_gpt-5.2_10h_v4"}
	ms, err := assignMethods(dirs, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, fmt.Sprintf("%s=%d", m.Label, m.Seed))
	}
	want := "claude-opus-4-5 (Claude Code)=0 claude-opus-4-5 (Claude Code)=2 claude-opus-4-5 (Claude Code)=1 gpt-5.2 (Codex CLI)=0"
	if strings.Join(got, " ") != want {
		t.Errorf("got  %s\nwant %s", strings.Join(got, " "), want)
	}
	ms, err = assignMethods(dirs[:2], map[string][]string{"Opus 4.5": {dirs[1], dirs[0]}})
	if err != nil {
		t.Fatal(err)
	}
	if ms[0].Label != "Opus 4.5" || ms[0].Seed != 2 || ms[1].Seed != 1 {
		t.Errorf("grouped: %+v", ms)
	}
	if _, err := assignMethods(dirs, map[string][]string{"a": {dirs[0]}, "b": {dirs[0]}}); err == nil {
		t.Error("directory in two groups: no error")
	}
}

func TestParseTime(t *testing.T) {
	for in, want := range map[string]float64{"8:17:28\n": 8*3600 + 17*60 + 28, "0:55:07": 55*60 + 7, "12:00:00": 43200} {
		got, err := ParseTime(in)
		if err != nil || got != want {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "8:61:00", "1:2", "a:b:c"} {
		if _, err := ParseTime(in); err == nil {
			t.Errorf("ParseTime(%q): no error", in)
		}
	}
}

// cellSpec is one run of the test matrix, written both in the original's
// layout and as a native ptb run.
type cellSpec struct {
	method       string // original method directory
	seed         int
	bench, model string
	acc          *float64 // nil: no metrics.json
	contaminated bool
	disallowed   bool
	noJudge      bool
	seconds      int
}

func f(v float64) *float64 { return &v }

func testMatrix() []cellSpec {
	bl := report.DefaultBaselines()
	var cells []cellSpec
	i := 0
	for _, md := range []struct {
		dir  string
		seed int
	}{{"claude_claude-opus-4-6_10h_run1", 1}, {"claude_claude-opus-4-6_10h_run2", 2}, {"codex_gpt-5.3-codex_10h_run1", 1}} {
		for bi, b := range bl.Benchmarks {
			for mi, m := range bl.BaseModels {
				i++
				c := cellSpec{method: md.dir, seed: md.seed, bench: b, model: m.ID,
					acc: f(float64((i*37)%100) / 100), seconds: 3600 + i*97}
				switch (bi*4 + mi + md.seed) % 11 {
				case 0:
					c.acc = nil // every evaluation attempt failed
				case 3:
					c.contaminated = true
				case 5:
					c.disallowed = true
				case 7:
					c.noJudge = true
				case 9:
					continue // never ran
				}
				cells = append(cells, c)
			}
		}
	}
	return cells
}

func writeOriginal(t testing.TB, root string, cells []cellSpec) {
	t.Helper()
	for n, c := range cells {
		name := fmt.Sprintf("%s_%s_%d", c.bench, strings.Replace(c.model, "/", "_", 1), 1000+n)
		d := filepath.Join(root, c.method, name)
		files := map[string]string{
			TimeFile:        fmt.Sprintf("%d:%02d:%02d\n", c.seconds/3600, c.seconds%3600/60, c.seconds%60),
			TraceFile:       `{"type":"system"}` + "\n",
			ParsedTraceFile: "agent did things\n",
			"prompt.txt":    "the prompt\n",
		}
		if c.acc != nil {
			files[MetricsFile] = fmt.Sprintf("{\n  \"accuracy\": %v,\n  \"stderr\": 0.01\n}", *c.acc)
		}
		if !c.noJudge {
			files[ContaminationFile] = "no contamination detected\n"
			if c.contaminated {
				files[ContaminationFile] = "contamination detected\n"
			}
			files[DisallowedFile] = "only allowed use detected\n"
			if c.disallowed {
				files[DisallowedFile] = "disallowed use detected\n"
			}
		}
		for k, v := range files {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, k), []byte(v), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	// An older attempt of the first cell, with a higher score, that the
	// original's aggregation (highest id wins) leaves out.
	c := cells[0]
	old := filepath.Join(root, c.method, fmt.Sprintf("%s_%s_%d", c.bench, strings.Replace(c.model, "/", "_", 1), 7))
	os.MkdirAll(old, 0o755)
	os.WriteFile(filepath.Join(old, MetricsFile), []byte(`{"accuracy": 0.99}`), 0o644)
	// Baseline runs of the original are not a method.
	os.MkdirAll(filepath.Join(root, "baseline_zeroshot", "gsm8k_Qwen_Qwen3-4B-Base_1"), 0o755)
}

func writeNative(t *testing.T, root string, cells []cellSpec) {
	t.Helper()
	for n, c := range cells {
		m := ParseMethod(c.method)
		r := &result.Result{
			Schema: result.Schema, RunID: fmt.Sprint(n),
			Spec:   result.Spec{Agent: m.Agent, AgentModel: m.AgentModel, Hours: 10, Seed: c.seed, BaseModel: c.model, Benchmark: c.bench},
			Stages: map[string]result.Stage{result.StageEvaluate: {Status: result.StatusDone}},
			Score:  c.acc, Verdict: result.VerdictClean, Flags: []string{},
			Solve: &result.Solve{TimeTakenS: float64(c.seconds)},
		}
		if c.acc == nil {
			r.Stages[result.StageEvaluate] = result.Stage{Status: result.StatusFailed}
		}
		switch {
		case c.contaminated:
			r.Verdict, r.Flags = result.VerdictFlagged, []string{"C"}
		case c.disallowed:
			r.Verdict, r.Flags = result.VerdictFlagged, []string{"M"}
		case c.noJudge:
			r.Verdict = result.VerdictUnverified
		}
		// ptb's audit records the LLM judge's two judgements as findings.
		if !c.noJudge {
			st := map[bool]string{true: "flag", false: "pass"}
			r.Audit = &result.Audit{Verdict: r.Verdict, Flags: r.Flags, Findings: []result.Finding{
				{Check: "judge.contamination", Status: st[c.contaminated], Kind: "C"},
				{Check: "judge.model", Status: st[c.disallowed], Kind: "M"},
			}}
		}
		if err := rundir.Dir(filepath.Join(root, fmt.Sprint(n))).WriteJSON(rundir.ResultFile, r); err != nil {
			t.Fatal(err)
		}
	}
}

func markdown(t *testing.T, dir string) string {
	t.Helper()
	runs, warnings, err := report.LoadRuns(context.Background(), []string{dir})
	if err != nil || len(warnings) > 0 {
		t.Fatalf("load %s: %v %v", dir, err, warnings)
	}
	rep, err := report.Build(runs, report.Options{Bootstrap: 300, Seed: 5,
		Compare: [][2]string{{"claude-opus-4-6 (Claude Code)", "gpt-5.3-codex (Codex CLI)"}}})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := report.Write(&buf, rep, "md", "."); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// TestImportMatchesNative: the same numbers, laid out as the original
// harness leaves them and imported, or recorded as native ptb runs, give
// the same report.
func TestImportMatchesNative(t *testing.T) {
	cells := testMatrix()
	orig, imported, native := t.TempDir(), t.TempDir(), t.TempDir()
	writeOriginal(t, orig, cells)
	writeNative(t, native, cells)

	sum, err := Import(context.Background(), orig, imported, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Imported != len(cells) {
		t.Errorf("imported %d runs, want %d", sum.Imported, len(cells))
	}
	if len(sum.Skipped) != 2 {
		t.Errorf("skipped %q, want the superseded run and the baseline directory", sum.Skipped)
	}
	got, want := markdown(t, imported), markdown(t, native)
	if got != want {
		t.Errorf("imported report differs from native:\n--- imported\n%s\n--- native\n%s", got, want)
	}
	for _, s := range []string{"| 1 | ", "| 2 | ", "claude-opus-4-6 (Claude Code)", "| - | Base Models (zero-shot) |"} {
		if !strings.Contains(got, s) {
			t.Errorf("report lacks %q:\n%s", s, got)
		}
	}

	// One imported run directory in detail.
	c := cells[0]
	var dir string
	filepath.WalkDir(imported, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && strings.HasPrefix(d.Name(), c.bench+"_") && strings.HasSuffix(d.Name(), "_1000") {
			dir = p
		}
		return nil
	})
	r, err := result.Read(filepath.Join(dir, rundir.ResultFile))
	if err != nil {
		t.Fatal(err)
	}
	if r.Spec.BaseModel != c.model || r.Spec.Seed != 1 || *r.Score != *c.acc || r.Solve.TimeTakenS != float64(c.seconds) {
		t.Errorf("result %+v %+v", r.Spec, r.Solve)
	}
	if len(r.Warnings) == 0 || !strings.Contains(r.Warnings[0], ImportedMarker) {
		t.Errorf("warnings %q lack the import marker", r.Warnings)
	}
	for _, rel := range []string{rundir.MetricsFile, TraceDest, ParsedDest, rundir.AuditFile, "audit/" + ContaminationFile, "original/prompt.txt"} {
		if _, err := os.Stat(filepath.Join(dir, rel)); err != nil {
			t.Errorf("imported run lacks %s", rel)
		}
	}
}

func TestImportVerdicts(t *testing.T) {
	tests := []struct {
		name          string
		contamination string // "" leaves the file out
		disallowed    string
		verdict       string
		flags         string
	}{
		{"clean", "no contamination detected", "only allowed use detected", result.VerdictClean, ""},
		{"contaminated", "contamination detected", "only allowed use detected", result.VerdictFlagged, "C"},
		{"disallowed model", "no contamination detected", "disallowed use detected", result.VerdictFlagged, "M"},
		{"both", "contamination detected", "disallowed use detected", result.VerdictFlagged, "C,M"},
		{"no judge files", "", "", result.VerdictUnverified, ""},
		{"unexpected content", "maybe", "only allowed use detected", result.VerdictUnverified, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, out := t.TempDir(), t.TempDir()
			d := filepath.Join(src, "codex_gpt-5.2_10h_run1", "gsm8k_Qwen_Qwen3-4B-Base_12")
			os.MkdirAll(d, 0o755)
			if tt.contamination != "" {
				os.WriteFile(filepath.Join(d, ContaminationFile), []byte(tt.contamination+"\n"), 0o644)
			}
			if tt.disallowed != "" {
				os.WriteFile(filepath.Join(d, DisallowedFile), []byte(tt.disallowed+"\n"), 0o644)
			}
			if _, err := Import(context.Background(), src, out, Options{}); err != nil {
				t.Fatal(err)
			}
			r, err := result.Read(filepath.Join(out, "codex_gpt-5.2_10h_run1", "gsm8k_Qwen_Qwen3-4B-Base_12", rundir.ResultFile))
			if err != nil {
				t.Fatal(err)
			}
			if r.Verdict != tt.verdict || strings.Join(r.Flags, ",") != tt.flags {
				t.Errorf("verdict %q flags %v; want %q %q", r.Verdict, r.Flags, tt.verdict, tt.flags)
			}
			if r.Score != nil || r.Stages[result.StageEvaluate].Status != result.StatusFailed || r.Stages[result.StageSolve].Status != result.StatusFailed {
				t.Errorf("no metrics.json and no time_taken.txt: score %v, stages %v", r.Score, r.Stages)
			}
		})
	}
}

// manyCells is n original runs: method directories (three seeds of each
// agent model) holding one matrix of testMatrix's first method each.
func manyCells(n int) []cellSpec {
	var base []cellSpec
	for _, c := range testMatrix() {
		if c.method == testMatrix()[0].method {
			base = append(base, c)
		}
	}
	cells := make([]cellSpec, 0, n)
	for i := 0; len(cells) < n; i++ {
		c, k := base[i%len(base)], i/len(base)
		c.method = fmt.Sprintf("claude_agent-%d_10h_run%d", k/3, k%3+1)
		cells = append(cells, c)
	}
	return cells
}

// tree reads every file under root: relative path to content.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		files[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestImportWorkersSameOutput: importing with one worker and with many
// writes the same files with the same bytes, and the same summary.
func TestImportWorkersSameOutput(t *testing.T) {
	src := t.TempDir()
	writeOriginal(t, src, manyCells(120))
	var trees []map[string]string
	var sums []*Summary
	for _, workers := range []int{1, 7, 64} {
		out := t.TempDir()
		sum, err := Import(context.Background(), src, out, Options{Workers: workers})
		if err != nil {
			t.Fatal(err)
		}
		trees, sums = append(trees, tree(t, out)), append(sums, sum)
	}
	if len(trees[0]) < 120*6 {
		t.Fatalf("one worker wrote %d files, want at least %d", len(trees[0]), 120*6)
	}
	for i := 1; i < len(trees); i++ {
		if len(trees[i]) != len(trees[0]) {
			t.Errorf("run %d wrote %d files, one worker %d", i, len(trees[i]), len(trees[0]))
		}
		for p, want := range trees[0] {
			if got, ok := trees[i][p]; !ok || got != want {
				t.Errorf("run %d: %s differs from one worker's", i, p)
			}
		}
		if fmt.Sprint(*sums[i]) != fmt.Sprint(*sums[0]) {
			t.Errorf("summary %d differs:\n%+v\nwant\n%+v", i, *sums[i], *sums[0])
		}
	}
}

// TestImportStopsAtFirstError: a run that cannot be written stops the
// import with that run's error, as importing one run at a time would, and
// every imported run directory that has a result.json is complete.
func TestImportStopsAtFirstError(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	cells := manyCells(200)
	writeOriginal(t, src, cells)
	// A file where a method's output directory must go.
	blocked := cells[120].method
	if err := os.WriteFile(filepath.Join(out, blocked), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Import(context.Background(), src, out, Options{Workers: 8})
	if err == nil || !strings.Contains(err.Error(), blocked) || !errors.Is(err, syscall.ENOTDIR) {
		t.Fatalf("error %v, want one naming %s (not a directory)", err, blocked)
	}
	_, want := Import(context.Background(), src, t.TempDir(), Options{Workers: 1})
	if want != nil {
		t.Fatal(want)
	}
	entries, _ := os.ReadDir(out)
	for _, e := range entries {
		runs, _ := os.ReadDir(filepath.Join(out, e.Name()))
		for _, r := range runs {
			d := filepath.Join(out, e.Name(), r.Name())
			if _, err := os.Stat(filepath.Join(d, rundir.ResultFile)); err != nil {
				continue // not imported, or cut off before its record
			}
			for _, rel := range []string{rundir.AuditFile, TraceDest, ParsedDest} {
				if _, err := os.Stat(filepath.Join(d, rel)); err != nil {
					t.Errorf("%s has a result.json but no %s", d, rel)
				}
			}
		}
	}
}

func TestImportCancelled(t *testing.T) {
	src := t.TempDir()
	writeOriginal(t, src, manyCells(50))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Import(ctx, src, t.TempDir(), Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
}

var importRuns = flag.Int("import-runs", 1000, "runs in BenchmarkImport (10000 for the figure in docs/PERFORMANCE.md)")

// BenchmarkImport: -import-runs original run directories (6 files each)
// imported with one worker (as before) and with the default pool.
func BenchmarkImport(b *testing.B) {
	src := b.TempDir()
	writeOriginal(b, src, manyCells(*importRuns))
	for _, workers := range []int{1, DefaultWorkers} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			for b.Loop() {
				out := b.TempDir()
				sum, err := Import(context.Background(), src, out, Options{Workers: workers})
				if err != nil || sum.Imported != *importRuns {
					b.Fatalf("imported %v: %v", sum, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed())/float64(time.Millisecond)/float64(b.N*(*importRuns)), "ms/run")
		})
	}
}

// TestReadFileIsOSReadFile: readFile, in raw system calls, reads what
// os.ReadFile reads, and fails where it fails (absent file, directory).
func TestReadFileIsOSReadFile(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{0, 1, 511, 512, 513, 1024, 5000, 1 << 20} {
		p := filepath.Join(dir, fmt.Sprint(n))
		data := bytes.Repeat([]byte("0123456789abcdef\n"), n/17+1)[:n]
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := readFile(p)
		if want, werr := os.ReadFile(p); err != nil || werr != nil || !bytes.Equal(got, want) {
			t.Errorf("size %d: got %d bytes (%v), want %d (%v)", n, len(got), err, len(want), werr)
		}
	}
	for _, p := range []string{filepath.Join(dir, "absent"), dir} {
		_, err := readFile(p)
		_, werr := os.ReadFile(p)
		if err == nil || werr == nil || err.Error() != werr.Error() {
			t.Errorf("%s: got error %v, want %v", p, err, werr)
		}
	}
}
