package campaign

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/registry"
)

const validFile = `name: t1
out: runs
agents:
  - scaffold: scripted
base_models: [qwen3-1.7b]
benchmarks: [gsm8k]
run:
  script: s.yaml
executor:
  fake: {id: ID}
`

func TestParseValid(t *testing.T) {
	_, id := newFake(t)
	body := strings.ReplaceAll(validFile, "ID", id)
	f, cells := writeCampaign(t, body)
	if f.Name != "t1" || !filepath.IsAbs(f.Out) || filepath.Base(f.Out) != "runs" || !filepath.IsAbs(f.Run.Script) {
		t.Errorf("file %+v", f)
	}
	if f.Run.Hours != 10 || f.Run.GPUs != 1 || f.Retry != (Retry{10, 3, 3}) {
		t.Errorf("defaults: hours %g, gpus %d, retry %+v", f.Run.Hours, f.Run.GPUs, f.Retry)
	}
	if want := 10*time.Hour + DefaultEvalAllowance + 30*time.Second; f.Resources.TimeLimit != want {
		t.Errorf("time limit %s, want %s", f.Resources.TimeLimit, want)
	}
	if len(cells) != 1 || cells[0].RunID != "gsm8k_qwen3-1.7b_scripted_s0" {
		t.Errorf("cells %+v", cells)
	}
	ex, err := f.NewExecutor()
	if err != nil {
		t.Fatal(err)
	}
	// The executor's factory gets its settings node, with lines.
	if n := ex.(*fakeExec).settings; n == nil || n.Line != 10 {
		t.Errorf("settings node %+v, want the mapping on line 10", n)
	}
}

// Every mistake names the file, the line, the field and what is allowed.
func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		name, old, new, want string
	}{
		{"unknown top-level field", "name: t1\n", "name: t1\nseed: 3\n", "camp.yaml:2: seed: unknown field (allowed here: name, out,"},
		{"unknown nested field", "  script: s.yaml\n", "  script: s.yaml\n  hourz: 3\n", "camp.yaml:9: run.hourz: unknown field (allowed here: hours, gpus,"},
		{"unknown agent field", "  - scaffold: scripted\n", "  - scaffold: scripted\n    modle: x\n", "camp.yaml:5: agents[0].modle: unknown field"},
		{"type error keeps its line", "  script: s.yaml\n", "  script: s.yaml\n  hours: lots\n", "camp.yaml:9: cannot unmarshal !!str `lots` into float64"},
		{"bad name", "name: t1", "name: T_1", "camp.yaml:1: name: \"T_1\": want lower-case letters"},
		{"missing out", "out: runs\n", "", "camp.yaml: out: required"},
		{"bad scaffold", "scaffold: scripted", "scaffold: cursor", "camp.yaml:4: agents[0].scaffold: \"cursor\": want one of claude, codex"},
		{"model required", "scaffold: scripted", "scaffold: claude", "agents[0].model: required for scaffold claude"},
		{"variant needs a name", "  - scaffold: scripted\n", "  - scaffold: scripted\n    args: [--reprompt, 30m]\n", "camp.yaml:4: agents[0].name: required for an agent with args"},
		{"own flag in args", "  script: s.yaml\n", "  script: s.yaml\n  args: [--seed, '3']\n", "camp.yaml:9: run.args[0]: --seed is set by the campaign itself"},
		{"secret value", "run:\n", "secrets: [ANTHROPIC_API_KEY=sk-ant-123]\nrun:\n", "camp.yaml:7: secrets[0]: give the variable's name only, never its value"},
		{"secret not a name", "run:\n", "secrets: [sk-ant-123]\nrun:\n", "secrets[0]: \"sk-ant-123\" is not an environment variable name"},
		{"no executor", "executor:\n  fake: {id: ID}\n", "", "camp.yaml: executor: required: exactly one executor"},
		{"unknown executor", "  fake: {id: ID}\n", "  slurmm: {}\n", "camp.yaml:10: executor.slurmm: unknown executor (registered: "},
		{"two executors", "  fake: {id: ID}\n", "  fake: {id: ID}\n  other: {}\n", "camp.yaml:9: executor: give exactly one executor, not 2"},
		{"few-shot", "run:\n", "baselines: {kinds: [few-shot], models_dir: m}\nrun:\n", "camp.yaml:7: baselines.kinds[0]: few-shot: ptb eval has no few-shot mode"},
		{"include needs all fields", "run:\n", "include: [{agent: scripted, benchmark: gsm8k}]\nrun:\n", "camp.yaml:7: include[0]: an included cell needs agent, base_model, benchmark and seed"},
		{"exclude unknown agent", "run:\n", "exclude: [{agent: opus}]\nrun:\n", "camp.yaml:7: exclude[0].agent: \"opus\" is no agent of this file (agents: scripted)"},
		{"bad memory", "run:\n", "resources: {memory: lots}\nrun:\n", "camp.yaml:7: resources.memory: \"lots\": want a size"},
		{"time limit under budget", "run:\n", "resources: {time_limit: 5h}\nrun:\n", "resources.time_limit: 5h0m0s is not above the solve budget (10h0m0s)"},
		{"duplicate seed", "run:\n", "seeds: [0, 1, 0]\nrun:\n", "camp.yaml:7: seeds[2]: 0 is negative or listed twice"},
		{"duplicate key", "name: t1\n", "name: t1\nname: t2\n", "camp.yaml:2: name: given twice (first on line 1)"},
		{"list where a value goes", "name: t1", "name: [a, b]", "camp.yaml:1: name: want a single value"},
		{"bad network", "  script: s.yaml\n", "  script: s.yaml\n  network: open\n", "camp.yaml:9: run.network: \"open\": want gateway, none or host"},
		{"scripted needs a script", "  script: s.yaml\n", "  gpus: 0\n", "camp.yaml:7: run.script: required: agent scripted uses the scripted scaffold"},
		{"replay needs responses", "  script: s.yaml\n", "  script: s.yaml\n  eval: {backend: replay}\n", "camp.yaml:9: run.eval.responses: required with backend replay"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, id := newFake(t)
			body := strings.ReplaceAll(validFile, "ID", id)
			c.old, c.new = strings.ReplaceAll(c.old, "ID", id), strings.ReplaceAll(c.new, "ID", id)
			if !strings.Contains(body, c.old) {
				t.Fatalf("case does not apply: %q", c.old)
			}
			body = strings.Replace(body, c.old, c.new, 1)
			dir := t.TempDir()
			p := filepath.Join(dir, "camp.yaml")
			os.WriteFile(p, []byte(body), 0o644)
			_, err := ParseFile(p)
			if err == nil {
				t.Fatalf("no error for\n%s", body)
			}
			if got := strings.TrimPrefix(err.Error(), dir+"/"); !strings.Contains(got, c.want) {
				t.Errorf("error\n  %s\nwant it to contain\n  %s", got, c.want)
			}
		})
	}
}

// The example study in examples/ parses and expands as docs/CAMPAIGN.md says.
func TestExamplePaperStudy(t *testing.T) {
	p := filepath.Join("..", "..", "examples", "campaign-paper-3seed.yaml")
	// The example names a real executor; the engine's test swaps in its fake.
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	_, id := newFake(t)
	body := string(b)
	i := strings.Index(body, "executor:")
	if i < 0 {
		t.Fatal("the example has no executor")
	}
	body = body[:i] + "executor:\n  fake: {id: " + id + "}\n"
	abs, _ := filepath.Abs(p)
	f, err := Parse([]byte(body), abs)
	if err != nil {
		t.Fatal(err)
	}
	cells, err := f.Expand(registry.Default(), testSpecifier(registry.Default()))
	if err != nil {
		t.Fatal(err)
	}
	// 3 agents x 4 models x 7 benchmarks x 3 seeds, plus 2 baselines x 4 x 7.
	if got, want := len(cells), 3*4*7*3+2*4*7; got != want {
		t.Errorf("%d cells, want %d", got, want)
	}
	if f.Limits.MaxParallel != 16 || len(f.Secrets) != 3 || f.Agents[2].MaxParallel != 4 {
		t.Errorf("limits %+v, secrets %v, agents %+v", f.Limits, f.Secrets, f.Agents)
	}
	seen := map[string]bool{}
	for _, c := range cells {
		if seen[c.RunID] {
			t.Errorf("run id %s twice", c.RunID)
		}
		seen[c.RunID] = true
	}
}

// The study declared in docs/CAMPAIGN.md is a valid file with the cells
// the text counts.
func TestDocStudyParses(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "CAMPAIGN.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "```yaml\nname: paper-3seed")
	if i < 0 {
		t.Fatal("docs/CAMPAIGN.md has no paper-3seed example")
	}
	body := doc[i+len("```yaml\n"):]
	body = body[:strings.Index(body, "```")]
	_, id := newFake(t)
	body = body[:strings.Index(body, "executor:")] + "executor:\n  fake: {id: " + id + "}\n"
	f, err := Parse([]byte(body), "/docs/CAMPAIGN.md")
	if err != nil {
		t.Fatal(err)
	}
	cells, err := f.Expand(registry.Default(), testSpecifier(registry.Default()))
	if err != nil {
		t.Fatal(err)
	}
	if len(cells) != 252+56 || !strings.Contains(doc, "(252 runs)") || !strings.Contains(doc, "(56 eval-only jobs)") {
		t.Errorf("%d cells; the text says 252 runs and 56 baselines", len(cells))
	}
}
