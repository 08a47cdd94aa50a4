package report

import (
	"fmt"
	"html"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Figure is one SVG plot of a report.
type Figure struct {
	Name  string // file stem: avg, time_vs_score, bench_<benchmark>
	Title string
	SVG   string
}

// Figures draws the report's plots: the weighted averages with error bars
// (the paper's Figure 1), time used against score with the Pareto frontier
// (Figure 6), and one bar chart per benchmark.
func Figures(rep *Report) []Figure {
	figs := []Figure{{Name: "avg", Title: "Weighted average score (mean ± std over seeds)"}}
	figs[0].SVG = barChart(figs[0].Title, methodBars(rep, func(m *Method) (float64, *float64) { return m.Avg, m.Std }),
		refLines(rep, func(r BaselineRow) float64 { return r.Avg }))
	t := Figure{Name: "time_vs_score", Title: "Time used against weighted average score, with the Pareto frontier"}
	t.SVG = timeScatter(t.Title, rep)
	figs = append(figs, t)
	for _, b := range rep.Benchmarks {
		f := Figure{Name: "bench_" + b, Title: BenchmarkName(b) + " (mean over base models; mean ± std over seeds)"}
		f.SVG = barChart(f.Title, methodBars(rep, func(m *Method) (float64, *float64) {
			st := m.Benchmarks[b]
			return st.Mean, st.Std
		}), refLines(rep, func(r BaselineRow) float64 { return r.Benchmarks[b] }))
		figs = append(figs, f)
	}
	return figs
}

type bar struct {
	label string
	value float64
	err   *float64
}

type refLine struct {
	label string
	value float64
}

func methodBars(rep *Report, get func(*Method) (float64, *float64)) []bar {
	bars := make([]bar, 0, len(rep.Methods))
	for _, m := range rep.Methods {
		v, e := get(m)
		bars = append(bars, bar{label: m.Method, value: v, err: e})
	}
	return bars
}

func refLines(rep *Report, get func(BaselineRow) float64) []refLine {
	var refs []refLine
	for _, r := range rep.Baselines {
		refs = append(refs, refLine{label: r.Name, value: get(r)})
	}
	return refs
}

func palette(i int) string {
	p := []string{"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"}
	return p[i%len(p)]
}

func esc(s string) string { return html.EscapeString(s) }

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// niceMax returns a round axis end at or above v and a tick step, with at
// most six ticks.
func niceMax(v float64) (float64, float64) {
	if !(v > 0) || math.IsInf(v, 0) {
		return 10, 2
	}
	raw := v / 5
	exp := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * exp
	for _, m := range []float64{1, 2, 2.5, 5} {
		if m*exp >= raw {
			step = m * exp
			break
		}
	}
	return math.Ceil(v/step-1e-9) * step, step
}

func barChart(title string, bars []bar, refs []refLine) string {
	const (
		width = 860.0
		left  = 290.0
		right = 60.0
		top   = 72.0
		rowH  = 22.0
	)
	n := len(bars)
	plotH := math.Max(rowH*float64(n), rowH)
	height := top + plotH + 44
	maxV := 0.0
	for _, b := range bars {
		v := b.value
		if b.err != nil {
			v += *b.err
		}
		maxV = math.Max(maxV, v)
	}
	for _, r := range refs {
		maxV = math.Max(maxV, r.value)
	}
	end, step := niceMax(maxV)
	x := func(v float64) float64 { return left + (width-left-right)*math.Max(v, 0)/end }

	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`, width, height, width, height)
	fmt.Fprintf(&sb, `<title>%s</title><rect width="100%%" height="100%%" fill="#fff"/>`, esc(title))
	fmt.Fprintf(&sb, `<text x="%.0f" y="20" font-size="14" font-weight="bold">%s</text>`, left, esc(title))
	for v := 0.0; v <= end+1e-9; v += step {
		fmt.Fprintf(&sb, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`, x(v), top, x(v), top+plotH)
		fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#555">%s</text>`, x(v), top+plotH+16, tick(v, step))
	}
	fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#333">score (%%)</text>`, (left+width-right)/2, top+plotH+36)
	if n == 0 {
		fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f" fill="#888">no methods</text>`, left+8, top+15)
	}
	for i, b := range bars {
		y := top + rowH*float64(i)
		fmt.Fprintf(&sb, `<g class="bar"><title>%s: %s</title>`, esc(b.label), esc(pm(b.value, b.err)))
		fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`, left-8, y+rowH*0.68, esc(clip(b.label, 42)))
		fmt.Fprintf(&sb, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`, left, y+3, x(b.value)-left, rowH-6, palette(i))
		if b.err != nil {
			lo, hi, cy := x(b.value-*b.err), x(b.value+*b.err), y+rowH/2
			fmt.Fprintf(&sb, `<path d="M%.1f %.1fH%.1fM%.1f %.1fV%.1fM%.1f %.1fV%.1f" stroke="#222" fill="none"/>`, lo, cy, hi, lo, cy-5, cy+5, hi, cy-5, cy+5)
		}
		fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f" fill="#222" font-size="11">%s</text>`, x(b.value+deref(b.err))+5, y+rowH*0.68, f1(b.value))
		sb.WriteString(`</g>`)
	}
	for i, r := range refs {
		fmt.Fprintf(&sb, `<g class="ref"><line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#555" stroke-dasharray="5 4"/>`, x(r.value), top-18-11*float64(len(refs)-1-i), x(r.value), top+plotH)
		label := r.label + " " + f1(r.value)
		if x(r.value)+3+textWidth(label, 10) > width-4 {
			// It would run off the right edge ("... 51." clipped): end it
			// at the line instead.
			fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f" font-size="10" fill="#555" text-anchor="end">%s</text></g>`, x(r.value)-3, top-8-11*float64(len(refs)-1-i), esc(label))
			continue
		}
		fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f" font-size="10" fill="#555">%s</text></g>`, x(r.value)+3, top-8-11*float64(len(refs)-1-i), esc(label))
	}
	sb.WriteString(`</svg>`)
	return sb.String()
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

// tick renders an axis value with as many decimals as the step needs, so
// that the ticks of a sub-hour axis (step 0.002) are not all "0".
func tick(v, step float64) string {
	dec := 0
	for d := step; dec < 8 && math.Abs(d-math.Round(d)) > 1e-9*math.Max(1, math.Abs(d)); d *= 10 {
		dec++
	}
	s := strconv.FormatFloat(v, 'f', dec, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// textWidth estimates the width in pixels of s in a sans-serif font of
// size px (an average glyph is about 0.6 em; digits and capitals wider
// than i or l average out over a label).
func textWidth(s string, px float64) float64 {
	return 0.6 * px * float64(len([]rune(s)))
}

type point struct {
	label       string
	t, s        float64
	tErr, sErr  *float64
	frontier    bool
	colourIndex int
}

// paretoFrontier marks the points that no other point beats on both axes
// (less or equal time and higher score), and returns them by time.
func paretoFrontier(pts []point) []point {
	idx := make([]int, len(pts))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		pa, pb := pts[idx[a]], pts[idx[b]]
		if pa.t != pb.t {
			return pa.t < pb.t
		}
		return pa.s > pb.s
	})
	var front []point
	best := math.Inf(-1)
	for _, i := range idx {
		if pts[i].s > best {
			best = pts[i].s
			pts[i].frontier = true
			front = append(front, pts[i])
		}
	}
	return front
}

func timeScatter(title string, rep *Report) string {
	const (
		width  = 860.0
		height = 520.0
		left   = 64.0
		right  = 230.0
		top    = 48.0
		bottom = 56.0
	)
	var pts []point
	skipped := 0
	for i, m := range rep.Methods {
		if m.TimeHours == nil {
			skipped++
			continue
		}
		pts = append(pts, point{label: m.Method, t: m.TimeHours.Mean, s: m.Avg, tErr: m.TimeHours.Std, sErr: m.Std, colourIndex: i})
	}
	maxT, maxS := 0.0, 0.0
	for _, p := range pts {
		maxT = math.Max(maxT, p.t+deref(p.tErr))
		maxS = math.Max(maxS, p.s+deref(p.sErr))
	}
	// Runs shorter than an hour are drawn in minutes.
	unit, short := "hours", "h"
	if maxT > 0 && maxT < 1 {
		unit, short = "minutes", "min"
		maxT *= 60
		for i := range pts {
			pts[i].t *= 60
			if pts[i].tErr != nil {
				e := *pts[i].tErr * 60
				pts[i].tErr = &e
			}
		}
	}
	front := paretoFrontier(pts)
	endT, stepT := niceMax(maxT)
	endS, stepS := niceMax(maxS)
	pw, ph := width-left-right, height-top-bottom
	x := func(v float64) float64 { return left + pw*math.Max(v, 0)/endT }
	y := func(v float64) float64 { return top + ph - ph*math.Max(v, 0)/endS }

	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`, width, height, width, height)
	fmt.Fprintf(&sb, `<title>%s</title><rect width="100%%" height="100%%" fill="#fff"/>`, esc(title))
	fmt.Fprintf(&sb, `<text x="%.0f" y="20" font-size="14" font-weight="bold">%s</text>`, left, esc(title))
	for v := 0.0; v <= endT+1e-9; v += stepT {
		fmt.Fprintf(&sb, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/><text x="%.1f" y="%.1f" text-anchor="middle" fill="#555">%s</text>`,
			x(v), top, x(v), top+ph, x(v), top+ph+16, tick(v, stepT))
	}
	for v := 0.0; v <= endS+1e-9; v += stepS {
		fmt.Fprintf(&sb, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/><text x="%.1f" y="%.1f" text-anchor="end" fill="#555">%s</text>`,
			left, y(v), left+pw, y(v), left-6, y(v)+4, tick(v, stepS))
	}
	fmt.Fprintf(&sb, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/><line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`,
		left, top+ph, left+pw, top+ph, left, top, left, top+ph)
	fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f" text-anchor="middle">time used (%s, mean over seeds)</text>`, left+pw/2, height-14, unit)
	fmt.Fprintf(&sb, `<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle">weighted average score (%%)</text>`, top+ph/2)
	if len(front) > 0 {
		var d strings.Builder
		fmt.Fprintf(&d, "M%.1f %.1f", x(front[0].t), y(front[0].s))
		for _, p := range front[1:] {
			fmt.Fprintf(&d, "H%.1fV%.1f", x(p.t), y(p.s))
		}
		fmt.Fprintf(&d, "H%.1f", left+pw)
		fmt.Fprintf(&sb, `<path class="frontier" d="%s" stroke="#e15759" stroke-width="1.5" stroke-dasharray="6 3" fill="none"/>`, d.String())
	}
	var placed []labelBox
	for _, p := range pts {
		c := palette(p.colourIndex)
		fmt.Fprintf(&sb, `<g class="point"><title>%s: %s %s, %s</title>`, esc(p.label), esc(pm(p.t, p.tErr)), short, esc(pm(p.s, p.sErr)))
		if p.tErr != nil {
			fmt.Fprintf(&sb, `<path d="M%.1f %.1fH%.1f" stroke="%s"/>`, x(p.t-*p.tErr), y(p.s), x(p.t+*p.tErr), c)
		}
		if p.sErr != nil {
			fmt.Fprintf(&sb, `<path d="M%.1f %.1fV%.1f" stroke="%s"/>`, x(p.t), y(p.s-*p.sErr), y(p.s+*p.sErr), c)
		}
		fmt.Fprintf(&sb, `<circle cx="%.1f" cy="%.1f" r="5" fill="%s" stroke="#222"/>`, x(p.t), y(p.s), c)
		label := clip(p.label, 32)
		w := textWidth(label, 10)
		if x(p.t)+7+w <= left+pw {
			lx, ly := placeLabel(&placed, x(p.t)+7, y(p.s)-6, w, 12)
			fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f" font-size="10">%s</text></g>`, lx, ly, esc(label))
			continue
		}
		// Near the right edge the label ends left of its point, inside
		// the plot, clear of the legend.
		lx, ly := placeLabel(&placed, x(p.t)-7-w, y(p.s)-6, w, 12)
		fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f" font-size="10" text-anchor="end">%s</text></g>`, lx+w, ly, esc(label))
	}
	// Legend: frontier members.
	ly := top + 4
	fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f" font-weight="bold">Pareto frontier</text>`, left+pw+14, ly)
	for _, p := range front {
		ly += 16
		fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f" font-size="11">%s</text>`, left+pw+14, ly, esc(clip(p.label, 34)))
	}
	if skipped > 0 {
		fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f" font-size="11" fill="#888">%d method(s) without time data left out</text>`, left+pw+14, ly+22, skipped)
	}
	sb.WriteString(`</svg>`)
	return sb.String()
}

// labelBox is a placed label: its baseline-left corner and size.
type labelBox struct{ x, y, w, h float64 }

// placeLabel finds a spot for a label of width w and height h at (x, y) or,
// when that overlaps a label already placed (points that coincide or
// nearly do), the nearest free spot below it; it records and returns it.
func placeLabel(placed *[]labelBox, x, y, w, h float64) (float64, float64) {
	overlaps := func(yy float64) bool {
		for _, b := range *placed {
			if x < b.x+b.w && b.x < x+w && yy-h < b.y && b.y-b.h < yy {
				return true
			}
		}
		return false
	}
	for i := 0; i < 50 && overlaps(y); i++ {
		y += h
	}
	*placed = append(*placed, labelBox{x, y, w, h})
	return x, y
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}
