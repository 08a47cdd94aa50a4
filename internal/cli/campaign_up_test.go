package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/ptb-dev/ptb/internal/campaign"
	"github.com/ptb-dev/ptb/internal/pipeline"
	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/rundir"
)

// cliFake is an in-memory executor for the command tests (a unit-test
// fake: the real executors run the contract suite against their schedulers).
type cliFake struct {
	mu        sync.Mutex
	jobs      []campaign.Status
	cancelled []string
	logs      map[string][]string
	// run, when set, runs each submitted job at once, in this process,
	// as the allocation would (exec's child command), and ends it.
	run func(s campaign.Submission, j campaign.Job) int
}

var (
	cliFakesMu sync.Mutex
	cliFakes   = map[string]*cliFake{}
)

func init() {
	campaign.Register("clifake", func(n *yaml.Node) (campaign.Executor, error) {
		var s struct {
			ID string `yaml:"id"`
		}
		if n == nil {
			return nil, fmt.Errorf("clifake needs an id")
		}
		if err := n.Decode(&s); err != nil {
			return nil, err
		}
		cliFakesMu.Lock()
		defer cliFakesMu.Unlock()
		if f := cliFakes[s.ID]; f != nil {
			return f, nil
		}
		return nil, fmt.Errorf("line %d: id: no fake %q", n.Line, s.ID)
	})
}

func (f *cliFake) Name() string                { return "clifake" }
func (f *cliFake) Check(context.Context) error { return nil }
func (f *cliFake) Submit(_ context.Context, s campaign.Submission) ([]campaign.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []campaign.Status
	for _, j := range s.Jobs {
		st := campaign.Status{RunID: j.RunID, BackendID: fmt.Sprint(len(f.jobs)), State: campaign.StatePending, Reason: "Priority"}
		if f.run != nil {
			st.State, st.Reason = campaign.StateExited, ""
			if code := f.run(s, j); code != 0 {
				st.State, st.Reason = campaign.StateFailed, fmt.Sprintf("exit %d", code)
			}
		}
		f.jobs = append(f.jobs, st)
		out = append(out, st)
	}
	return out, nil
}
func (f *cliFake) List(context.Context, campaign.Ref) ([]campaign.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.jobs), nil
}
func (f *cliFake) Cancel(_ context.Context, _ campaign.Ref, ids []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancelled = append(f.cancelled, ids...)
	return nil
}
func (f *cliFake) Logs(_ context.Context, _ campaign.Ref, id string) ([]string, error) {
	return f.logs[id], nil
}

// campaignFixture writes a campaign of scripted cells (sandbox none,
// evaluation none, budgets of seconds) and registers its fake executor.
func campaignFixture(t *testing.T, seeds string) (file, out string, fx *cliFake) {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "s.yaml")
	os.WriteFile(script, []byte("steps:\n  - model: final_model\nfinal: done\n"), 0o644)
	fx = &cliFake{logs: map[string][]string{}}
	id := t.Name()
	cliFakesMu.Lock()
	cliFakes[id] = fx
	cliFakesMu.Unlock()
	t.Cleanup(func() { cliFakesMu.Lock(); delete(cliFakes, id); cliFakesMu.Unlock() })
	out = filepath.Join(dir, "runs")
	file = filepath.Join(dir, "study.yaml")
	body := `name: clitest
out: runs
agents:
  - scaffold: scripted
    label: demo
base_models: [qwen3-1.7b]
benchmarks: [gsm8k]
seeds: ` + seeds + `
run:
  hours: 0.003
  gpus: 0
  sandbox: none
  script: s.yaml
  eval: {backend: none}
  args: [--limit, memory=2G, --judge-runs, "3"]
secrets: [ANTHROPIC_API_KEY]
executor:
  clifake: {id: ` + id + `}
`
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return file, out, fx
}

// The spec hash in the index is the hash of the spec a real `ptb run`
// makes from the cell's arguments: the campaign parses them with ptb run's
// own flags.
func TestCampaignSpecHashIsRunsHash(t *testing.T) {
	file, out, _ := campaignFixture(t, "[0]")
	lc, err := loadCampaign(&env{}, file)
	if err != nil {
		t.Fatal(err)
	}
	cell := lc.cells[0]
	args := append(slices.Clone(cell.Args), "--out", out)
	code, _, stderr := runPTB(t, append([]string{"run"}, args...)...)
	if code != 0 {
		t.Fatalf("ptb run %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
	dirs, _ := filepath.Glob(filepath.Join(out, cell.RunID+"_*"))
	if len(dirs) != 1 {
		t.Fatalf("run directories %v, want one named %s_<time>", dirs, cell.RunID)
	}
	spec, err := pipeline.LoadSpec(rundir.Dir(dirs[0]))
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.Hash(); got != cell.Hash {
		a, _ := json.Marshal(spec)
		b, _ := runSpecifier(&env{}, registry.Default())(cell.Args)
		bj, _ := json.Marshal(b)
		t.Errorf("hash of the run's job.json %s, index %s\nrun:      %s\ncampaign: %s", got, cell.Hash, a, bj)
	}
	if spec.Judge.Runs != 3 || spec.Limits.MemoryBytes != 2<<30 {
		t.Errorf("run.args did not reach the run: judge runs %d, memory %d", spec.Judge.Runs, spec.Limits.MemoryBytes)
	}
}

// Every `ptb run` flag is either read by runSpecifier or named as not a
// job setting: a flag added to ptb run without either fails here.
func TestRunSpecifierKnowsEveryRunFlag(t *testing.T) {
	read := []string{"agent", "agent-model", "base-model", "benchmark", "hours", "seed", "label", "sandbox", "network", "grace",
		"env", "ro", "endpoint", "credentials", "reprompt", "script", "spend-cap", "allow-model", "hub-endpoint",
		"eval-backend", "eval-version", "eval-responses", "eval-base-url", "eval-limit", "data-dir",
		"judge-agent", "judge-model", "judge-endpoint", "judge-runs", "registry", "agents-prefix", "limit"}
	newRunCmd(&env{}).Flags().VisitAll(func(fl *pflag.Flag) {
		if !slices.Contains(read, fl.Name) && !slices.Contains(notSpecFlags, fl.Name) {
			t.Errorf("ptb run --%s: runSpecifier neither reads it into the job spec nor lists it in notSpecFlags", fl.Name)
		}
	})
}

func TestCampaignUpStatusCancelLogs(t *testing.T) {
	file, out, fx := campaignFixture(t, "[0, 1, 2]")
	code, stdout, stderr := runPTB(t, "campaign", "up", file, "--dry-run")
	if code != 0 {
		t.Fatalf("up --dry-run: exit %d: %s", code, stderr)
	}
	for _, w := range []string{"index  run id", "0+     gsm8k_qwen3-1.7b_scripted_s0  idle   submit  never submitted", "dry run of campaign clitest (clifake,", "nothing was written or submitted"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("dry run output lacks %q:\n%s", w, stdout)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("the dry run made %s", out)
	}
	code, stdout, stderr = runPTB(t, "campaign", "up", file, "--exe", "/bin/true")
	if code != 0 || len(fx.jobs) != 3 || !strings.Contains(stdout, "3 submitted now") {
		t.Fatalf("up: exit %d, %d jobs: %s%s", code, len(fx.jobs), stdout, stderr)
	}
	code, stdout, _ = runPTB(t, "campaign", "up", file, "--exe", "/bin/true")
	if code != 0 || len(fx.jobs) != 3 || !strings.Contains(stdout, "3 queued") {
		t.Errorf("second up: exit %d, %d jobs:\n%s", code, len(fx.jobs), stdout)
	}
	code, stdout, stderr = runPTB(t, "campaign", "status", file, "--json")
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, stderr)
	}
	var rep campaign.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Counts[campaign.CellQueued] != 3 || rep.Runs[2].Backend == nil || rep.Runs[2].Backend.Reason != "Priority" {
		t.Errorf("status %+v", rep)
	}
	code, stdout, _ = runPTB(t, "campaign", "status", file)
	if code != 0 || !strings.Contains(stdout, "campaign clitest (clifake)") || !strings.Contains(stdout, "2 pending (Priority)") {
		t.Errorf("status table:\n%s", stdout)
	}
	code, stdout, _ = runPTB(t, "campaign", "cancel", file, "gsm8k_qwen3-1.7b_scripted_s1")
	if code != 0 || !slices.Equal(fx.cancelled, []string{"gsm8k_qwen3-1.7b_scripted_s1"}) {
		t.Errorf("cancel one: exit %d, cancelled %v: %s", code, fx.cancelled, stdout)
	}
	code, _, stderr = runPTB(t, "campaign", "cancel", file, "nope")
	if code != 2 || !strings.Contains(stderr, "nope is no run of campaign clitest") {
		t.Errorf("cancel of an unknown run: exit %d: %s", code, stderr)
	}
	code, _, _ = runPTB(t, "campaign", "cancel", file)
	if code != 0 || len(fx.cancelled) != 4 {
		t.Errorf("cancel all: exit %d, cancelled %v", code, fx.cancelled)
	}
	logf := filepath.Join(t.TempDir(), "job.out")
	os.WriteFile(logf, []byte("hello from the allocation\n"), 0o644)
	fx.logs["gsm8k_qwen3-1.7b_scripted_s0"] = []string{logf}
	code, stdout, _ = runPTB(t, "campaign", "logs", file, "gsm8k_qwen3-1.7b_scripted_s0")
	if code != 0 || !strings.Contains(stdout, "==> "+logf+" <==\nhello from the allocation") {
		t.Errorf("logs: exit %d:\n%s", code, stdout)
	}
	code, _, stderr = runPTB(t, "campaign", "logs", file, "gsm8k_qwen3-1.7b_scripted_s2")
	if code != 1 || !strings.Contains(stderr, "has no scheduler log yet") {
		t.Errorf("logs without a log: exit %d: %s", code, stderr)
	}
}

// Status reads real run directories made by a real `ptb run`.
func TestCampaignStatusOfRealRun(t *testing.T) {
	file, out, fx := campaignFixture(t, "[0, 1]")
	if code, _, stderr := runPTB(t, "campaign", "up", file, "--exe", "/bin/true"); code != 0 {
		t.Fatalf("up: %s", stderr)
	}
	lc, err := loadCampaign(&env{}, file)
	if err != nil {
		t.Fatal(err)
	}
	// The allocation's work, done here: exec's child, ptb run --run-id.
	idx, err := campaign.ReadIndex(lc.file.Dir())
	if err != nil || len(idx) != 2 {
		t.Fatalf("index %+v, %v", idx, err)
	}
	if code, _, stderr := runPTB(t, idx[0].ChildArgs(out, "")...); code != 0 {
		t.Fatalf("ptb run: %s", stderr)
	}
	fx.jobs[0].State, fx.jobs[1].State, fx.jobs[1].Reason = campaign.StateExited, campaign.StateFailed, "exit 2"
	code, stdout, stderr := runPTB(t, "campaign", "status", file, "--json")
	if code != 0 {
		t.Fatalf("status: %s", stderr)
	}
	var rep campaign.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	r0, r1 := rep.Runs[0], rep.Runs[1]
	if r0.State != campaign.CellDone || r0.Verdict != "unverified" || r0.BudgetS != 10.8 || r0.Stage != "" {
		t.Errorf("run 0 %+v", r0)
	}
	if !strings.Contains(strings.Join(r0.Triage, "\n"), "no metrics: evaluate skipped") {
		t.Errorf("run 0 triage %q", r0.Triage)
	}
	if r1.State != campaign.CellIdle || !strings.Contains(strings.Join(r1.Triage, "\n"), "never ran: its job ended before the run directory was made (exit 2)") {
		t.Errorf("run 1 %+v", r1)
	}
	// up resubmits the failed one only.
	code, stdout, _ = runPTB(t, "campaign", "up", file, "--exe", "/bin/true")
	if code != 0 || len(fx.jobs) != 3 || fx.jobs[2].RunID != lc.cells[1].RunID {
		t.Errorf("up after: exit %d, jobs %+v\n%s", code, fx.jobs, stdout)
	}
}

func TestCampaignUsageErrors(t *testing.T) {
	file, _, _ := campaignFixture(t, "[0]")
	bad := filepath.Join(filepath.Dir(file), "bad.yaml")
	b, _ := os.ReadFile(file)
	os.WriteFile(bad, []byte(strings.Replace(string(b), "  hours: 0.003\n", "  hours: 0.003\n  hourz: 1\n", 1)), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"campaign", "up", bad}, "bad.yaml:11: run.hourz: unknown field"},
		{[]string{"campaign", "status", file, "--watch", "--interval", "1s"}, "--watch polls the scheduler at most every 30s"},
		{[]string{"campaign", "up", file, "--exe", filepath.Dir(file)}, "not an executable file"},
		{[]string{"campaign", "up", filepath.Join(filepath.Dir(file), "missing.yaml")}, "read campaign file"},
	} {
		code, _, stderr := runPTB(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("ptb %s: exit %d, stderr %q; want exit 2 with %q", strings.Join(c.args, " "), code, stderr, c.want)
		}
	}
	// A secret not set here is worth a warning.
	t.Setenv("ANTHROPIC_API_KEY", "")
	_, _, stderr := runPTB(t, "campaign", "up", file, "--dry-run")
	if !strings.Contains(stderr, "secrets: ANTHROPIC_API_KEY is not set here") {
		t.Errorf("no warning for an unset secret: %s", stderr)
	}
}

// A cell's index arguments run as `ptb run --run-id` (what ptb campaign
// exec does in the allocation): the first start makes OUT/ID, a second one
// finds the same job finished, and up then counts the cell done.
func TestCampaignCellRunsWithRunID(t *testing.T) {
	if newRunCmd(&env{}).Flags().Lookup("run-id") == nil {
		t.Skip("ptb run has no --run-id on this branch")
	}
	file, out, fx := campaignFixture(t, "[0, 1]")
	if code, _, stderr := runPTB(t, "campaign", "up", file, "--exe", "/bin/true"); code != 0 {
		t.Fatalf("up: %s", stderr)
	}
	lc, err := loadCampaign(&env{}, file)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := campaign.ReadIndex(lc.file.Dir())
	if err != nil || len(idx) != 2 {
		t.Fatalf("index %+v %v", idx, err)
	}
	e := idx[0]
	start := append([]string{"run", "--run-id", e.RunID, "--out", out}, e.Args...)
	for i := range 2 {
		if code, _, stderr := runPTB(t, start...); code != 0 {
			t.Fatalf("start %d: ptb %s: exit %d: %s", i+1, strings.Join(start, " "), code, stderr)
		}
	}
	// The same id with another job is refused by ptb run itself.
	other := append(slices.Clone(start), "--reprompt", "1m")
	if code, _, stderr := runPTB(t, other...); code != 2 {
		t.Errorf("a start with another job: exit %d: %s", code, stderr)
	}
	fx.jobs[0].State = campaign.StateExited
	code, stdout, _ := runPTB(t, "campaign", "up", file, "--exe", "/bin/true")
	if code != 0 || len(fx.jobs) != 2 || !strings.Contains(stdout, "1 done") {
		t.Errorf("up after the run: exit %d, %d jobs:\n%s", code, len(fx.jobs), stdout)
	}
}

// up --wait drives a campaign to the end: each cell's index entry runs as
// ptb run --run-id (exec's child), and a second up submits nothing.
func TestCampaignUpWaitRunsToTheEnd(t *testing.T) {
	if newRunCmd(&env{}).Flags().Lookup("run-id") == nil {
		t.Skip("ptb run has no --run-id on this branch")
	}
	file, out, fx := campaignFixture(t, "[0, 1, 2]")
	fx.run = func(s campaign.Submission, j campaign.Job) int {
		idx, err := campaign.ReadIndex(s.Dir)
		if err != nil {
			t.Error(err)
			return 1
		}
		e, _ := campaign.Find(idx, j.Index, "")
		code, _, stderr := runPTB(t, e.ChildArgs(s.Root, "")...)
		if code != 0 {
			t.Errorf("job %s: exit %d: %s", j.RunID, code, stderr)
		}
		return code
	}
	code, stdout, stderr := runPTB(t, "campaign", "up", file, "--wait", "--interval", "1s", "--exe", "/bin/true")
	if code != 0 || !strings.Contains(stdout, "3 done") {
		t.Fatalf("up --wait: exit %d:\n%s%s", code, stdout, stderr)
	}
	for i := range 3 {
		if _, err := os.Stat(filepath.Join(out, fmt.Sprintf("gsm8k_qwen3-1.7b_scripted_s%d", i), "result.json")); err != nil {
			t.Errorf("run %d: %v", i, err)
		}
	}
	code, stdout, _ = runPTB(t, "campaign", "up", file, "--exe", "/bin/true")
	if code != 0 || len(fx.jobs) != 3 || strings.Contains(stdout, "submitted now") {
		t.Errorf("a second up: exit %d, %d jobs:\n%s", code, len(fx.jobs), stdout)
	}
}
