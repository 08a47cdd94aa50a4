package report

import (
	"bytes"
	"context"
	"html/template"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

// htmlTablesReference is the template text htmlTables replaced: each pair
// is the call in htmlTemplate and the template it stands for.
var htmlTablesReference = [][2]string{
	{`{{- methodRows}}`, `{{- range .Rep.Methods}}
<tr class="method"><td>{{.Rank}}</td><td>{{.Method}}</td><td>{{pm .Avg .Std}}</td>{{$m := .}}{{range $.Rep.Benchmarks}}{{$s := index $m.Benchmarks .}}<td>{{pm $s.Mean $s.Std}}</td>{{end}}</tr>
{{- end}}`},
	{`<tbody>{{baseModelRows}}
</tbody></table>`, `<tbody>
{{- range .Rep.Methods}}{{$m := .}}
<tr><td>{{.Rank}}</td><td>{{.Method}}</td>{{range $.Rep.BaseModels}}{{$v := index $m.BaseModels .}}<td>{{pm $v.Avg $v.Std}}</td>{{end}}</tr>
{{- end}}
</tbody></table>`},
	{`<tbody>{{benchRows $b}}
</tbody></table></section>`, `<tbody>
{{- range $.Rep.Methods}}{{$m := .}}{{$s := index $m.Benchmarks $b}}
<tr><td>{{.Rank}}</td><td>{{.Method}}</td><td>{{pm $s.Mean $s.Std}}</td><td>{{ci $s.CI95}}</td>{{range $.Rep.BaseModels}}{{$v := index (index $m.BaseModels .).Benchmarks $b}}<td>{{pm $v.Mean $v.Std}}</td>{{end}}</tr>
{{- end}}
</tbody></table></section>`},
}

// referenceHTMLTemplate is htmlTemplate with the tables as html/template
// rendered them before htmlTables.
func referenceHTMLTemplate(t testing.TB) string {
	text := htmlTemplate
	for _, p := range htmlTablesReference {
		if n := strings.Count(text, p[0]); n != 1 {
			t.Fatalf("htmlTemplate holds %q %d times, want once", p[0], n)
		}
		text = strings.Replace(text, p[0], p[1], 1)
	}
	return text
}

// assertHTMLIsTemplate renders rep's page with htmlTables and with the
// reference template and requires the same bytes.
func assertHTMLIsTemplate(t testing.TB, rep *Report, linkBase string) {
	t.Helper()
	figs := Figures(rep)
	var got, want bytes.Buffer
	if err := writeHTML(&got, rep, linkBase, figs); err != nil {
		t.Fatal(err)
	}
	if err := writeHTMLTemplate(&want, rep, linkBase, figs, referenceHTMLTemplate(t)); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		g, w := strings.Split(got.String(), "\n"), strings.Split(want.String(), "\n")
		for i := range min(len(g), len(w)) {
			if g[i] != w[i] {
				t.Fatalf("line %d:\ngot  %s\nwant %s", i+1, g[i], w[i])
			}
		}
		t.Fatalf("%d lines, want %d", len(g), len(w))
	}
}

// TestHTMLTablesIsTemplate: the page with its per-method tables written by
// hand (htmlTables) is, byte for byte, the page html/template rendered
// from the template they replaced: on a built report, on a report of the
// runs under PTB_REPORT_BENCH_RUNS when set (the 10,000 imported runs of
// scripts/bench/report.sh), and on random reports whose names hold every
// character html/template escapes, invalid UTF-8, and values that are
// missing, nil, NaN or infinite.
func TestHTMLTablesIsTemplate(t *testing.T) {
	assertHTMLIsTemplate(t, sampleReport(t), "out")
	if root := os.Getenv("PTB_REPORT_BENCH_RUNS"); root != "" {
		runs, _, err := LoadRuns(context.Background(), []string{root})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Build(runs, Options{Bootstrap: 200, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		assertHTMLIsTemplate(t, rep, root)
	}
	rng := rand.New(rand.NewPCG(15, 6))
	pieces := []string{"a", "<", ">", "&", "'", "\"", "+", "\x00", "é", "\xff", "\xe2\x82", " ", "&amp;", "|", "\n", "日本", "\ufffd", "-"}
	str := func() string {
		var sb strings.Builder
		for range rng.IntN(6) {
			sb.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return sb.String()
	}
	floats := []float64{0, -0.04, 1.25, 99.95, math.NaN(), math.Inf(1), math.Inf(-1), 1e300, -1e-300}
	num := func() float64 {
		if rng.IntN(3) == 0 {
			return floats[rng.IntN(len(floats))]
		}
		return 200*rng.Float64() - 100
	}
	ptr := func() *float64 {
		if rng.IntN(3) == 0 {
			return nil
		}
		v := num()
		return &v
	}
	iv := func() *Interval {
		if rng.IntN(3) == 0 {
			return nil
		}
		return &Interval{Lo: num(), Hi: num()}
	}
	stat := func() Stat { return Stat{Mean: num(), Std: ptr(), CI95: iv()} }
	for range 200 {
		rep := &Report{Policy: str(), Counting: str(), WeightsSource: str(), BaselinesSource: str(), Weights: map[string]float64{}}
		for range rng.IntN(4) {
			rep.Benchmarks = append(rep.Benchmarks, str())
		}
		for range rng.IntN(4) {
			rep.BaseModels = append(rep.BaseModels, str()+"/"+str())
		}
		for i := range rng.IntN(6) {
			m := &Method{Rank: i + 1 - rng.IntN(3), Method: str(), Avg: num(), Std: ptr(),
				Benchmarks: map[string]Stat{}, BaseModels: map[string]ModelView{}, Fallbacks: map[string]int{}}
			for _, b := range rep.Benchmarks {
				if rng.IntN(4) > 0 {
					m.Benchmarks[b] = stat()
				}
			}
			for _, bm := range rep.BaseModels {
				if rng.IntN(4) == 0 {
					continue
				}
				v := ModelView{Avg: num(), Std: ptr(), Benchmarks: map[string]Stat{}}
				for _, b := range rep.Benchmarks {
					if rng.IntN(4) > 0 {
						v.Benchmarks[b] = stat()
					}
				}
				m.BaseModels[bm] = v
			}
			rep.Methods = append(rep.Methods, m)
		}
		assertHTMLIsTemplate(t, rep, "out")
	}
}

// TestAppendHTMLTextIsTemplate: appendHTMLText escapes as html/template
// does in text, for every byte alone and random strings of the bytes it
// escapes, multi-byte and invalid UTF-8.
func TestAppendHTMLTextIsTemplate(t *testing.T) {
	tmpl := template.Must(template.New("t").Parse(`{{.}}`))
	ref := func(s string) string {
		var b strings.Builder
		if err := tmpl.Execute(&b, s); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	var inputs []string
	for c := range 256 {
		inputs = append(inputs, string([]byte{byte(c)}), "x"+string([]byte{byte(c)})+"y")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"a", "<", ">", "&", "'", "\"", "+", "\x00", "é", "\xff", "\xe2\x82", "日", "\ufffd", "\ufdd0", "\uffff", "&#34;"}
	for range 5000 {
		var sb strings.Builder
		for range rng.IntN(8) {
			sb.WriteString(pieces[rng.IntN(len(pieces))])
		}
		inputs = append(inputs, sb.String())
	}
	for _, s := range inputs {
		if got, want := string(appendHTMLText([]byte("p"), s)), "p"+ref(s); got != want {
			t.Fatalf("%q: got %q, want %q", s, got, want)
		}
	}
}
