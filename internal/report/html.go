package report

import (
	"fmt"
	"html"
	"html/template"
	"io"
	"net/url"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ptb-dev/ptb/internal/rundir"
)

// htmlPage is what the HTML template sees.
type htmlPage struct {
	Rep         *Report
	Instruct    []BaselineRow
	Bottom      []BaselineRow
	Figures     []htmlFigure
	BenchFigs   map[string]template.HTML
	Runs        []htmlMethodRuns
	TotalRuns   int
	WeightsText string
}

type htmlFigure struct {
	Name  string
	Title string
	SVG   template.HTML
}

type htmlMethodRuns struct {
	Method string
	Cells  int
	m      *Method
	ln     *linker
	buf    *[]byte   // shared by the methods, which the template renders one by one
	w      io.Writer // the template's writer
}

// Rows writes the method's cells as table rows to the page when the
// template comes to them, and gives the template nothing more to write:
// the template writes straight to w as it goes, so the rows land in their
// place. One method's rows at a time are in memory, in one buffer, not the
// 7 MB of all 10,000 runs' as strings before the page is written.
func (r htmlMethodRuns) Rows() (template.HTML, error) {
	*r.buf = appendRunRows((*r.buf)[:0], r.m, r.ln)
	_, err := r.w.Write(*r.buf)
	return "", err
}

// appendRunRows renders a method's cells as table rows by hand: with
// thousands of runs this is the bulk of the page, and html/template is slow
// at it. The four links of a run share their escaped directory
// (runLinks).
func appendRunRows(b []byte, m *Method, ln *linker) []byte {
	esc := html.EscapeString
	td := func(class, text string) {
		if class != "" {
			b = append(b, `<td class="`...)
			b = append(b, class...)
			b = append(b, `">`...)
		} else {
			b = append(b, "<td>"...)
		}
		b = append(b, text...)
		b = append(b, "</td>"...)
	}
	for _, c := range m.Cells {
		if c.Reason == ReasonOK {
			b = append(b, "<tr>"...)
		} else {
			b = append(b, `<tr class="fallback">`...)
		}
		b = append(b, `<td class="l">`...)
		b = strconv.AppendInt(b, int64(c.Seed), 10)
		b = append(b, "</td>"...)
		td("l", esc(c.Benchmark))
		td("l", esc(shortModel(c.BaseModel)))
		b = append(b, "<td>"...)
		b = strconv.AppendFloat(b, c.Score, 'f', 1, 64)
		b = append(b, "</td>"...)
		td("l", esc(c.Source))
		td("l", esc(c.Reason))
		if c.Run == nil {
			b = append(b, `<td class="l"></td><td class="l"></td></tr>`+"\n"...)
			continue
		}
		td("l", esc(c.Run.ID))
		b = append(b, `<td class="l">`...)
		b = appendRunLinks(b, ln, ln.to(c.Run.Dir))
		b = append(b, "</td></tr>\n"...)
	}
	return b
}

// runLinks are the links of a run's row: its directory, trace, audit and
// metrics.
var runLinks = [...]struct{ sub, slash, text string }{
	{"", "/", "dir"},
	{rundir.TraceDir, "/", "trace"},
	{rundir.AuditDir, "/", "audit"},
	{rundir.MetricsFile, "", "metrics"},
}

// appendRunLinks appends the links into the run directory at dir (its
// link from the page). Escaping works byte by byte, so when joining is
// plain concatenation (dir clean, not "", ".", "/" or "*", which
// EscapedPath leaves alone) the escaped link of dir/sub is the escaped dir
// with "/sub" after it (sub needs no escaping: TestRunLinksNeedNoEscaping).
func appendRunLinks(b []byte, ln *linker, dir string) []byte {
	esc := html.EscapeString
	plain := dir != "" && dir != "." && dir != "/" && dir != "*" && path.Clean(dir) == dir
	var escDir string
	if plain {
		escDir = esc(escapePath(dir))
	}
	for _, l := range runLinks {
		b = append(b, `<a href="`...)
		switch {
		case !plain:
			b = append(b, esc(escapePath(ln.under(dir, l.sub)))...)
		case l.sub == "":
			b = append(b, escDir...)
		default:
			b = append(b, escDir...)
			b = append(b, '/')
			b = append(b, filepath.ToSlash(l.sub)...)
		}
		b = append(b, l.slash...)
		b = append(b, `">`...)
		b = append(b, l.text...)
		b = append(b, "</a> "...)
	}
	return b
}

// WriteHTML writes one self-contained HTML file: the leaderboard (one row
// per method, baseline rows unranked), the figures inline as SVG, the
// per-benchmark and per-base-model views, comparisons, and every cell with
// links, relative to linkBase, into its run's trace, audit and metrics.
func WriteHTML(w io.Writer, rep *Report, linkBase string) error {
	return writeHTML(w, rep, linkBase, Figures(rep))
}

// writeHTML is WriteHTML with rep's figures drawn.
func writeHTML(w io.Writer, rep *Report, linkBase string, figs []Figure) error {
	page := htmlPage{Rep: rep, BenchFigs: map[string]template.HTML{}}
	for _, r := range rep.Baselines {
		if r.Name == "Official Instruct Models" {
			page.Instruct = append(page.Instruct, r)
		} else {
			page.Bottom = append(page.Bottom, r)
		}
	}
	for _, f := range figs {
		// The SVG is built by this package with every text escaped.
		svg := template.HTML(f.SVG)
		if strings.HasPrefix(f.Name, "bench_") {
			page.BenchFigs[strings.TrimPrefix(f.Name, "bench_")] = svg
			continue
		}
		page.Figures = append(page.Figures, htmlFigure{Name: f.Name, Title: f.Title, SVG: svg})
	}
	var parts []string
	for _, b := range rep.Benchmarks {
		parts = append(parts, fmt.Sprintf("%s %.5f", b, rep.Weights[b]))
	}
	page.WeightsText = strings.Join(parts, ", ")
	ln := newLinker(linkBase)
	rows := new([]byte)
	for _, m := range rep.Methods {
		page.Runs = append(page.Runs, htmlMethodRuns{Method: m.Method, Cells: len(m.Cells), m: m, ln: ln, buf: rows, w: w})
		for _, c := range m.Cells {
			if c.Run != nil {
				page.TotalRuns++
			}
		}
	}
	t, err := template.New("report").Funcs(template.FuncMap{
		"f1":      f1,
		"pm":      pm,
		"pmHours": pmHours,
		"short":   shortModel,
		"bench":   BenchmarkName,
		"signed":  signed,
		"tok": func(v float64) string {
			switch {
			case v >= 1e6:
				return fmt.Sprintf("%.1fM", v/1e6)
			case v >= 1e3:
				return fmt.Sprintf("%.1fk", v/1e3)
			}
			return fmt.Sprintf("%.0f", v)
		},
		"usd": func(p *float64) string {
			if p == nil {
				return "-"
			}
			return fmt.Sprintf("$%.2f", *p)
		},
		"pct": func(p *float64) string {
			if p == nil {
				return "-"
			}
			return fmt.Sprintf("%.1f%%", 100**p)
		},
		"ci": func(iv *Interval) string {
			if iv == nil {
				return "-"
			}
			return "[" + f1(iv.Lo) + ", " + f1(iv.Hi) + "]"
		},
	}).Parse(htmlTemplate)
	if err != nil {
		return fmt.Errorf("parse html template: %w", err)
	}
	return t.Execute(w, page)
}

// escapePath percent-escapes a relative slash path for an href.
func escapePath(p string) string { return (&url.URL{Path: p}).EscapedPath() }

const htmlTemplate = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>PostTrainBench report</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
.scroll{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;margin:12px 0;font-size:14px}
th,td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:right;white-space:nowrap}
th{white-space:normal;vertical-align:bottom}
#details td:nth-child(2),#leaderboard td:nth-child(2),#per-base-model td:nth-child(2),table.bench td:nth-child(2){white-space:normal;min-width:10em;max-width:18em}
th:nth-child(2),td:nth-child(2),td.l,th.l{text-align:left}
tr.baseline td{color:#555;font-style:italic}
tr.fallback td{color:#a33}
caption{text-align:left;font-weight:bold;padding:4px 0}
figure{margin:16px 0}
details{margin:6px 0}
.note{color:#555;font-size:13px}
</style></head>
<body>
<h1>PostTrainBench leaderboard</h1>
<p class="note">Scores in percent; avg ± sample std over seeds; each cell falls back to the base model's zero-shot score when its run is missing, failed, has no metrics or was flagged under the policy. Weights ({{.Rep.WeightsSource}}): {{.WeightsText}}. Baselines: {{.Rep.BaselinesSource}}. {{len .Rep.Methods}} methods, {{.TotalRuns}} runs. Fallback policy: {{.Rep.Policy}}. Unverified runs: {{.Rep.Counting}}.</p>
<div class="scroll"><table id="leaderboard">
<thead><tr><th>Rank</th><th>Method</th><th>Avg</th>{{range .Rep.Benchmarks}}<th>{{bench .}}</th>{{end}}</tr></thead>
<tbody>
{{- range .Instruct}}
<tr class="baseline"><td>-</td><td>{{.Name}}</td><td>{{f1 .Avg}}</td>{{$r := .}}{{range $.Rep.Benchmarks}}<td>{{f1 (index $r.Benchmarks .)}}</td>{{end}}</tr>
{{- end}}
{{- range .Rep.Methods}}
<tr class="method"><td>{{.Rank}}</td><td>{{.Method}}</td><td>{{pm .Avg .Std}}</td>{{$m := .}}{{range $.Rep.Benchmarks}}{{$s := index $m.Benchmarks .}}<td>{{pm $s.Mean $s.Std}}</td>{{end}}</tr>
{{- end}}
{{- range .Bottom}}
<tr class="baseline"><td>-</td><td>{{.Name}}</td><td>{{f1 .Avg}}</td>{{$r := .}}{{range $.Rep.Benchmarks}}<td>{{f1 (index $r.Benchmarks .)}}</td>{{end}}</tr>
{{- end}}
</tbody></table></div>

<h2>Seeds, intervals, time, usage and flags</h2>
<div class="scroll"><table id="details">
<thead><tr><th>Rank</th><th>Method</th><th>Seeds</th><th>Avg 95% CI</th><th>Time (h)</th><th>Tokens in / out per run</th><th>Cost per run</th><th>Flagged runs</th><th>Missing</th><th>Failed</th><th>No metrics</th><th>Flagged</th><th>Unverified</th></tr></thead>
<tbody>
{{- range .Rep.Methods}}
<tr><td>{{.Rank}}</td><td>{{.Method}}</td><td>{{.NSeeds}}</td><td>{{ci .CI95}}</td><td>{{with .TimeHours}}{{pmHours .Mean .Std}}{{else}}-{{end}}</td><td>{{if .Usage.Runs}}{{tok .Usage.InputTokensPerRun}} / {{tok .Usage.OutputTokensPerRun}}{{else}}-{{end}}</td><td>{{usd .Usage.CostUSDPerRun}}</td><td>{{.Flags.Runs}}{{range $l, $n := .Flags.ByLetter}} {{$l}}:{{$n}}{{end}}</td><td>{{index .Fallbacks "missing"}}</td><td>{{index .Fallbacks "failed"}}</td><td>{{index .Fallbacks "no_metrics"}}</td><td>{{index .Fallbacks "flagged"}}</td><td>{{index .Fallbacks "unverified"}}</td></tr>
{{- end}}
</tbody></table></div>

<h2>Figures</h2>
{{range .Figures}}<figure id="fig-{{.Name}}">{{.SVG}}<figcaption class="note">{{.Title}}</figcaption></figure>
{{end}}
<h2>Per base model</h2>
<table id="per-base-model">
<thead><tr><th>Rank</th><th>Method</th>{{range .Rep.BaseModels}}<th>{{short .}}</th>{{end}}</tr></thead>
<tbody>
{{- range .Rep.Methods}}{{$m := .}}
<tr><td>{{.Rank}}</td><td>{{.Method}}</td>{{range $.Rep.BaseModels}}{{$v := index $m.BaseModels .}}<td>{{pm $v.Avg $v.Std}}</td>{{end}}</tr>
{{- end}}
</tbody></table>

<h2>Per benchmark</h2>
{{range $b := .Rep.Benchmarks}}
<section id="bench-{{$b}}"><h3>{{bench $b}}</h3>
<figure>{{index $.BenchFigs $b}}</figure>
<table class="bench">
<thead><tr><th>Rank</th><th>Method</th><th>Mean</th><th>95% CI</th>{{range $.Rep.BaseModels}}<th>{{short .}}</th>{{end}}</tr></thead>
<tbody>
{{- range $.Rep.Methods}}{{$m := .}}{{$s := index $m.Benchmarks $b}}
<tr><td>{{.Rank}}</td><td>{{.Method}}</td><td>{{pm $s.Mean $s.Std}}</td><td>{{ci $s.CI95}}</td>{{range $.Rep.BaseModels}}{{$v := index (index $m.BaseModels .).Benchmarks $b}}<td>{{pm $v.Mean $v.Std}}</td>{{end}}</tr>
{{- end}}
</tbody></table></section>
{{end}}
{{if .Rep.Comparisons}}<h2>Comparisons</h2>{{end}}
{{range .Rep.Comparisons}}{{$c := .}}
<section class="comparison"><h3>{{.A}} vs {{.B}}</h3>
<p>Difference in avg: <b>{{signed .Diff}}</b>, 95% CI {{ci .CI95}}; A better in {{pct .PABetter}} of bootstrap replicates. Cells where A is higher: {{.CellsAWins}}, B higher: {{.CellsBWins}}, tied: {{.CellsTied}}.</p>
<table><thead><tr><th class="l">Benchmark</th><th>Difference</th><th>95% CI</th></tr></thead><tbody>
{{- range $.Rep.Benchmarks}}{{$s := index $c.Benchmarks .}}
<tr><td class="l">{{bench .}}</td><td>{{signed $s.Mean}}</td><td>{{ci $s.CI95}}</td></tr>
{{- end}}
</tbody></table></section>
{{end}}
<h2>Runs</h2>
<p class="note">Every cell of every method: the score it counts (percent), and where it came from. Red rows fell back to the base model's zero-shot score.</p>
{{range .Runs}}
<details><summary>{{.Method}} ({{.Cells}} cells)</summary>
<table class="runs"><thead><tr><th class="l">Seed</th><th class="l">Benchmark</th><th class="l">Base model</th><th>Score</th><th class="l">Source</th><th class="l">Reason</th><th class="l">Run</th><th class="l">Links</th></tr></thead><tbody>
{{.Rows}}</tbody></table></details>
{{end}}
{{if .Rep.Warnings}}<h2>Warnings</h2><ul>{{range .Rep.Warnings}}<li>{{.}}</li>{{end}}</ul>{{end}}
</body></html>
`
