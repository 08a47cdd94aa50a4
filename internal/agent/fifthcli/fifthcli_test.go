// Package fifthcli_test adds a fifth agent CLI, "toy", from a test package
// and nowhere else: its adapter (agentinfo, constructor, trace format)
// registers itself here, and one registry entry (a --registry file) lets
// jobs name it. Every place that used to switch on the four CLIs' names
// then knows it: job.Normalize, trace decoding, report labels, npm pins,
// the adapters the doctor checks, campaign files, the preflight, the
// gateway's provider choice, and a whole `ptb run` with the none backend.
package fifthcli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/agent/npmcli"
	"github.com/ptb-dev/ptb/internal/agentinfo"
	"github.com/ptb-dev/ptb/internal/campaign"
	_ "github.com/ptb-dev/ptb/internal/campaign/local" // the executor the campaign file names
	"github.com/ptb-dev/ptb/internal/cli"
	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/report"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/trace"
)

// The toy CLI's adapter: what an adapter package's register.go holds.

var toyInfo = agentinfo.Info{
	Name:         "toy",
	Display:      "Toy CLI",
	NPM:          "toy-cli@0.0.1",
	ExampleModel: "toy-large",
	CheckModel:   "toy-small",
	KeyEnv:       func(string) []string { return []string{"TOY_API_KEY"} },
	LoginFile:    "~/.toy/auth.json",
	Provider:     func(string) (string, error) { return agentinfo.ProviderOpenAI, nil },
}

type toyScaffold struct{ bin string }

func (toyScaffold) Name() string                   { return "toy" }
func (toyScaffold) Version(context.Context) string { return "0.0.1" }
func (s toyScaffold) Command(_ context.Context, l agent.Launch) (agent.Command, error) {
	return agent.Command{
		Argv: []string{s.bin, "--model", l.Model, "--json", l.Prompt},
		Env:  []string{"TOY_BASE_URL=" + l.Endpoint},
	}, nil
}

// toyFormat reads the toy CLI's JSON lines: {"toy":"start"|"say"|"end",...}.
type toyFormat struct{}

func (toyFormat) Decode(line []byte, base trace.Event) []trace.Event {
	var v struct {
		Toy   string `json:"toy"`
		Model string `json:"model"`
		Text  string `json:"text"`
		In    int64  `json:"in"`
		Out   int64  `json:"out"`
	}
	if json.Unmarshal(line, &v) != nil {
		return nil
	}
	switch v.Toy {
	case "start":
		base.Kind, base.Session = trace.KindSession, &trace.Session{Model: v.Model}
	case "say":
		base.Kind, base.Text = trace.KindFinal, v.Text
	case "end":
		base.Kind, base.Usage = trace.KindUsage, &trace.Usage{InputTokens: v.In, OutputTokens: v.Out}
	default:
		return nil // one KindUnknown event
	}
	return []trace.Event{base}
}

func init() {
	agent.Register(agent.Adapter{Info: toyInfo, New: func(o agent.Options) agent.Scaffold {
		if o.Bin == "" {
			o.Bin = "toy"
		}
		return toyScaffold{bin: o.Bin}
	}})
	trace.RegisterFormat("toy", func() trace.Format { return toyFormat{} })
}

// The one registry entry: what registry.yaml would get.
const toyEntry = "agents:\n  - name: toy\n    cli: toy\n    npm: toy-cli\n"

func writeRegistry(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "registry.yaml")
	if err := os.WriteFile(p, []byte(toyEntry), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// toyTrace is what the toy CLI prints.
const toyTrace = `{"toy":"start","model":"toy-large"}
not json
{"toy":"say","text":"made final_model"}
{"toy":"mystery"}
{"toy":"end","in":120,"out":30}
`

func TestToyRegistersByName(t *testing.T) {
	regFile := writeRegistry(t)
	reg, err := registry.Load(regFile)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("job.Normalize", func(t *testing.T) {
		spec := job.Spec{Agent: "toy", AgentModel: "toy-large", BaseModel: "qwen3-1.7b", Benchmark: "gsm8k"}
		if err := spec.Normalize(reg); err != nil {
			t.Errorf("with the registry entry: %v", err)
		}
		spec = job.Spec{Agent: "toy", AgentModel: "toy-large", BaseModel: "qwen3-1.7b", Benchmark: "gsm8k"}
		if err := spec.Normalize(registry.Default()); err == nil || !strings.Contains(err.Error(), `unknown agent "toy"`) {
			t.Errorf("without the registry entry: got %v, want unknown agent", err)
		}
		spec = job.Spec{Agent: "toy", BaseModel: "qwen3-1.7b", Benchmark: "gsm8k"}
		if err := spec.Normalize(reg); err == nil || !strings.Contains(err.Error(), "toy-large") {
			t.Errorf("no model: got %v, want a hint naming toy-large", err)
		}
	})

	t.Run("trace", func(t *testing.T) {
		if !slices.Contains(trace.Agents(), "toy") {
			t.Errorf("trace.Agents() = %v, want toy among them", trace.Agents())
		}
		s, err := trace.Summarize(strings.NewReader(toyTrace), "toy", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		got := fmt.Sprintf("%s|%s|%q|%d|%d|%d|%d|%d", s.Agent, s.Model, s.FinalMessage, s.Usage.InputTokens, s.Usage.OutputTokens, s.Events, s.Unknown, s.NonJSON)
		want := `toy|toy-large|"made final_model"|120|30|4|1|1`
		if got != want {
			t.Errorf("summary = %s, want %s", got, want)
		}
	})

	t.Run("report", func(t *testing.T) {
		if got, want := report.ScaffoldName("toy"), "Toy CLI"; got != want {
			t.Errorf("ScaffoldName = %q, want %q", got, want)
		}
		if got, want := report.Label(result.Spec{Agent: "toy", AgentModel: "toy-large", Hours: 5}), "toy-large (Toy CLI, 5h)"; got != want {
			t.Errorf("Label = %q, want %q", got, want)
		}
	})

	t.Run("npm pins and adapters", func(t *testing.T) {
		if got := npmcli.Packages()["toy"]; got != "toy-cli@0.0.1" {
			t.Errorf("npmcli.Packages()[toy] = %q, want toy-cli@0.0.1", got)
		}
		// The doctor checks the registry's agents that have a constructor.
		if !slices.Contains(agent.Constructible(), "toy") {
			t.Errorf("agent.Constructible() = %v, want toy among them", agent.Constructible())
		}
		sc, err := agent.New("toy", agent.Options{Bin: "/opt/toy/bin/toy"})
		if err != nil {
			t.Fatal(err)
		}
		c, err := sc.Command(context.Background(), agent.Launch{Model: "toy-large", Prompt: "p", Endpoint: "http://e"})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := strings.Join(c.Argv, " "), "/opt/toy/bin/toy --model toy-large --json p"; got != want {
			t.Errorf("argv = %q, want %q", got, want)
		}
		if _, err := agent.New("toy2", agent.Options{}); err == nil || !strings.Contains(err.Error(), "toy") {
			t.Errorf("New(toy2) = %v, want an error naming the adapters", err)
		}
	})

	t.Run("campaign", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "camp.yaml")
		body := "name: toy-study\nout: runs\nregistry: " + regFile + "\nagents:\n  - scaffold: toy\n    model: toy-large\nbase_models: [qwen3-1.7b]\nbenchmarks: [gsm8k]\nseeds: [1]\nrun:\n  hours: 1\nexecutor:\n  local: {gpus: [0]}\n"
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := campaign.ParseFile(p)
		if err != nil {
			t.Fatalf("campaign file with scaffold toy: %v", err)
		}
		if got := f.Agents[0].Scaffold; got != "toy" {
			t.Errorf("scaffold = %q, want toy", got)
		}
		// Without the registry entry the scaffold is unknown.
		body = strings.Replace(body, "registry: "+regFile+"\n", "", 1)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := campaign.ParseFile(p); err == nil || !strings.Contains(err.Error(), `agents[0].scaffold: "toy"`) {
			t.Errorf("without the registry entry: got %v, want agents[0].scaffold error", err)
		}
	})
}

// TestMain plays ptb when a command under test starts it again
// (os.Executable: `ptb sandbox-init` around the agent, as in cli's tests).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (!strings.HasPrefix(os.Args[1], "-") || os.Getenv("PTB_TEST_AS_PTB") == "1") {
		os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// runPTB runs the ptb command tree in this process.
func runPTB(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// A whole run of the toy CLI with the none backend: preflight (its CLI on
// PATH, its provider's credentials through the gateway), the scaffold by
// name, the solve, the trace read with the toy format, the report label.
func TestToyRunsEndToEnd(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\n" +
		"printf '%s\\n' '{\"toy\":\"start\",\"model\":\"'\"$2\"'\"}'\n" +
		"mkdir -p final_model && printf '{}' > final_model/config.json\n" +
		"printf '%s\\n' '{\"toy\":\"say\",\"text\":\"made final_model\"}' '{\"toy\":\"end\",\"in\":120,\"out\":30}'\n"
	if err := os.WriteFile(filepath.Join(bin, "toy"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":/usr/bin:/bin")
	out := filepath.Join(dir, "runs")
	code, stdout, stderr := runPTB(t, "run", "--agent", "toy", "--agent-model", "toy-large", "--registry", writeRegistry(t),
		"--endpoint", "http://127.0.0.1:9", "--sandbox", "none", "--base-model", "qwen3-1.7b", "--benchmark", "gsm8k",
		"--hours", "0.01", "--eval-backend", "none", "--run-id", "toy-run", "--out", out)
	if code != 0 {
		for _, f := range []string{"output.log", "trace/agent.jsonl"} {
			b, _ := os.ReadFile(filepath.Join(out, "toy-run", f))
			t.Logf("%s:\n%s", f, b)
		}
		t.Fatalf("ptb run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	run := filepath.Join(out, "toy-run")
	var rec result.Result
	b, err := os.ReadFile(filepath.Join(run, "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Spec.Agent != "toy" {
		t.Errorf("result.json agent = %q, want toy", rec.Spec.Agent)
	}
	code, stdout, stderr = runPTB(t, "trace", "summary", "--agent", "toy", filepath.Join(run, "trace", "agent.jsonl"))
	if code != 0 {
		t.Fatalf("ptb trace summary: exit %d\n%s", code, stderr)
	}
	for _, want := range []string{"agent:          toy", `final message:  "made final_model"`, "tokens:         in 120 (cached 0) out 30"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("trace summary lacks %q:\n%s", want, stdout)
		}
	}
	code, stdout, stderr = runPTB(t, "report", out)
	if code != 0 {
		t.Fatalf("ptb report: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "toy-large (Toy CLI, 0.01h)") {
		t.Errorf("report lacks the toy label:\n%s", stdout)
	}
}

// The preflight speaks of the toy CLI from its registration: its npm pin
// when the CLI is missing, its key variable and login file when it has no
// credentials, its provider's key under the gateway.
func TestToyPreflight(t *testing.T) {
	dir := t.TempDir()
	empty, withToy := filepath.Join(dir, "empty"), filepath.Join(dir, "withtoy")
	for _, d := range []string{empty, withToy} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(withToy, "toy"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OPENAI_API_KEY", "")
	t.Setenv("TOY_API_KEY", "")
	regFile := writeRegistry(t)
	for _, c := range []struct {
		name, path string
		args       []string
		want       string
	}{
		{"cli missing", empty, nil, "npm install -g toy-cli@0.0.1"},
		{"no credentials", withToy, []string{"--network", "host"}, "export TOY_API_KEY=... and pass --env TOY_API_KEY, or pass --credentials FILE (the CLI's subscription login, ~/.toy/auth.json)"},
		{"gateway key", withToy, nil, "set OPENAI_API_KEY in ptb's environment"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("PATH", c.path+":/usr/bin:/bin")
			args := append([]string{"run", "--agent", "toy", "--agent-model", "toy-large", "--registry", regFile,
				"--sandbox", "none", "--base-model", "qwen3-1.7b", "--benchmark", "gsm8k", "--eval-backend", "none",
				"--out", filepath.Join(dir, "runs")}, c.args...)
			code, _, stderr := runPTB(t, args...)
			if code != 2 || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, want 2 with %q:\n%s", code, c.want, stderr)
			}
		})
	}
}
