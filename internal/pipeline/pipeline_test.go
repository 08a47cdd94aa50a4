package pipeline_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/agent/scripted"
	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/pipeline"
	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/bwrap"
	"github.com/ptb-dev/ptb/internal/sandbox/none"
	"github.com/ptb-dev/ptb/internal/sandbox/proctree"
	"github.com/ptb-dev/ptb/internal/sandbox/relay"
	"github.com/ptb-dev/ptb/internal/sandbox/sandboxfake"
	"github.com/ptb-dev/ptb/internal/sandbox/sandboxtest"
)

// The test binary plays three parts: the misbehaving agents of
// sandboxtest, the scripted agent (`agent-run scripted --script F`, as ptb
// would run it), and a harness that a test SIGKILLs (harnessEnv).
const harnessEnv = "PTB_PIPELINE_TEST_HARNESS"

func TestMain(m *testing.M) {
	sandboxtest.HelperMain(nil)
	if len(os.Args) > 5 && os.Args[1] == "sandbox-init" && os.Args[2] == "--forward" && os.Args[4] == "--" {
		// The test binary plays `ptb sandbox-init` for the gateway network.
		f, err := relay.ParseForward(os.Args[3])
		if err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(2)
		}
		os.Exit(relay.Init(context.Background(), []relay.Forward{f}, os.Args[5:], os.Environ(), os.Stdin, os.Stdout, os.Stderr))
	}
	if len(os.Args) > 4 && os.Args[1] == "agent-run" && os.Args[2] == "scripted" {
		os.Exit(scripted.Main(context.Background(), os.Args[4], os.Stdout, os.Stderr))
	}
	if dir, ok := os.LookupEnv(harnessEnv); ok {
		var b sandbox.Backend = bwrap.New()
		switch os.Getenv(harnessEnv + "_BACKEND") {
		case "none":
			b = none.New()
		case "fake":
			// The first segment of TestResumeAfterHarnessKilled: work, then
			// hang until the harness is killed.
			b = sandboxfake.New(sandboxfake.Step{Files: map[string][]byte{"one.txt": []byte("one\n")}, Hang: true})
		}
		r := newRunner(b)
		r.Scaffold = scriptedScaffold
		_, err := r.Run(context.Background(), rundir.Dir(dir))
		if err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func self() string {
	exe, _ := os.Executable()
	return exe
}

func newRunner(b sandbox.Backend) *pipeline.Runner {
	return &pipeline.Runner{Registry: registry.Default(), Sandbox: b, Self: self(), Version: "test", RepromptBackoff: 10 * time.Millisecond, LookupEnv: os.LookupEnv}
}

func scriptedScaffold(req pipeline.ScaffoldRequest) (agent.Scaffold, error) {
	b, err := os.ReadFile(req.Script)
	if err != nil {
		return nil, err
	}
	return &scripted.Scaffold{Binary: self(), Script: b}, nil
}

// helperScaffold launches the test binary in a sandboxtest helper mode.
type helperScaffold struct {
	mode, marker string
	secrets      map[string][]byte // home files that hold credentials
}

func (h *helperScaffold) Name() string                   { return "helper" }
func (h *helperScaffold) Version(context.Context) string { return "test" }
func (h *helperScaffold) Command(context.Context, agent.Launch) (agent.Command, error) {
	c := agent.Command{Argv: []string{self(), h.marker}, Env: []string{sandboxtest.HelperEnv + "=" + h.mode}, HomeFiles: h.secrets}
	for name := range h.secrets {
		c.Secrets = append(c.Secrets, name)
	}
	return c, nil
}

// outRoot is a run root outside /tmp, so that the sandbox's private /tmp
// does not mask writes to the host's copy of the run directory.
func outRoot(t *testing.T) string {
	base := "/var/tmp"
	if _, err := os.Stat(base); err != nil {
		base = ""
	}
	d, err := os.MkdirTemp(base, "ptb-pipeline-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func bwrapOrSkip(t *testing.T) sandbox.Backend {
	t.Helper()
	b := bwrap.New()
	if err := b.Check(context.Background()); err != nil {
		t.Skipf("bwrap unavailable: %v", err)
	}
	return b
}

// onBackends runs f on bwrap (skipped where it cannot run) and, where the
// test means something without a real sandbox, on the fake backend
// playing fake: the pipeline's side of the test runs on any machine.
func onBackends(t *testing.T, fake []sandboxfake.Step, f func(t *testing.T, b sandbox.Backend)) {
	t.Run("bwrap", func(t *testing.T) { f(t, bwrapOrSkip(t)) })
	if fake != nil {
		t.Run("fake", func(t *testing.T) { f(t, sandboxfake.New(fake...)) })
	}
}

// isFake reports whether b is the fake backend, for the checks that only
// a real agent process can meet (what the scripted agent itself prints).
func isFake(b sandbox.Backend) bool { return b.Capabilities().Name == sandboxfake.Name }

// helperSteps is the fake backend's play of a sandboxtest helper mode,
// with the helper's own output.
func helperSteps(mode string) []sandboxfake.Step {
	name, arg, _ := strings.Cut(mode, ":")
	switch name {
	case "hang":
		return []sandboxfake.Step{{Stdout: []byte("hanging\n"), Hang: true}}
	case "ignore-term":
		return []sandboxfake.Step{{Stdout: []byte("ignoring SIGTERM\n"), Hang: true, IgnoreTerm: true}}
	case "sleep":
		d, _ := time.ParseDuration(arg)
		return []sandboxfake.Step{{Stdout: []byte("sleeping " + d.String() + "\n"), Sleep: d}}
	case "exit":
		n, _ := strconv.Atoi(arg)
		return []sandboxfake.Step{{Stdout: []byte("exiting with " + arg + "\n"), Exit: n}}
	case "bigline":
		return []sandboxfake.Step{{Stdout: sandboxtest.BigOutput()}}
	case "flood":
		n, _ := strconv.Atoi(arg)
		return []sandboxfake.Step{{Func: func(_ context.Context, p sandboxfake.Proc) int {
			sandboxtest.Flood(p.Stdout, p.Stderr, n)
			return 0
		}}}
	}
	return nil
}

// writeModel is the fake's play of the scripted agent's `model: final_model`
// step: the same tiny model in the workspace.
func writeModel(_ context.Context, p sandboxfake.Proc) int {
	if err := scripted.WriteTinyModel(filepath.Join(p.Dir, "final_model")); err != nil {
		fmt.Fprintln(p.Stderr, err)
		return 1
	}
	return 0
}

func newJob(t *testing.T, seconds float64, script string) (job.Spec, rundir.Dir) {
	t.Helper()
	spec := job.Spec{Agent: "scripted", BaseModel: "qwen3-1.7b", Benchmark: "gsm8k",
		Hours: seconds / 3600, OutRoot: outRoot(t), Grace: time.Second, Eval: job.EvalSpec{Backend: "none"}}
	spec.Script = filepath.Join(spec.OutRoot, "script.yaml")
	if err := os.WriteFile(spec.Script, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := spec.Normalize(registry.Default()); err != nil {
		t.Fatal(err)
	}
	d, err := pipeline.Create(spec, registry.Default(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return spec, d
}

func validate(t *testing.T, d rundir.Dir) *result.Result {
	t.Helper()
	b, err := os.ReadFile(d.Path(rundir.ResultFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := result.ValidateJSON(b); err != nil {
		t.Fatalf("result.json does not validate: %v\n%s", err, b)
	}
	r, err := result.Read(d.Path(rundir.ResultFile))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

const normalScript = `steps:
  - say: "Training."
  - run: "bash timer.sh > timer.out; echo hello > hello.txt"
  - model: final_model
  - run: "ln -s /etc/passwd final_model/leak; mkdir -p data; echo '{\"q\": 1}' > data/train.jsonl"
final: "Done."
`

func TestRunNormalCompletion(t *testing.T) {
	onBackends(t, []sandboxfake.Step{{
		Files:  map[string][]byte{"hello.txt": []byte("hello\n"), "data/train.jsonl": []byte(`{"q": 1}` + "\n")},
		Links:  map[string]string{"final_model/leak": "/etc/passwd"},
		Stdout: []byte(`{"type":"tool_call","name":"run"}` + "\n" + `{"type":"result","final_message":"Done."}` + "\n"),
		Func:   writeModel,
	}}, func(t *testing.T, b sandbox.Backend) {
		_, d := newJob(t, 60, normalScript)
		r := newRunner(b)
		r.Scaffold = scriptedScaffold
		res, err := r.Run(context.Background(), d)
		if err != nil {
			t.Fatal(err)
		}
		got := validate(t, d)
		if got.RunID != res.RunID || got.Solve == nil {
			t.Fatalf("record: %+v", got)
		}
		s := got.Solve
		if s.EndReason != result.EndExited || s.ExitCode == nil || *s.ExitCode != 0 || s.Segments != 1 || !s.FinalModel {
			t.Errorf("solve = %+v", s)
		}
		if s.ProtectedOK == nil || !*s.ProtectedOK {
			t.Errorf("protected files reported changed: %+v", got.Warnings)
		}
		if got.Verdict != result.VerdictUnverified || got.Stages[result.StageAudit].Status != result.StatusSkipped {
			t.Errorf("verdict %s, audit %+v: an unimplemented audit must leave the run unverified", got.Verdict, got.Stages[result.StageAudit])
		}
		if got.Sandbox.Backend != b.Capabilities().Name || got.Sandbox.Unsandboxed || got.Sandbox.Network != "none" {
			t.Errorf("sandbox = %+v", got.Sandbox)
		}
		// timer.sh printed the remaining time in the original's format.
		timer, _ := os.ReadFile(d.Path(rundir.Workspace, "timer.out"))
		if !isFake(b) && !strings.HasPrefix(string(timer), "Remaining time (hours:minutes):\n0:0") {
			t.Errorf("timer.sh printed %q", timer)
		}
		// final_model was copied with hashes; the symlink to /etc/passwd was refused.
		sums, err := os.ReadFile(d.Path(rundir.FinalModelSum))
		if err != nil || !strings.Contains(string(sums), "  model.safetensors\n") || !strings.Contains(string(sums), "  config.json\n") {
			t.Errorf("final_model.sha256 = %q, %v", sums, err)
		}
		if _, err := os.Lstat(d.Path(rundir.FinalModel, "leak")); err == nil {
			t.Errorf("a symlink to /etc/passwd was copied out of final_model")
		}
		if !strings.Contains(got.Stages[result.StageCollect].Reason, "links outside the job") {
			t.Errorf("collect did not report the refused link: %q", got.Stages[result.StageCollect].Reason)
		}
		// The snapshot keeps data but not weights.
		if _, err := os.Stat(d.Path(rundir.Snapshot, "data", "train.jsonl")); err != nil {
			t.Errorf("snapshot lacks data/train.jsonl: %v", err)
		}
		if _, err := os.Stat(d.Path(rundir.Snapshot, "final_model")); err == nil {
			t.Errorf("snapshot holds final_model")
		}
		// The raw trace has the tool calls; the prompt was passed through.
		trace, _ := os.ReadFile(d.Path(rundir.TraceRaw))
		if !bytes.Contains(trace, []byte(`"type":"tool_call"`)) || !bytes.Contains(trace, []byte(`"final_message":"Done."`)) {
			t.Errorf("trace = %s", trace)
		}
		// A second run of the same directory redoes nothing.
		before, _ := os.ReadFile(d.Path(rundir.SolveStateFile))
		if _, err := r.Run(context.Background(), d); err != nil {
			t.Fatal(err)
		}
		after, _ := os.ReadFile(d.Path(rundir.SolveStateFile))
		if !bytes.Equal(before, after) {
			t.Errorf("re-running a finished job touched the solve state")
		}
	})
}

func TestRunWriteOutsideWorkspaceFails(t *testing.T) {
	b := bwrapOrSkip(t)
	spec, d := newJob(t, 60, "")
	script := `steps:
  - run: "echo x > ../escaped.txt; echo x > ` + spec.OutRoot + `/escaped.txt; echo x > /etc/escaped.txt; echo x > $HOME/../escaped2.txt; echo inside > ok.txt"
final: "done"
`
	os.WriteFile(spec.Script, []byte(script), 0o644)
	r := newRunner(b)
	r.Scaffold = scriptedScaffold
	if _, err := r.Run(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{d.Path("escaped.txt"), filepath.Join(spec.OutRoot, "escaped.txt"), "/etc/escaped.txt", d.Path("escaped2.txt")} {
		if _, err := os.Stat(p); err == nil {
			os.Remove(p)
			t.Errorf("the agent wrote %s outside its workspace", p)
		}
	}
	if _, err := os.Stat(d.Path(rundir.Workspace, "ok.txt")); err != nil {
		t.Errorf("the write inside the workspace failed: %v", err)
	}
	trace, _ := os.ReadFile(d.Path(rundir.TraceRaw))
	if n := bytes.Count(trace, []byte("Read-only file system")); n < 3 {
		t.Errorf("want 3+ read-only errors in the trace, got %d: %s", n, trace)
	}
}

// runHelper runs a job whose agent is the test binary in a helper mode.
func runHelper(t *testing.T, mode string, seconds float64, grace time.Duration, mods ...func(*job.Spec)) (rundir.Dir, *result.Result, string) {
	t.Helper()
	return runHelperOn(t, bwrapOrSkip(t), mode, seconds, grace, mods...)
}

// runHelperOn is runHelper on backend b.
func runHelperOn(t *testing.T, b sandbox.Backend, mode string, seconds float64, grace time.Duration, mods ...func(*job.Spec)) (rundir.Dir, *result.Result, string) {
	t.Helper()
	spec, d := newJob(t, seconds, "")
	spec.Grace = grace
	for _, m := range mods {
		m(&spec)
	}
	// Rewrite job.json with the grace period.
	if err := d.WriteJSON(rundir.JobFile, spec); err != nil {
		t.Fatal(err)
	}
	marker := "ptb-pipeline-marker:" + string(d)
	r := newRunner(b)
	r.Scaffold = func(pipeline.ScaffoldRequest) (agent.Scaffold, error) {
		return &helperScaffold{mode: mode, marker: marker}, nil
	}
	if _, err := r.Run(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	return d, validate(t, d), marker
}

func markerAlive(marker string) []int {
	var pids []int
	for _, p := range proctree.List() {
		b, _ := os.ReadFile(filepath.Join("/proc", itoa(p.PID), "cmdline"))
		if bytes.Contains(b, []byte(marker)) && p.Comm != "bwrap" && proctree.Alive(p.PID) {
			pids = append(pids, p.PID)
		}
	}
	return pids
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestDeadlineKillsHangingAgent(t *testing.T) {
	onBackends(t, helperSteps("hang"), func(t *testing.T, b sandbox.Backend) {
		start := time.Now()
		_, res, marker := runHelperOn(t, b, "hang", 2, 5*time.Second)
		took := time.Since(start)
		s := res.Solve
		if s.EndReason != result.EndDeadline {
			t.Fatalf("end reason %q, want deadline", s.EndReason)
		}
		if s.Signal != "SIGTERM" {
			t.Errorf("signal %q: a process that honours SIGTERM should die of it", s.Signal)
		}
		if s.TimeTakenS < 1.9 || s.TimeTakenS > 2+5 {
			t.Errorf("time taken %.2fs, want the 2 s budget (plus at most the grace)", s.TimeTakenS)
		}
		if took > 30*time.Second {
			t.Errorf("the job took %v", took)
		}
		if left := markerAlive(marker); len(left) > 0 {
			t.Errorf("agent processes left: %v", left)
		}
	})
}

func TestDeadlineSIGKILLsAgentIgnoringTERM(t *testing.T) {
	onBackends(t, helperSteps("ignore-term"), func(t *testing.T, b sandbox.Backend) {
		// A budget of 4 s: the helper must have set its TERM handler
		// before the deadline (under bwrap on a loaded 2-core CI machine
		// it had not after 1 s, and died of the TERM).
		const budget = 4
		_, res, marker := runHelperOn(t, b, "ignore-term", budget, time.Second)
		s := res.Solve
		if s.EndReason != result.EndDeadline || s.Signal != "SIGKILL" {
			t.Errorf("solve = %+v, want deadline and SIGKILL", s)
		}
		if s.TimeTakenS < budget+0.9 {
			t.Errorf("time taken %.2fs: the grace of 1 s was not given", s.TimeTakenS)
		}
		if left := markerAlive(marker); len(left) > 0 {
			t.Errorf("agent processes left: %v", left)
		}
	})
}

func TestDeadlineReapsGrandchildren(t *testing.T) {
	_, res, marker := runHelper(t, "fork", 2, 500*time.Millisecond)
	if res.Solve.EndReason != result.EndDeadline {
		t.Errorf("end reason %q", res.Solve.EndReason)
	}
	if left := markerAlive(marker); len(left) > 0 {
		t.Errorf("descendants left after the deadline: %v", left)
	}
	// The helper's three grandchildren started before the deadline.
	trace, _ := os.ReadFile(string(markerDir(marker)) + "/" + rundir.TraceRaw)
	if !bytes.Contains(trace, []byte("forked")) {
		t.Errorf("helper did not fork: %q", trace)
	}
}

func markerDir(marker string) string { return strings.TrimPrefix(marker, "ptb-pipeline-marker:") }

func TestOutputKeptByteForByte(t *testing.T) {
	onBackends(t, helperSteps("bigline"), func(t *testing.T, b sandbox.Backend) {
		d, res, _ := runHelperOn(t, b, "bigline", 60, time.Second)
		if res.Solve.EndReason != result.EndExited {
			t.Fatalf("solve = %+v", res.Solve)
		}
		want := sandboxtest.BigOutput()
		raw, _ := os.ReadFile(d.Path(rundir.TraceRaw))
		if !bytes.Equal(raw, want) {
			t.Errorf("raw trace: %d bytes, want %d identical bytes", len(raw), len(want))
		}
		log, _ := os.ReadFile(d.Path(rundir.TraceLog))
		lines := bytes.Split(bytes.TrimSuffix(log, []byte("\n")), []byte("\n"))
		if len(lines) != 3 {
			t.Fatalf("output.log has %d lines, want 3", len(lines))
		}
		wantLines := bytes.Split(want, []byte("\n"))
		tags := []string{" stdout ", " stdout ", " stdout~ "}
		for i, l := range lines {
			ts, rest, _ := bytes.Cut(l, []byte(" "))
			if _, err := time.Parse(time.RFC3339Nano, string(ts)); err != nil {
				t.Errorf("line %d: bad timestamp %q", i, ts)
			}
			if !bytes.HasPrefix(append([]byte(" "), rest...), []byte(tags[i])) {
				t.Errorf("line %d: tag %q, want %q", i, rest[:min(10, len(rest))], tags[i])
			}
			if got := rest[len(tags[i])-1:]; !bytes.Equal(got, wantLines[i]) {
				t.Errorf("line %d: %d bytes, want %d identical bytes", i, len(got), len(wantLines[i]))
			}
		}
	})
}

// The harness is SIGKILLed mid-solve; --resume finishes the job with the
// time that was left, in the same workspace, without redoing prepare.
func TestResumeAfterHarnessKilled(t *testing.T) {
	onBackends(t, []sandboxfake.Step{{
		Files:  map[string][]byte{"two.txt": []byte("two\n")},
		Stdout: []byte(`{"type":"result","final_message":"finished after resume"}` + "\n"),
		Func:   writeModel,
	}}, func(t *testing.T, b sandbox.Backend) {
		script := `steps:
  - run: "echo one > one.txt"
  - sleep: 3s
  - run: "echo two > two.txt"
  - model: final_model
final: "finished after resume"
`
		_, d := newJob(t, 120, script)
		h := exec.Command(self(), "-test.run=^$")
		h.Env = append(os.Environ(), harnessEnv+"="+string(d))
		if isFake(b) {
			h.Env = append(h.Env, harnessEnv+"_BACKEND=fake")
		}
		var hout bytes.Buffer
		h.Stdout, h.Stderr = &hout, &hout
		if err := h.Start(); err != nil {
			t.Fatal(err)
		}
		one := d.Path(rundir.Workspace, "one.txt")
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, err := os.Stat(one); err == nil {
				break
			}
			if time.Now().After(deadline) {
				h.Process.Kill()
				t.Fatalf("agent never wrote one.txt: %s", hout.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(pipeline.Heartbeat + 500*time.Millisecond) // let a heartbeat land
		prepared, _ := os.ReadFile(d.Path(rundir.ProtectedFile))
		h.Process.Signal(syscall.SIGKILL)
		h.Wait()

		man, _ := pipeline.LoadManifest(d)
		if st := man.Stages[result.StageSolve].Status; st != result.StatusRunning {
			t.Fatalf("after the crash the solve stage is %q, want running", st)
		}
		r := newRunner(b)
		r.Scaffold = scriptedScaffold
		if _, err := r.Run(context.Background(), d); err != nil {
			t.Fatal(err)
		}
		res := validate(t, d)
		if res.Solve.Segments != 2 || res.Solve.EndReason != result.EndExited || !res.Solve.FinalModel {
			t.Errorf("solve = %+v", res.Solve)
		}
		if _, err := os.Stat(d.Path(rundir.Workspace, "two.txt")); err != nil {
			t.Errorf("the resumed agent did not finish its work: %v", err)
		}
		var st rundir.SolveState
		sb, _ := os.ReadFile(d.Path(rundir.SolveStateFile))
		json.Unmarshal(sb, &st)
		first, second := st.Segments[0], st.Segments[1]
		if first.EndReason != "harness_died" {
			t.Errorf("first segment ended %q, want harness_died", first.EndReason)
		}
		spentFirst := first.End.Sub(first.Start)
		if spentFirst < pipeline.Heartbeat {
			t.Errorf("first segment counted %v; the time before the crash must count", spentFirst)
		}
		if got, want := second.Deadline.Sub(second.Start), 120*time.Second-spentFirst; got < want-time.Second || got > want+time.Second {
			t.Errorf("second segment was given %v, want the %v that was left", got, want)
		}
		if res.Solve.TimeTakenS < spentFirst.Seconds() {
			t.Errorf("time taken %.1fs does not include the first segment's %.1fs", res.Solve.TimeTakenS, spentFirst.Seconds())
		}
		trace, _ := os.ReadFile(d.Path(rundir.TraceRaw))
		wants := []string{`"type":"ptb.segment"`, `"continue":true`, `"resumed_at_step":1`, `"final_message":"finished after resume"`}
		if isFake(b) {
			wants = []string{`"type":"ptb.segment"`, `"final_message":"finished after resume"`} // what the harness and the fake wrote
		}
		for _, want := range wants {
			if !bytes.Contains(trace, []byte(want)) {
				t.Errorf("trace lacks %s", want)
			}
		}
		after, _ := os.ReadFile(d.Path(rundir.ProtectedFile))
		if !bytes.Equal(prepared, after) {
			t.Errorf("prepare was redone on resume")
		}
	})
}

// An agent that exits with at least the reprompt threshold left is
// relaunched with the original's continuation prompt, until less is left.
func TestRepromptRelaunchesEarlyExit(t *testing.T) {
	onBackends(t, helperSteps("sleep:1s"), func(t *testing.T, b sandbox.Backend) {
		threshold := 2 * time.Second
		d, res, _ := runHelperOn(t, b, "sleep:1s", 8, time.Second, func(s *job.Spec) { s.Reprompt = threshold })
		var st rundir.SolveState
		sb, _ := os.ReadFile(d.Path(rundir.SolveStateFile))
		json.Unmarshal(sb, &st)
		if len(st.Segments) < 2 || res.Solve.Segments != len(st.Segments) {
			t.Fatalf("%d segments (record %d), want at least 2", len(st.Segments), res.Solve.Segments)
		}
		budget := 8 * time.Second
		var spent time.Duration
		for i, g := range st.Segments {
			spent += g.End.Sub(g.Start)
			left := budget - spent
			last := i == len(st.Segments)-1
			if g.EndReason != result.EndExited {
				t.Errorf("segment %d ended %s", g.N, g.EndReason)
			}
			if !last && left < threshold {
				t.Errorf("segment %d was followed by a reprompt with only %v left", g.N, left)
			}
			if last && left-st.Waited >= threshold { // the waits between reprompts count too
				t.Errorf("the last segment left %v, yet no reprompt followed", left-st.Waited)
			}
			if want := map[bool]string{true: "start", false: "reprompt"}[i == 0]; g.Kind != want {
				t.Errorf("segment %d kind %q, want %q", g.N, g.Kind, want)
			}
		}
		trace, _ := os.ReadFile(d.Path(rundir.TraceRaw))
		if n := bytes.Count(trace, []byte(`"reason":"reprompt"`)); n != len(st.Segments)-1 {
			t.Errorf("%d reprompt markers in the trace, want %d", n, len(st.Segments)-1)
		}
		if !bytes.Contains(trace, []byte("Please continue improving your result and maximize performance.")) {
			t.Errorf("the continuation prompt is not recorded in the trace")
		}
	})
}

func TestRepromptNote(t *testing.T) {
	if got, want := pipeline.RepromptNote(9*time.Hour+30*time.Minute+59*time.Second), "You still have 9h 30m remaining. Please continue improving your result and maximize performance."; got != want {
		t.Errorf("RepromptNote = %q, want %q", got, want)
	}
}

// Ctrl-C (the run's context ending) stops the agent with TERM and grace,
// marks the solve failed as interrupted, and --resume continues it with the
// time that was left.
func TestInterruptThenResume(t *testing.T) {
	onBackends(t, []sandboxfake.Step{
		{Files: map[string][]byte{"one.txt": []byte("one\n")}, Hang: true},
		{Stdout: []byte(`{"type":"result","final_message":"done after the interruption"}` + "\n"), Func: writeModel},
	}, func(t *testing.T, b sandbox.Backend) {
		script := `steps:
  - run: "echo one > one.txt"
  - sleep: 2s
  - model: final_model
final: "done after the interruption"
`
		_, d := newJob(t, 120, script)
		r := newRunner(b)
		r.Scaffold = scriptedScaffold
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			_, err := r.Run(ctx, d)
			errc <- err
		}()
		one := d.Path(rundir.Workspace, "one.txt")
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if _, err := os.Stat(one); err == nil {
				break
			}
			if time.Now().After(deadline) {
				cancel()
				t.Fatal("the agent never wrote one.txt")
			}
		}
		cancel()
		err := <-errc
		if err == nil || !strings.Contains(err.Error(), "resume with: ptb run --resume") {
			t.Fatalf("interrupted run returned %v, want the resume hint", err)
		}
		man, _ := pipeline.LoadManifest(d)
		if st := man.Stages[result.StageSolve]; st.Status != result.StatusFailed || !strings.Contains(st.Error, "interrupted") {
			t.Errorf("solve stage after the interrupt: %+v", st)
		}
		if _, err := os.Stat(d.Path(rundir.ResultFile)); err == nil {
			t.Errorf("an interrupted run wrote result.json")
		}
		if _, err := r.Run(context.Background(), d); err != nil {
			t.Fatal(err)
		}
		res := validate(t, d)
		if res.Solve.Segments != 2 || !res.Solve.FinalModel || res.Solve.EndReason != result.EndExited {
			t.Errorf("solve after resume = %+v", res.Solve)
		}
		var st rundir.SolveState
		b2, _ := os.ReadFile(d.Path(rundir.SolveStateFile))
		json.Unmarshal(b2, &st)
		if st.Segments[0].EndReason != "interrupted" || st.Segments[1].Kind != "resume" {
			t.Errorf("segments: %+v", st.Segments)
		}
	})
}

// A credentials file the scaffold puts into the sandbox is named in the
// record's warnings, and reaches the agent's HOME.
func TestSecretsAreRecorded(t *testing.T) {
	onBackends(t, helperSteps("exit:0"), func(t *testing.T, b sandbox.Backend) {
		_, d := newJob(t, 60, "")
		r := newRunner(b)
		r.Scaffold = func(pipeline.ScaffoldRequest) (agent.Scaffold, error) {
			return &helperScaffold{mode: "exit:0", marker: "secrets", secrets: map[string][]byte{".claude/.credentials.json": []byte(`{"token":"t"}`)}}, nil
		}
		res, err := r.Run(context.Background(), d)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(res.Warnings, "\n"), "a secret entered the sandbox: .claude/.credentials.json") {
			t.Errorf("warnings %q do not name the secret", res.Warnings)
		}
		if _, err := os.Stat(d.Path(rundir.Home, ".claude", ".credentials.json")); err != nil {
			t.Errorf("the credentials file is not in the agent's HOME: %v", err)
		}
	})
}

// An agent flooding its output (64 MiB as fast as it can) loses nothing:
// the raw trace has every byte, the timestamped log every line.
func TestOutputFloodKept(t *testing.T) {
	onBackends(t, helperSteps("flood:64"), func(t *testing.T, b sandbox.Backend) {
		d, res, _ := runHelperOn(t, b, "flood:64", 120, time.Second)
		if res.Solve.EndReason != result.EndExited {
			t.Fatalf("solve = %+v", res.Solve)
		}
		raw, err := os.ReadFile(d.Path(rundir.TraceRaw))
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.Count(raw, []byte("\n"))
		if len(raw) < 64<<20 || !bytes.HasSuffix(raw, []byte("fill the disk quickly\n")) {
			t.Errorf("raw trace: %d bytes, want at least 64 MiB ending in a whole line", len(raw))
		}
		last := raw[bytes.LastIndexByte(raw[:len(raw)-1], '\n')+1:]
		if n, _ := strconv.Atoi(string(bytes.Fields(last)[0])); n != lines-1 {
			t.Errorf("last line is number %d, but the trace has %d lines: lines were lost", n, lines)
		}
		f, err := os.Open(d.Path(rundir.TraceLog))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var out, errLines int
		br := bufio.NewReaderSize(f, 1<<20)
		for {
			l, err := br.ReadSlice('\n')
			if len(l) > 0 {
				if bytes.Contains(l, []byte(" stdout ")) {
					out++
				} else if bytes.Contains(l, []byte(" stderr progress ")) {
					errLines++
				}
			}
			if err != nil {
				break
			}
		}
		if out != lines || errLines != (lines+999)/1000 {
			t.Errorf("output.log has %d stdout and %d stderr lines, want %d and %d", out, errLines, lines, (lines+999)/1000)
		}
	})
}

// An agent that exits at once is reprompted with a doubling wait, not in a
// tight loop that would burn through MaxSegments in seconds.
func TestRepromptBacksOffShortSessions(t *testing.T) {
	onBackends(t, helperSteps("exit:0"), func(t *testing.T, b sandbox.Backend) {
		_, res, _ := runHelperOn(t, b, "exit:0", 3, time.Second, func(s *job.Spec) { s.Reprompt = time.Second })
		if res.Stages[result.StageSolve].Status != result.StatusDone {
			t.Fatalf("solve stage %+v", res.Stages[result.StageSolve])
		}
		if n := res.Solve.Segments; n < 2 || n > 20 {
			t.Errorf("%d segments in a 3 s budget with a 10 ms doubling backoff; want a handful", n)
		}
	})
}

// What an agent can plant to turn a root harness against the host: a
// timer.sh symlinked to a host file (rewritten at every relaunch), a FIFO
// and a /dev/zero link among the protected templates (hashed at collect),
// and directory loops in final_model (copied at collect).
func TestHarnessIgnoresPlantedLinks(t *testing.T) {
	victim := filepath.Join(outRoot(t), "victim")
	onBackends(t, []sandboxfake.Step{{
		Func: func(ctx context.Context, p sandboxfake.Proc) int {
			if code := writeModel(ctx, p); code != 0 {
				return code
			}
			return plant(p.Dir, victim)
		},
	}, {Exit: 0}}, func(t *testing.T, b sandbox.Backend) {
		if err := os.WriteFile(victim, []byte("host data\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		spec, d := newJob(t, 6, "")
		script := `steps:
  - run: "rm -f timer.sh && ln -s ` + victim + ` timer.sh && mkdir -p templates && mkfifo templates/fifo.jinja && ln -s /dev/zero templates/zero.jinja"
  - model: final_model
  - run: "head -c 100000 /dev/urandom > final_model/big.bin && ln -s . final_model/loop && ln -s .. final_model/up && ln -s big.bin final_model/again.bin"
final: "planted"
`
		os.WriteFile(spec.Script, []byte(script), 0o644)
		spec.Reprompt = time.Second // relaunch: the harness rewrites timer.sh
		if err := d.WriteJSON(rundir.JobFile, spec); err != nil {
			t.Fatal(err)
		}
		r := newRunner(b)
		r.Scaffold = scriptedScaffold
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		res, err := r.Run(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(victim); string(got) != "host data\n" {
			t.Errorf("the harness wrote through the agent's symlink: victim now %q", got)
		}
		if res.Solve.Segments < 2 {
			t.Errorf("no relaunch happened (%d segments): the timer.sh rewrite was not exercised", res.Solve.Segments)
		}
		if res.Solve.ProtectedOK == nil || *res.Solve.ProtectedOK {
			t.Errorf("planted templates not reported as changed: %v", res.Warnings)
		}
		var size int64
		filepath.Walk(d.Path(rundir.FinalModel), func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				size += fi.Size()
			}
			return nil
		})
		if size > 10<<20 {
			t.Errorf("collect copied %d bytes out of a final_model of about 100 kB", size)
		}
		if _, err := os.Stat(d.Path(rundir.FinalModel, "again.bin")); err != nil {
			t.Errorf("a link to a file inside final_model was not copied: %v", err)
		}
	})
}

// With the none backend a process the agent left behind survives the
// harness's death (only the agent itself dies with it); the resumed solve
// kills it before relaunching the agent.
func TestResumeReapsLeftoversOfDeadHarness(t *testing.T) {
	script := `steps:
  - run: "sleep 300 > /dev/null 2>&1 & echo $! > bg.pid"
  - sleep: 5s
  - model: final_model
final: "done"
`
	_, d := newJob(t, 120, script)
	h := exec.Command(self(), "-test.run=^$")
	h.Env = append(os.Environ(), harnessEnv+"="+string(d), harnessEnv+"_BACKEND=none")
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	pidFile := d.Path(rundir.Workspace, "bg.pid")
	var pid int
	for deadline := time.Now().Add(30 * time.Second); pid == 0; time.Sleep(50 * time.Millisecond) {
		if b, err := os.ReadFile(pidFile); err == nil {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		if time.Now().After(deadline) {
			h.Process.Kill()
			t.Fatal("the agent never started its background process")
		}
	}
	time.Sleep(pipeline.Heartbeat + 500*time.Millisecond)
	h.Process.Signal(syscall.SIGKILL)
	h.Wait()
	defer syscall.Kill(pid, syscall.SIGKILL)
	time.Sleep(200 * time.Millisecond)
	if !proctree.Alive(pid) {
		t.Skip("the background process died with the harness here; nothing to reap")
	}
	r := newRunner(none.New())
	r.Scaffold = scriptedScaffold
	if _, err := r.Run(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if proctree.Alive(pid) {
		t.Errorf("process %d left by the dead harness's agent still runs after the resume", pid)
	}
}

// plant is the fake's play of the planting steps of
// TestHarnessIgnoresPlantedLinks, in the agent's workspace dir.
func plant(dir, victim string) int {
	fm := filepath.Join(dir, "final_model")
	big := make([]byte, 100000)
	for i := range big {
		big[i] = byte(i * 7)
	}
	os.Remove(filepath.Join(dir, "timer.sh"))
	for _, err := range []error{
		os.Symlink(victim, filepath.Join(dir, "timer.sh")),
		os.MkdirAll(filepath.Join(dir, "templates"), 0o755),
		syscall.Mkfifo(filepath.Join(dir, "templates", "fifo.jinja"), 0o644),
		os.Symlink("/dev/zero", filepath.Join(dir, "templates", "zero.jinja")),
		os.WriteFile(filepath.Join(fm, "big.bin"), big, 0o644),
		os.Symlink(".", filepath.Join(fm, "loop")),
		os.Symlink("..", filepath.Join(fm, "up")),
		os.Symlink("big.bin", filepath.Join(fm, "again.bin")),
	} {
		if err != nil {
			return 1
		}
	}
	return 0
}

// The workspace gets templates/ and the files join the protected hashes: an
// agent that rewrites a template is reported.
func TestWorkspaceTemplatesProtected(t *testing.T) {
	onBackends(t, []sandboxfake.Step{{
		Func: func(ctx context.Context, p sandboxfake.Proc) int {
			b, err := os.ReadFile(filepath.Join(p.Dir, "templates", "qwen3.jinja"))
			if err != nil {
				return 1
			}
			os.WriteFile(filepath.Join(p.Dir, "seen.txt"), b, 0o644)
			os.WriteFile(filepath.Join(p.Dir, "templates", "qwen3.jinja"), []byte("{{ \"the answer is 18\" }}\n"), 0o644)
			return writeModel(ctx, p)
		},
	}}, func(t *testing.T, b sandbox.Backend) {
		_, d := newJob(t, 60, `steps:
  - run: "cat templates/qwen3.jinja > seen.txt; echo '{{ \"the answer is 18\" }}' > templates/qwen3.jinja"
  - model: final_model
final: "Done."
`)
		r := newRunner(b)
		r.Scaffold = scriptedScaffold
		r.Templates = fstest.MapFS{"qwen3.jinja": {Data: []byte("{{ messages }}\n")}, "gemma3.jinja": {Data: []byte("{{ gemma }}\n")}}
		if _, err := r.Run(context.Background(), d); err != nil {
			t.Fatal(err)
		}
		var prot pipeline.Protected
		if err := d.ReadJSON(rundir.ProtectedFile, &prot); err != nil {
			t.Fatal(err)
		}
		want := sha256.Sum256([]byte("{{ messages }}\n"))
		if got := prot.Files["templates/qwen3.jinja"]; got != hex.EncodeToString(want[:]) {
			t.Errorf("protected.json templates/qwen3.jinja = %q, want %x (files %v)", got, want, prot.Files)
		}
		if _, ok := prot.Files["templates/gemma3.jinja"]; !ok {
			t.Errorf("protected.json lacks templates/gemma3.jinja: %v", prot.Files)
		}
		seen, _ := os.ReadFile(d.Path(rundir.Workspace, "seen.txt"))
		if string(seen) != "{{ messages }}\n" {
			t.Errorf("the agent saw templates/qwen3.jinja as %q", seen)
		}
		got := validate(t, d)
		if got.Solve == nil || got.Solve.ProtectedOK == nil || *got.Solve.ProtectedOK {
			t.Errorf("a rewritten template was not reported: solve %+v", got.Solve)
		}
		if !strings.Contains(strings.Join(got.Warnings, "\n"), "templates/qwen3.jinja") {
			t.Errorf("warnings %v do not name templates/qwen3.jinja", got.Warnings)
		}
	})
}

// Of many starts racing to create one run id, one creates it and the
// others find it whole.
func TestCreateWithIDRace(t *testing.T) {
	reg := registry.Default()
	spec := job.Spec{Agent: "scripted", Script: "/s.yaml", BaseModel: "qwen3-1.7b", Benchmark: "gsm8k", Sandbox: "none", OutRoot: t.TempDir()}
	if err := spec.Normalize(reg); err != nil {
		t.Fatal(err)
	}
	const n = 8
	created := make(chan bool, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, c, err := pipeline.CreateWithID(spec, "cell", time.Now())
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := pipeline.LoadSpec(d); err != nil {
				t.Errorf("a start found the run without its job.json: %v", err)
			}
			created <- c
		}()
	}
	wg.Wait()
	close(created)
	got := 0
	for c := range created {
		if c {
			got++
		}
	}
	if got != 1 {
		t.Errorf("%d starts created the run, want 1", got)
	}
	ents, _ := os.ReadDir(spec.OutRoot)
	if len(ents) != 1 || ents[0].Name() != "cell" {
		t.Errorf("output root: %v, want only cell", ents)
	}
	if _, _, err := pipeline.CreateWithID(spec, "../x", time.Now()); err == nil {
		t.Error("run id ../x was accepted")
	}
}

// A job that asks for what the backend cannot enforce fails before the
// agent starts, saying what and which backend.
func TestSolveRefusesWhatTheBackendCannotDo(t *testing.T) {
	cases := []struct {
		name    string
		network sandbox.Network
		caps    sandbox.Capabilities
		want    string
	}{
		{"host network", sandbox.NetworkHost,
			sandbox.Capabilities{Name: "nohost", Isolated: true, Networks: []sandbox.Network{sandbox.NetworkNone}, SamePaths: true, ReadOnlyHost: true},
			`sandbox nohost: cannot enforce network "host"`},
		{"read-only paths", sandbox.NetworkNone,
			sandbox.Capabilities{Name: "noro", Isolated: true, Networks: []sandbox.Network{sandbox.NetworkNone}, SamePaths: true},
			"sandbox noro: cannot show host paths read-only"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := sandboxfake.New(sandboxfake.Step{Files: map[string][]byte{"started": nil}}).WithCapabilities(c.caps)
			spec, d := newJob(t, 60, "")
			spec.Network = c.network
			if err := d.WriteJSON(rundir.JobFile, spec); err != nil {
				t.Fatal(err)
			}
			r := newRunner(b)
			r.Scaffold = func(pipeline.ScaffoldRequest) (agent.Scaffold, error) {
				return &helperScaffold{mode: "exit:0", marker: "caps"}, nil
			}
			if _, err := r.Run(context.Background(), d); err != nil {
				t.Fatal(err)
			}
			res := validate(t, d)
			if res.Solve == nil || res.Solve.EndReason != result.EndHarnessError || !strings.Contains(res.Solve.Error, c.want) {
				t.Errorf("solve %+v, want a harness error containing %q", res.Solve, c.want)
			}
			if n := len(b.Started()); n != 0 {
				t.Errorf("the backend was asked to start %d times", n)
			}
			if _, err := os.Stat(d.Path(rundir.Workspace, "started")); err == nil {
				t.Errorf("the agent started")
			}
		})
	}
}
