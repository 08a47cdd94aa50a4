package report

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/result"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// layoutRuns is a report input with the layouts that went wrong in a
// browser: every method scores below the instruct models (their reference
// line sits at the plot's right edge), sub-hour runs (a time axis in
// hundredths of an hour), two methods with identical results (coinciding
// scatter points), a long method name and every fallback column in use.
func layoutRuns() []Run {
	runs := synthRuns(3, 2, 42)
	var twins []Run
	for i, r := range runs {
		res := *r.Result
		res.Solve = &result.Solve{TimeTakenS: float64(30 + 3*(i%10))}
		if res.Score != nil {
			res.Score = fp(*res.Score * 0.8)
		}
		if i%9 == 4 {
			res.Verdict = result.VerdictUnverified
		}
		runs[i].Result = &res
		if res.Spec.AgentModel == "agent-0" {
			twin := res
			twin.Spec.Label = "agent-0 twin with a long method name (Claude Code, reprompt every 30 minutes)"
			twin.RunID = "twin-" + res.RunID
			twins = append(twins, Run{Dir: filepath.Join("runs", twin.RunID), Result: &twin})
		}
	}
	return append(runs, twins...)
}

func layoutReport(t testing.TB) *Report {
	t.Helper()
	// The strict policy: the synthetic runs have no judge judgements, which
	// the paper policy would send every one of them to the base score.
	rep, err := Build(layoutRuns(), Options{Bootstrap: 200, Seed: 1, Policy: PolicyStrict,
		Compare: [][2]string{{"agent-0 (Claude Code)", "agent-1 (Codex CLI)"}}})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// Every renderer against a golden file (go test ./internal/report -update
// rewrites them): md, csv, json, html and each SVG figure.
func TestGoldenRenderers(t *testing.T) {
	rep := layoutReport(t)
	outs := map[string][]byte{}
	for _, f := range Formats() {
		var b bytes.Buffer
		if err := Write(&b, rep, f, "out"); err != nil {
			t.Fatal(err)
		}
		outs["report."+f] = b.Bytes()
	}
	for _, fig := range Figures(rep) {
		outs[fig.Name+".svg"] = []byte(fig.SVG + "\n")
	}
	for name, got := range outs {
		p := filepath.Join("testdata", "golden", name)
		if *update {
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("%s: %v (go test ./internal/report -update writes it)", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s (go test ./internal/report -update rewrites it); first difference at byte %d", name, p, firstDiff(got, want))
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// The faults seen in a browser, as properties of the SVG and HTML text.
func TestLayoutFaults(t *testing.T) {
	rep := layoutReport(t)
	figs := map[string]string{}
	for _, f := range Figures(rep) {
		figs[f.Name] = f.SVG
	}
	// Sub-hour ticks are distinct, not "0 0 0 0".
	ticks := regexp.MustCompile(`text-anchor="middle" fill="#555">([^<]*)</text>`).FindAllStringSubmatch(figs["time_vs_score"], -1)
	seen := map[string]bool{}
	for _, m := range ticks {
		if seen[m[1]] {
			t.Errorf("time axis tick %q repeats: %v", m[1], ticks)
		}
		seen[m[1]] = true
	}
	if len(ticks) < 3 {
		t.Errorf("time axis ticks %v", ticks)
	}
	// The instruct reference label ends at its line when it would not fit.
	if !strings.Contains(figs["avg"], `text-anchor="end">Official Instruct Models 51.1</text>`) {
		t.Errorf("the instruct label is not anchored inside the plot:\n%s", figs["avg"])
	}
	// Tick labels for steps in the tick helper.
	for _, c := range []struct {
		v, step float64
		want    string
	}{{0.004, 0.002, "0.004"}, {2.5, 2.5, "2.5"}, {20, 10, "20"}, {0.015, 0.005, "0.015"}, {0, 0.002, "0"}} {
		if got := tick(c.v, c.step); got != c.want {
			t.Errorf("tick(%v, %v) = %q, want %q", c.v, c.step, got, c.want)
		}
	}
	var md bytes.Buffer
	WriteMarkdown(&md, rep)
	if !strings.Contains(md.String(), "Fallback policy: strict") || !strings.Contains(md.String(), "Unverified runs: ") {
		t.Errorf("markdown does not state the policy and counting")
	}
}

// TestHTMLLayoutInChromium renders the layout report in headless Chromium
// at 1400 px and measures it with the browser's own layout: no SVG text
// runs outside its SVG, no two scatter labels overlap, and the Unverified
// column of the seeds table is inside the page. A screenshot is kept in
// $PTB_REPORT_SCREENSHOT when set.
func TestHTMLLayoutInChromium(t *testing.T) {
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
	rep := layoutReport(t)
	dir := t.TempDir()
	var page bytes.Buffer
	if err := WriteHTML(&page, rep, "."); err != nil {
		t.Fatal(err)
	}
	probe := `<pre id="layout"></pre><script>
const out = [];
document.querySelectorAll('svg').forEach((svg, i) => {
  const r = svg.getBoundingClientRect();
  svg.querySelectorAll('text').forEach(tx => {
    const b = tx.getBoundingClientRect();
    if (b.width > 0 && (b.left < r.left - 0.5 || b.right > r.right + 0.5)) out.push('OUTSIDE svg' + i + ': ' + tx.textContent);
  });
});
const labels = [...document.querySelectorAll('#fig-time_vs_score g.point text')].map(t => [t.textContent, t.getBoundingClientRect()]);
const others = [...document.querySelectorAll('#fig-time_vs_score text')].filter(t => !t.closest('g.point')).map(t => [t.textContent, t.getBoundingClientRect()]);
const hit = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
for (let i = 0; i < labels.length; i++) {
  for (let j = i + 1; j < labels.length; j++) if (hit(labels[i][1], labels[j][1])) out.push('OVERLAP: ' + labels[i][0] + ' / ' + labels[j][0]);
  for (const o of others) if (hit(labels[i][1], o[1])) out.push('OVERLAP with legend or axis: ' + labels[i][0] + ' / ' + o[0]);
}
const th = [...document.querySelectorAll('#details th')].find(h => h.textContent === 'Unverified');
const tb = document.querySelector('#details').getBoundingClientRect();
if (!th) out.push('NO Unverified header');
else if (th.getBoundingClientRect().right > window.innerWidth) out.push('HIDDEN Unverified at ' + th.getBoundingClientRect().right + ' of ' + window.innerWidth);
out.push('CHECKED ' + document.querySelectorAll('svg text').length + ' svg texts, ' + labels.length + ' scatter labels, details table ' + Math.round(tb.width) + ' px');
document.getElementById('layout').textContent = out.join('\n');
</script></body>`
	html := strings.Replace(page.String(), "</body>", probe, 1)
	file := filepath.Join(dir, "report.html")
	os.WriteFile(file, []byte(html), 0o644)
	flags := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir=" + filepath.Join(dir, "profile"), "--window-size=1400,3000"}
	run := func(extra ...string) []byte {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, browser, append(append(flags, extra...), "file://"+file)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v\n%s", browser, err, stderr.String())
		}
		return out
	}
	dom := string(run("--dump-dom"))
	m := regexp.MustCompile(`(?s)<pre id="layout">(.*?)</pre>`).FindStringSubmatch(dom)
	if m == nil || !strings.Contains(m[1], "CHECKED ") {
		t.Fatalf("the layout probe did not run:\n%.2000s", dom)
	}
	for _, l := range strings.Split(m[1], "\n") {
		if !strings.HasPrefix(l, "CHECKED ") {
			t.Errorf("layout: %s", l)
		} else {
			t.Log(l)
		}
	}
	if p := os.Getenv("PTB_REPORT_SCREENSHOT"); p != "" {
		run("--screenshot=" + p)
		fmt.Println("screenshot:", p)
	}
}
