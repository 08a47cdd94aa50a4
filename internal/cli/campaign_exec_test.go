package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ptb-dev/ptb/internal/campaign"
	"github.com/ptb-dev/ptb/internal/pipeline"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
)

// execCampaign writes a campaign directory under a fresh output root with
// one index entry per cell (run id -> ptb run arguments) and exec.json.
func execCampaign(t *testing.T, f runIDFixture, settings string, cells ...[]string) string {
	t.Helper()
	dir := campaign.Dir(f.out, "c1")
	var entries []campaign.Entry
	for i, c := range cells {
		entries = append(entries, campaign.Entry{Job: campaign.Job{Index: i, RunID: c[0]}, SpecHash: "h", Args: c[1:]})
	}
	if err := campaign.AppendIndex(dir, entries); err != nil {
		t.Fatal(err)
	}
	if settings != "" {
		os.WriteFile(filepath.Join(dir, campaign.ExecFile), []byte(settings), 0o644)
	}
	return dir
}

// exec runs the cell's ptb run and passes its exit status on.
func TestCampaignExecRunsTheCell(t *testing.T) {
	f := newRunIDFixture(t)
	dir := execCampaign(t, f, "", append([]string{"quick-0"}, f.jobArgs(f.quick)...), append([]string{"bad-1"}, f.jobArgs(f.quick, "--out", "/elsewhere")...))
	code, _, stderr := runPTB(t, "campaign", "exec", "--dir", dir, "--index=0", "--preempt", "exit")
	if code != 0 {
		t.Fatalf("exec --index=0: exit %d\n%s", code, stderr)
	}
	if _, err := result.Read(filepath.Join(f.out, "quick-0", rundir.ResultFile)); err != nil {
		t.Fatalf("the cell's run has no record: %v", err)
	}
	// Again: the finished run is left as it is, and exec says so with 0.
	if code, _, stderr := runPTB(t, "campaign", "exec", "--dir", dir, "--run-id=quick-0", "--preempt", "exit"); code != 0 || !strings.Contains(stderr, "is finished") {
		t.Errorf("exec of a finished run: exit %d\n%s", code, stderr)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--index=7", "--preempt", "exit"}, "no job with index 7"},
		{[]string{"--index=0", "--run-id=quick-0", "--preempt", "exit"}, "exactly one of --index=N and --run-id=ID"},
		{[]string{"--index=0", "--preempt", "pbs"}, `--preempt "pbs": want exit or slurm`},
		{[]string{"--index=1", "--preempt", "exit"}, "job bad-1 (index 1) has --out in its arguments"},
		{[]string{"--index=0", "--preempt", "exit", "--gpus", "env:PTB_TEST_GPUS"}, `"gpu:1234" is not a GPU index, CUDAn name or GPU UUID`},
	} {
		t.Setenv("PTB_TEST_GPUS", "gpu:1234")
		code, _, stderr := runPTB(t, append([]string{"campaign", "exec", "--dir", dir}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("exec %v: exit %d, want 2 and %q\n%s", c.args, code, c.want, stderr)
		}
	}
}

// TERM/HUP (preemption) and USR1 (time limit) stop the run cleanly and
// requeue it with exit 75, counted apart and capped by exec.json; the run
// then resumes with the time that was left.
func TestCampaignExecRequeues(t *testing.T) {
	f := newRunIDFixture(t)
	dir := execCampaign(t, f, `{"executor":"local","max_preemptions":1,"max_timeouts":1}`, append([]string{"slow-0"}, f.jobArgs(f.slow)...))
	run := filepath.Join(f.out, "slow-0")
	for i, c := range []struct {
		sig  syscall.Signal
		want int
		rq   campaign.Requeues
	}{
		{syscall.SIGTERM, campaign.ExitRequeue, campaign.Requeues{Preemptions: 1, LastSignal: "SIGTERM"}},
		{syscall.SIGUSR1, campaign.ExitRequeue, campaign.Requeues{Preemptions: 1, Timeouts: 1, LastSignal: "SIGUSR1"}},
		{syscall.SIGHUP, 1, campaign.Requeues{Preemptions: 2, Timeouts: 1, LastSignal: "SIGHUP", GaveUp: "max_preemptions 1"}},
	} {
		c1, out := ptbChild(t, f.bin, "campaign", "exec", "--dir", dir, "--run-id=slow-0", "--preempt", "exit")
		waitSolving(t, run, out)
		c1.Process.Signal(c.sig)
		c1.Process.Signal(c.sig) // a scheduler may signal twice: one stop
		if i == 0 {
			// Slurm signals every process of the step: ptb run gets TERM
			// from the scheduler and from exec, and still stops cleanly.
			for _, pid := range childrenOf(t, c1.Process.Pid) {
				syscall.Kill(pid, syscall.SIGTERM)
			}
		}
		if code := exitOf(t, c1); code != c.want {
			t.Fatalf("stop %d (%s): exec exit %d, want %d\n%s", i, c.sig, code, c.want, out)
		}
		rq, err := campaign.ReadRequeues(dir, "slow-0")
		if err != nil {
			t.Fatal(err)
		}
		rq.LastAt = ""
		if rq != c.rq {
			t.Errorf("after stop %d: requeues %+v, want %+v", i, rq, c.rq)
		}
		if st := readSolve(t, run); len(st.Segments) != i+1 || st.Segments[i].EndReason != "interrupted" {
			t.Fatalf("after stop %d the solve is %+v; want %d segments, the last interrupted (a clean stop)", i, st.Segments, i+1)
		}
	}
	code, _, stderr := runPTB(t, "campaign", "exec", "--dir", dir, "--index=0", "--preempt", "exit")
	if code != 0 {
		t.Fatalf("the last start: exit %d\n%s", code, stderr)
	}
	st := readSolve(t, run)
	if len(st.Segments) != 4 || st.Segments[3].EndReason != result.EndExited {
		t.Errorf("segments %+v, want 4 with the last exited", st.Segments)
	}
	man, _ := pipeline.LoadManifest(rundir.Dir(run))
	if man.Stages[result.StageSolve].Status != result.StatusDone {
		t.Errorf("solve %+v", man.Stages[result.StageSolve])
	}
}

// --preempt slurm requeues the array task with scontrol, then exits 75;
// a run whose lock is held elsewhere gives exec's caller 5 (busy).
func TestCampaignExecSlurmRequeueAndBusy(t *testing.T) {
	f := newRunIDFixture(t)
	calls := filepath.Join(t.TempDir(), "scontrol.calls")
	fakeTool(t, f.bin, "scontrol", `echo "$@" >>`+calls)
	dir := execCampaign(t, f, "", append([]string{"slow-0"}, f.jobArgs(f.slow)...))
	run := filepath.Join(f.out, "slow-0")
	t.Setenv("SLURM_JOB_ID", "99")
	t.Setenv("SLURM_ARRAY_JOB_ID", "12")
	t.Setenv("SLURM_ARRAY_TASK_ID", "3")
	c1, out := ptbChild(t, f.bin, "campaign", "exec", "--dir", dir, "--index=0", "--preempt", "slurm", "--gpus", "env:PTB_TEST_GPUS")
	waitSolving(t, run, out)

	t.Setenv("PATH", f.bin+":"+os.Getenv("PATH"))
	if code, _, stderr := runPTB(t, "campaign", "exec", "--dir", dir, "--index=0", "--preempt", "slurm"); code != campaign.ExitBusy {
		t.Errorf("a second exec while the first runs: exit %d, want %d\n%s", code, campaign.ExitBusy, stderr)
	}
	c1.Process.Signal(syscall.SIGUSR1)
	if code := exitOf(t, c1); code != campaign.ExitRequeue {
		t.Fatalf("exec exit %d, want %d\n%s", code, campaign.ExitRequeue, out)
	}
	b, _ := os.ReadFile(calls)
	if strings.TrimSpace(string(b)) != "requeue 12_3" {
		t.Errorf("scontrol called with %q, want requeue 12_3", b)
	}
}

// childrenOf lists the children of pid (/proc/PID/task/*/children: each
// thread's own).
func childrenOf(t *testing.T, pid int) []int {
	t.Helper()
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Skipf("cannot list the children of %d: %v", pid, err)
		}
		all = append(append(all, b...), ' ')
	}
	var out []int
	for _, f := range strings.Fields(string(all)) {
		n, _ := strconv.Atoi(f)
		out = append(out, n)
	}
	if len(out) == 0 {
		t.Fatalf("exec %d has no child", pid)
	}
	return out
}
