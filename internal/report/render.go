package report

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/ptb-dev/ptb/internal/fsutil"
	"github.com/ptb-dev/ptb/internal/registry"
)

// Formats lists the output formats Write accepts.
func Formats() []string { return []string{"md", "csv", "json", "html"} }

// builtinRegistry is the built-in registry, parsed once.
var builtinRegistry = sync.OnceValue(registry.Default)

// BenchmarkName is a benchmark's column title, as in the paper's Table 1:
// the built-in registry's column for it, else its name.
func BenchmarkName(b string) string {
	if r, err := builtinRegistry().Benchmark(b); err == nil && r.Column != "" {
		return r.Column
	}
	return b
}

func shortModel(id string) string { return id[strings.LastIndex(id, "/")+1:] }

// Write renders rep in format (md, csv, json or html) to w. linkBase is the
// directory the HTML file will be read from; its links into run directories
// are made relative to it.
func Write(w io.Writer, rep *Report, format, linkBase string) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	if err := render(bw, rep, format, linkBase); err != nil {
		return err
	}
	return bw.Flush()
}

func render(w io.Writer, rep *Report, format, linkBase string) error {
	switch format {
	case "md":
		return WriteMarkdown(w, rep)
	case "csv":
		return WriteCSV(w, rep)
	case "json":
		return WriteJSON(w, rep)
	case "html":
		return WriteHTML(w, rep, linkBase)
	}
	return fmt.Errorf("unknown format %q; use one of %s", format, strings.Join(Formats(), ", "))
}

// WriteDir writes report.<format> for each format and the SVG figures under
// dir/figures, each file atomically. The files are rendered straight into
// their temporary files, in parallel; the paths written come back in the
// order formats, then figures, whatever the error.
func WriteDir(dir string, rep *Report, formats []string) ([]string, error) {
	type output struct {
		rel    string
		render func(io.Writer) error
	}
	var outs []output
	// The figures are drawn once, for their files and for the HTML page.
	figs := Figures(rep)
	for _, f := range formats {
		outs = append(outs, output{"report." + f, func(w io.Writer) error {
			if f == "html" {
				return writeHTML(w, rep, dir, figs)
			}
			return render(w, rep, f, dir)
		}})
	}
	for _, fig := range figs {
		outs = append(outs, output{filepath.Join("figures", fig.Name+".svg"), func(w io.Writer) error {
			_, err := io.WriteString(w, fig.SVG)
			return err
		}})
	}
	errs := make([]error, len(outs))
	// Files, not cores, bound the pool: each write waits on fsync.
	parallelN(len(outs), len(outs), func(i int) {
		path := filepath.Join(dir, outs[i].rel)
		var renderErr error
		err := fsutil.WriteAtomic(path, 0o644, func(w io.Writer) error {
			renderErr = outs[i].render(w)
			return renderErr
		})
		switch {
		case renderErr != nil:
			errs[i] = fmt.Errorf("render %s: %w", outs[i].rel, renderErr)
		case err != nil:
			errs[i] = fmt.Errorf("write %s: %w", path, err)
		}
	})
	var written []string
	var first error
	for i, o := range outs {
		if errs[i] != nil {
			first = cmp.Or(first, errs[i])
			continue
		}
		written = append(written, filepath.Join(dir, o.rel))
	}
	return written, first
}

// pmHours is pm for a time in hours, with three decimals under an hour
// (a 36-second run is 0.010 h, not 0.0).
func pmHours(v float64, std *float64) string {
	if v >= 1 {
		return pm(v, std)
	}
	s := strconv.FormatFloat(v, 'f', 3, 64)
	if std != nil {
		s += " ± " + strconv.FormatFloat(*std, 'f', 3, 64)
	}
	return s
}

func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

func pm(v float64, std *float64) string {
	if std == nil {
		return f1(v)
	}
	return f1(v) + " ± " + f1(*std)
}

// mdEscape escapes a table cell's pipes and newlines. Most cells have
// neither, and a Replacer costs a 6 KB table to build.
func mdEscape(s string) string {
	if !strings.ContainsAny(s, "|\n") {
		return s
	}
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// WriteMarkdown writes the leaderboard as the paper's Table 1 (rank, method,
// avg ± std over seeds, one column per benchmark; baseline rows unranked),
// followed by seeds and intervals, time, usage, flags, per-base-model scores
// and comparisons.
func WriteMarkdown(w io.Writer, rep *Report) error {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("# PostTrainBench leaderboard\n\n")
	p("| Rank | Method | Avg |")
	for _, b := range rep.Benchmarks {
		p(" %s |", BenchmarkName(b))
	}
	p("\n|---:|---|---:|%s\n", strings.Repeat("---:|", len(rep.Benchmarks)))
	baselineRow := func(r BaselineRow) {
		p("| - | %s | %s |", mdEscape(r.Name), f1(r.Avg))
		for _, b := range rep.Benchmarks {
			p(" %s |", f1(r.Benchmarks[b]))
		}
		p("\n")
	}
	for _, r := range rep.Baselines {
		if r.Name == "Official Instruct Models" {
			baselineRow(r)
		}
	}
	for _, m := range rep.Methods {
		p("| %d | %s | %s |", m.Rank, mdEscape(m.Method), pm(m.Avg, m.Std))
		for _, b := range rep.Benchmarks {
			st := m.Benchmarks[b]
			p(" %s |", pm(st.Mean, st.Std))
		}
		p("\n")
	}
	for _, r := range rep.Baselines {
		if r.Name != "Official Instruct Models" {
			baselineRow(r)
		}
	}
	p("\nScores in percent; avg ± sample std over seeds. Weights (%s):", rep.WeightsSource)
	for _, b := range rep.Benchmarks {
		p(" %s %.5f", b, rep.Weights[b])
	}
	p(".\n")
	p("\nFallback policy: %s (%s). Unverified runs: %s.\n", rep.Policy, PolicyText(rep.Policy), rep.Counting)

	if len(rep.Methods) > 0 {
		p("\n## Seeds, time, usage and fallbacks\n\n")
		p("| Method | Seeds | Avg 95%% CI | Time (h) | Tokens in/out per run | Cost per run | Flagged runs | Fallback cells (missing/failed/no metrics/flagged/unverified) |\n")
		p("|---|---:|---|---:|---:|---:|---:|---|\n")
		for _, m := range rep.Methods {
			ci := "-"
			if m.CI95 != nil {
				ci = "[" + f1(m.CI95.Lo) + ", " + f1(m.CI95.Hi) + "]"
			}
			tm := "-"
			if m.TimeHours != nil {
				tm = pmHours(m.TimeHours.Mean, m.TimeHours.Std)
			}
			tok := "-"
			if m.Usage.Runs > 0 {
				tok = fmt.Sprintf("%.0f / %.0f", m.Usage.InputTokensPerRun, m.Usage.OutputTokensPerRun)
			}
			cost := "-"
			if m.Usage.CostUSDPerRun != nil {
				cost = fmt.Sprintf("$%.2f", *m.Usage.CostUSDPerRun)
			}
			flags := strconv.Itoa(m.Flags.Runs)
			if len(m.Flags.ByLetter) > 0 {
				var parts []string
				for _, l := range slices.Sorted(maps.Keys(m.Flags.ByLetter)) {
					parts = append(parts, fmt.Sprintf("%s:%d", l, m.Flags.ByLetter[l]))
				}
				flags += " (" + strings.Join(parts, " ") + ")"
			}
			p("| %s | %d | %s | %s | %s | %s | %s | %d/%d/%d/%d/%d |\n", mdEscape(m.Method), m.NSeeds, ci, tm, tok, cost, flags,
				m.Fallbacks[ReasonMissing], m.Fallbacks[ReasonFailed], m.Fallbacks[ReasonNoMetrics], m.Fallbacks[ReasonFlagged], m.Fallbacks[ReasonUnverified])
		}

		p("\n## Per base model (weighted average over benchmarks)\n\n| Method |")
		for _, bm := range rep.BaseModels {
			p(" %s |", shortModel(bm))
		}
		p("\n|---|%s\n", strings.Repeat("---:|", len(rep.BaseModels)))
		for _, m := range rep.Methods {
			p("| %s |", mdEscape(m.Method))
			for _, bm := range rep.BaseModels {
				v := m.BaseModels[bm]
				p(" %s |", pm(v.Avg, v.Std))
			}
			p("\n")
		}
	}

	for _, c := range rep.Comparisons {
		p("\n## %s vs %s\n\n", mdEscape(c.A), mdEscape(c.B))
		p("Difference in avg: %s", signed(c.Diff))
		if c.CI95 != nil {
			p(" (95%% CI [%s, %s]; A better in %.1f%% of bootstrap replicates)", signed(c.CI95.Lo), signed(c.CI95.Hi), 100**c.PABetter)
		}
		p(". Cells (benchmark x base model, mean over seeds): A higher in %d, B higher in %d, tied in %d.\n\n", c.CellsAWins, c.CellsBWins, c.CellsTied)
		p("| Benchmark | Difference | 95%% CI |\n|---|---:|---|\n")
		for _, b := range rep.Benchmarks {
			st := c.Benchmarks[b]
			ci := "-"
			if st.CI95 != nil {
				ci = "[" + signed(st.CI95.Lo) + ", " + signed(st.CI95.Hi) + "]"
			}
			p("| %s | %s | %s |\n", BenchmarkName(b), signed(st.Mean), ci)
		}
	}
	if len(rep.Warnings) > 0 {
		p("\n## Warnings\n\n")
		for _, s := range rep.Warnings {
			p("- %s\n", mdEscape(s))
		}
	}
	return nil
}

func signed(v float64) string {
	if v >= 0 {
		return "+" + f1(v)
	}
	return f1(v)
}

// WriteCSV writes one row per method and baseline row: rank (empty for
// baselines), method, avg, std, interval, seeds, each benchmark's mean and
// std, time, flagged runs and fallback counts. Numbers in percent, 4 decimals.
func WriteCSV(w io.Writer, rep *Report) error {
	cw := csv.NewWriter(w)
	num := func(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) }
	opt := func(v *float64) string {
		if v == nil {
			return ""
		}
		return num(*v)
	}
	head := []string{"rank", "method", "avg", "std", "ci95_lo", "ci95_hi", "n_seeds"}
	head = append(head, rep.Benchmarks...)
	for _, b := range rep.Benchmarks {
		head = append(head, b+"_std")
	}
	head = append(head, "time_hours", "time_hours_std", "flagged_runs")
	for _, r := range Reasons()[1:] {
		head = append(head, "fallback_"+r)
	}
	head = append(head, "policy", "count_unverified")
	if err := cw.Write(head); err != nil {
		return err
	}
	blank := len(rep.Benchmarks) + 3 + len(Reasons()) - 1
	policy := []string{rep.Policy, strconv.FormatBool(rep.CountUnverified)}
	for _, r := range rep.Baselines {
		row := []string{"", r.Name, num(r.Avg), "", "", "", ""}
		for _, b := range rep.Benchmarks {
			row = append(row, num(r.Benchmarks[b]))
		}
		row = append(row, make([]string, blank)...)
		row = append(row, policy...)
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	for _, m := range rep.Methods {
		row := []string{strconv.Itoa(m.Rank), m.Method, num(m.Avg), opt(m.Std), "", "", strconv.Itoa(m.NSeeds)}
		if m.CI95 != nil {
			row[4], row[5] = num(m.CI95.Lo), num(m.CI95.Hi)
		}
		for _, b := range rep.Benchmarks {
			row = append(row, num(m.Benchmarks[b].Mean))
		}
		for _, b := range rep.Benchmarks {
			row = append(row, opt(m.Benchmarks[b].Std))
		}
		if m.TimeHours != nil {
			row = append(row, num(m.TimeHours.Mean), opt(m.TimeHours.Std))
		} else {
			row = append(row, "", "")
		}
		row = append(row, strconv.Itoa(m.Flags.Runs))
		for _, r := range Reasons()[1:] {
			row = append(row, strconv.Itoa(m.Fallbacks[r]))
		}
		row = append(row, policy...)
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteJSON writes the whole report as indented JSON, with a final newline
// (the bytes of a json.Encoder with SetIndent("", "  ")). The methods, most
// of the document, are encoded one at a time straight into the indenter
// (json.Encoder reuses its buffer), and the rest of the report around them
// with json.Marshal: the 6 MB document of 10,000 runs is never held whole
// (it was grown by doubling, then copied). TestWriteJSONIsMarshalIndent.
func WriteJSON(w io.Writer, rep *Report) error {
	shell := *rep
	shell.Methods = nil
	doc, err := json.Marshal(&shell)
	if err != nil {
		return err
	}
	ind := newIndenter(w)
	before, after, ok := splitNullMember(doc, "methods")
	if !ok || rep.Methods == nil {
		// Not met: json.Marshal writes every member of Report.
		if rep.Methods != nil {
			if doc, err = json.Marshal(rep); err != nil {
				return err
			}
		}
		ind.Write(doc)
		return ind.finish()
	}
	ind.Write(before)
	ind.Write([]byte{'['})
	enc := json.NewEncoder(dropNewlines{ind})
	for i, m := range rep.Methods {
		if i > 0 {
			ind.Write([]byte{','})
		}
		if err := enc.Encode(m); err != nil {
			return err
		}
	}
	ind.Write([]byte{']'})
	ind.Write(after)
	return ind.finish()
}

// splitNullMember finds the member "key":null of the top-level object doc
// (compact JSON) and returns doc before and after its null.
func splitNullMember(doc []byte, key string) (before, after []byte, ok bool) {
	depth := 0
	for i := 0; i < len(doc); i++ {
		switch doc[i] {
		case '"':
			j := endOfString(doc, i)
			if j < 0 {
				return nil, nil, false
			}
			if depth == 1 && (doc[i-1] == '{' || doc[i-1] == ',') && string(doc[i+1:j]) == key && bytes.HasPrefix(doc[j+1:], []byte(":null")) {
				return doc[:j+2], doc[j+6:], true
			}
			i = j
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		}
	}
	return nil, nil, false
}

// endOfString returns the index of the quote closing the string that
// opens at src[i], or -1.
func endOfString(src []byte, i int) int {
	j := i + 1
	for {
		k := bytes.IndexByte(src[j:], '"')
		if k < 0 {
			return -1
		}
		j += k
		bs := 0
		for bs < j-i-1 && src[j-1-bs] == '\\' {
			bs++
		}
		if bs%2 == 0 {
			return j
		}
		j++
	}
}

// dropNewlines passes compact JSON on to an indenter without the newline
// json.Encoder ends each value with (compact JSON has no other).
type dropNewlines struct{ ind *indenter }

func (d dropNewlines) Write(p []byte) (int, error) {
	if err := d.ind.Write(bytes.TrimRight(p, "\n")); err != nil {
		return 0, err
	}
	return len(p), nil
}

// writeIndented writes src, compact JSON as json.Marshal writes it (no
// white space outside strings), indented as json.Indent(dst, src, "", "  ")
// would, with a final newline.
func writeIndented(w io.Writer, src []byte) error {
	ind := newIndenter(w)
	ind.Write(src)
	return ind.finish()
}

// indenter indents compact JSON written to it in pieces, cut anywhere, as
// json.Indent(dst, src, "", "  ") indents the whole. It passes strings
// through with a search for their closing quote instead of json.Indent's
// byte-at-a-time scanner (a tenth of the time on the 10,000-run report,
// TestWriteIndentedIsIndent), and writes through a 64 KiB buffer.
type indenter struct {
	w     io.Writer
	buf   []byte
	depth int
	open  bool // a { or [ was just written
	inStr bool // within a string
	esc   bool // within a string, after a backslash
	err   error
}

func newIndenter(w io.Writer) *indenter {
	return &indenter{w: w, buf: make([]byte, 0, 64<<10)}
}

func (ind *indenter) newline() {
	const spaces = "                                                                "
	ind.buf = append(ind.buf, '\n')
	for n := 2 * ind.depth; n > 0; n -= min(n, len(spaces)) {
		ind.buf = append(ind.buf, spaces[:min(n, len(spaces))]...)
	}
}

// Write indents src; the first error writing to w sticks.
func (ind *indenter) Write(src []byte) error {
	for i := 0; i < len(src) && ind.err == nil; i++ {
		if len(ind.buf) > cap(ind.buf)-1024 {
			_, ind.err = ind.w.Write(ind.buf)
			ind.buf = ind.buf[:0]
		}
		if ind.inStr {
			// Up to the first quote not escaped, or the end of src.
			start := i
			if ind.esc {
				ind.esc = false
				i++
			}
			from := i
			for {
				k := bytes.IndexByte(src[i:], '"')
				if k < 0 {
					// The string goes on in the next piece: is its
					// last byte here an escaping backslash?
					bs := 0
					for bs < len(src)-from && src[len(src)-1-bs] == '\\' {
						bs++
					}
					ind.esc = bs%2 == 1
					ind.buf = append(ind.buf, src[start:]...)
					return ind.err
				}
				i += k
				bs := 0
				for bs < i-from && src[i-1-bs] == '\\' {
					bs++
				}
				if bs%2 == 0 {
					break
				}
				i++
			}
			ind.buf = append(ind.buf, src[start:i+1]...)
			ind.inStr = false
			continue
		}
		c := src[i]
		if ind.open && c != '}' && c != ']' {
			ind.open = false
			ind.depth++
			ind.newline()
		}
		switch c {
		case '"':
			ind.buf = append(ind.buf, c)
			ind.inStr = true
		case '{', '[':
			ind.open = true
			ind.buf = append(ind.buf, c)
		case ',':
			ind.buf = append(ind.buf, c)
			ind.newline()
		case ':':
			ind.buf = append(ind.buf, ':', ' ')
		case '}', ']':
			if ind.open {
				ind.open = false
			} else {
				ind.depth--
				ind.newline()
			}
			ind.buf = append(ind.buf, c)
		default:
			ind.buf = append(ind.buf, c)
		}
	}
	return ind.err
}

// finish ends the document with a newline and writes what is buffered.
func (ind *indenter) finish() error {
	if ind.err != nil {
		return ind.err
	}
	if ind.inStr {
		return fmt.Errorf("indent json: unterminated string")
	}
	ind.buf = append(ind.buf, '\n')
	_, ind.err = ind.w.Write(ind.buf)
	ind.buf = ind.buf[:0]
	return ind.err
}

// linkTo returns the path of target relative to base, with forward slashes,
// for links in the HTML report; base "" means the current directory.
func linkTo(base, target string) string { return newLinker(base).to(target) }

// linker is linkTo for many targets: filepath.Abs of the base and the
// working directory are looked up once (Abs of a relative path asks the
// system for the working directory on every call).
type linker struct {
	base    string // absolute, cleaned; "" when it could not be made so
	wd      string
	wdErr   error
	wdKnown bool
}

func newLinker(base string) *linker {
	ln := &linker{}
	if base == "" {
		base = "."
	}
	if ab, err := ln.abs(base); err == nil {
		ln.base = ab
	}
	return ln
}

// abs is filepath.Abs with the working directory remembered.
func (ln *linker) abs(p string) (string, error) {
	if filepath.IsAbs(p) {
		return filepath.Clean(p), nil
	}
	if !ln.wdKnown {
		ln.wd, ln.wdErr = os.Getwd()
		ln.wdKnown = true
	}
	if ln.wdErr != nil {
		return "", ln.wdErr
	}
	return filepath.Join(ln.wd, p), nil
}

// under is to(filepath.Join(target, sub)) given link, to(target), for a
// clean relative sub without "..": the relative path of a path below target
// is the relative path of target with sub joined on (or target and sub
// joined, when the base could not be resolved).
func (ln *linker) under(link, sub string) string {
	if sub == "" {
		return link
	}
	return path.Join(link, filepath.ToSlash(sub))
}

func (ln *linker) to(target string) string {
	at, err := ln.abs(target)
	if ln.base != "" && err == nil {
		if rel, err := filepath.Rel(ln.base, at); err == nil {
			return filepath.ToSlash(rel)
		}
	}
	return filepath.ToSlash(target)
}
