package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/campaign"
	"github.com/ptb-dev/ptb/internal/pipeline"
	"github.com/ptb-dev/ptb/internal/rundir"
)

// runIDFixture has a quick script (leaves final_model at once), a slow one
// (sleeps, then leaves it) and a stand-in nvidia-smi that knows GPUs 0-3.
type runIDFixture struct {
	quick, slow, bin, out string
}

func newRunIDFixture(t *testing.T) runIDFixture {
	t.Helper()
	dir := t.TempDir()
	f := runIDFixture{quick: filepath.Join(dir, "quick.yaml"), slow: filepath.Join(dir, "slow.yaml"), bin: filepath.Join(dir, "bin"), out: filepath.Join(dir, "runs")}
	os.WriteFile(f.quick, []byte("steps:\n  - model: final_model\nfinal: done\n"), 0o644)
	os.WriteFile(f.slow, []byte("steps:\n  - sleep: 4s\n  - model: final_model\nfinal: done\n"), 0o644)
	os.MkdirAll(f.bin, 0o755)
	fakeTool(t, f.bin, "nvidia-smi", `[ "$1" = "-L" ] && for i in 0 1 2 3; do echo "GPU $i: NVIDIA H100 80GB HBM3 (UUID: GPU-fake-$i)"; done; exit 0`)
	return f
}

// jobArgs are a cell's ptb run arguments (as a campaign index holds them).
func (f runIDFixture) jobArgs(script string, extra ...string) []string {
	return append([]string{"--agent", "scripted", "--script", script, "--sandbox", "none", "--base-model", "qwen3-1.7b",
		"--benchmark", "gsm8k", "--hours", "0.02", "--eval-backend", "none", "--monitor-interval", "0"}, extra...)
}

// ptbChild starts the test binary as ptb in a process of its own.
func ptbChild(t *testing.T, path string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	c := exec.Command(os.Args[0], args...)
	c.Env = append(os.Environ(), "PTB_TEST_AS_PTB=1", "PATH="+path+":"+os.Getenv("PATH"))
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	return c, &out
}

func exitOf(t *testing.T, c *exec.Cmd) int {
	t.Helper()
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		c.Process.Kill()
		t.Fatalf("%v did not end", c.Args)
	}
	return c.ProcessState.ExitCode()
}

func readSolve(t *testing.T, run string) rundir.SolveState {
	t.Helper()
	var st rundir.SolveState
	b, err := os.ReadFile(filepath.Join(run, rundir.SolveStateFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// waitSolving waits until the run's agent runs.
func waitSolving(t *testing.T, run string, out *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(filepath.Join(run, rundir.SolveStateFile))
		if err == nil && bytes.Contains(b, []byte(`"end": null`)) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the solve of %s did not start:\n%s", run, out)
}

// ptb run --run-id creates the run, resumes it, leaves a finished run as
// it is, and refuses a start that describes another job.
func TestRunIDIdempotent(t *testing.T) {
	f := newRunIDFixture(t)
	args := append([]string{"run", "--run-id", "cell-a", "--out", f.out}, f.jobArgs(f.quick)...)
	code, _, stderr := runPTB(t, args...)
	if code != 0 {
		t.Fatalf("first start: exit %d\n%s", code, stderr)
	}
	run := filepath.Join(f.out, "cell-a")
	before, err := os.ReadFile(filepath.Join(run, rundir.ResultFile))
	if err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(f.out); len(ents) != 1 {
		t.Errorf("output root holds %d entries, want the one run directory", len(ents))
	}
	code, stdout, stderr := runPTB(t, args...)
	after, _ := os.ReadFile(filepath.Join(run, rundir.ResultFile))
	if code != 0 || !bytes.Equal(before, after) || !strings.Contains(stderr, "is finished; nothing to resume") || !strings.Contains(stdout, "record ") {
		t.Errorf("second start of a finished run: exit %d, result changed %v\n%s\n%s", code, !bytes.Equal(before, after), stdout, stderr)
	}
	// --gpus is no longer refused with --resume: devices are per start.
	if code, _, stderr := runPTB(t, "run", "--resume", run, "--gpus", ""); code != 0 || !strings.Contains(stderr, "is finished") {
		t.Errorf("--resume with --gpus: exit %d\n%s", code, stderr)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{append([]string{"run", "--run-id", "cell-a", "--out", f.out}, f.jobArgs(f.quick, "--seed", "1")...), "seed (stored 0, given 1)"},
		{append([]string{"run", "--run-id", "cell-a", "--out", f.out}, f.jobArgs(f.slow)...), `script (stored "` + f.quick},
		{append([]string{"run", "--run-id", "../escape", "--out", f.out}, f.jobArgs(f.quick)...), "--run-id: run id \"../escape\""},
		{[]string{"run", "--run-id", "cell-a", "--resume", run}, "--run-id and --resume both name the run"},
	} {
		code, _, stderr := runPTB(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("ptb %s: exit %d, want 2 and %q\n%s", strings.Join(c.args[:3], " "), code, c.want, stderr)
		}
	}
	if after, _ := os.ReadFile(filepath.Join(run, rundir.ResultFile)); !bytes.Equal(before, after) {
		t.Error("a refused start changed result.json")
	}
}

// A start that finds the run's lock held exits 5 (busy) and touches
// nothing; after an interrupt the run resumes with the devices of the new
// start and with the time that was left: the time between starts is not
// the agent's.
func TestRunIDBusyAndResumeWithOtherGPUs(t *testing.T) {
	f := newRunIDFixture(t)
	t.Setenv("PATH", f.bin+":"+os.Getenv("PATH"))
	args := append([]string{"run", "--run-id", "cell-b", "--out", f.out}, f.jobArgs(f.slow)...)
	first, out := ptbChild(t, f.bin, append(slices.Clone(args), "--gpus", "0")...)
	run := filepath.Join(f.out, "cell-b")
	waitSolving(t, run, out)

	code, _, stderr := runPTB(t, append(slices.Clone(args), "--gpus", "1")...)
	if code != campaign.ExitBusy || !strings.Contains(stderr, "is busy: another ptb process holds its lock") {
		t.Fatalf("a second start while the first runs: exit %d, want %d (busy)\n%s", code, campaign.ExitBusy, stderr)
	}
	first.Process.Signal(syscall.SIGTERM)
	if code := exitOf(t, first); code != 128+int(syscall.SIGTERM) {
		t.Fatalf("interrupted first start: exit %d, want %d\n%s", code, 128+int(syscall.SIGTERM), out)
	}
	time.Sleep(1500 * time.Millisecond) // queue time: not the agent's
	code, _, stderr = runPTB(t, append(slices.Clone(args), "--gpus", "2,3")...)
	if code != 0 || !strings.Contains(stderr, "resuming "+run) {
		t.Fatalf("resume: exit %d\n%s", code, stderr)
	}
	st := readSolve(t, run)
	if len(st.Segments) != 2 {
		t.Fatalf("segments: %+v", st.Segments)
	}
	s1, s2 := st.Segments[0], st.Segments[1]
	if !slices.Equal(s1.GPUs, []int{0}) || !slices.Equal(s2.GPUs, []int{2, 3}) {
		t.Errorf("segment GPUs %v then %v, want [0] then [2 3]", s1.GPUs, s2.GPUs)
	}
	budget := time.Duration(st.BudgetS * float64(time.Second))
	gotLeft := s2.Deadline.Sub(s2.Start)
	wantLeft := budget - s1.End.Sub(s1.Start)
	if d := gotLeft - wantLeft; d < -time.Second || d > time.Second {
		t.Errorf("the resumed segment had %s left, want %s (budget %s less the first segment's %s)", gotLeft, wantLeft, budget, s1.End.Sub(s1.Start))
	}
	if s2.Start.Sub(*s1.End) < time.Second {
		t.Errorf("the test meant to leave a gap between starts: %s", s2.Start.Sub(*s1.End))
	}
	spec, _ := pipeline.LoadSpec(rundir.Dir(run))
	if !slices.Equal(spec.GPUs, []int{0}) {
		t.Errorf("job.json GPUs = %v, want the creating start's [0]", spec.GPUs)
	}
}
