package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/campaign"
	"github.com/ptb-dev/ptb/internal/campaign/local"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
)

// A campaign of real ptb runs (scripted agent, seconds) on a pool of four
// fake GPUs: the supervisor is killed mid-way and the jobs are submitted
// again, as a restarted `ptb campaign up` would. Every run finishes once:
// one run directory each, one solve segment each, and no GPU serves two
// runs at once.
func TestLocalCampaignSurvivesRestart(t *testing.T) {
	f := newRunIDFixture(t)
	t.Setenv("PATH", f.bin+":"+os.Getenv("PATH"))
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	os.WriteFile(bad, []byte("{not json\n"), 0o644)
	dir := campaign.Dir(f.out, "e2e")
	var entries []campaign.Entry
	var jobs []campaign.Job
	for i := range 6 {
		id := fmt.Sprintf("cell-%d", i)
		args := f.jobArgs(f.slow, "--seed", fmt.Sprint(i))
		if i == 5 {
			id, args = "cell-fails", f.jobArgs(f.quick, "--eval-backend", "replay", "--eval-responses", bad)
		}
		j := campaign.Job{Index: i, RunID: id}
		jobs = append(jobs, j)
		entries = append(entries, campaign.Entry{Job: j, SpecHash: "h", Args: args})
	}
	if err := campaign.AppendIndex(dir, entries); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, campaign.ExecFile), []byte(`{"executor":"local","max_preemptions":2,"max_timeouts":1}`), 0o644)
	self, _ := os.Executable()
	sub := campaign.Submission{Campaign: "e2e", Root: f.out, Dir: dir, Exe: self, Jobs: jobs, Resources: campaign.Resources{GPUs: 1}}
	ex := &local.Executor{GPUs: []int{0, 1, 2, 3}}
	ctx := context.Background()
	if _, err := ex.Submit(ctx, sub); err != nil {
		t.Fatal(err)
	}
	ref := campaign.Ref{Campaign: "e2e", Dir: dir}
	t.Cleanup(func() { // the supervisor leaves before the directory goes
		for i := 0; i < 100 && supervisorPID(t, dir) != 0; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})

	// Kill the supervisor once runs are solving.
	deadline := time.Now().Add(time.Minute)
	for {
		solving, _ := filepath.Glob(filepath.Join(f.out, "cell-*", rundir.SolveStateFile))
		b, _ := os.ReadFile(filepath.Join(dir, local.Subdir, local.StateFile))
		if len(solving) >= 2 && strings.Contains(string(b), `"supervisor_pid"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no run started solving; state:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	st, err := ex.List(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	pid := supervisorPID(t, dir)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed supervisor %d with %d jobs listed", pid, len(st))
	time.Sleep(500 * time.Millisecond)
	if _, err := ex.Submit(ctx, sub); err != nil { // the restarted `up`
		t.Fatal(err)
	}

	deadline = time.Now().Add(3 * time.Minute)
	for {
		st, err = ex.List(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(st, func(s campaign.Status) bool { return s.State.Live() }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs still live: %+v", st)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if supervisorPID(t, dir) == pid {
		t.Errorf("no new supervisor took over")
	}
	type span struct {
		id         string
		start, end time.Time
		gpus       []int
	}
	var spans []span
	for _, s := range st {
		if s.RunID == "cell-fails" {
			if s.State != campaign.StateFailed || s.Reason != "exit 3" {
				t.Errorf("cell-fails: %s (%s), want failed with exit 3 (a stage failed)", s.State, s.Reason)
			}
			continue
		}
		if s.State != campaign.StateExited || s.Restarts != 0 {
			logs, _ := ex.Logs(ctx, ref, s.RunID)
			b, _ := os.ReadFile(logs[0])
			t.Errorf("%s: %s (%s), %d restarts\n%s", s.RunID, s.State, s.Reason, s.Restarts, b)
			continue
		}
		run := filepath.Join(f.out, s.RunID)
		if _, err := result.Read(filepath.Join(run, rundir.ResultFile)); err != nil {
			t.Errorf("%s: %v", s.RunID, err)
		}
		sol := readSolve(t, run)
		if len(sol.Segments) != 1 {
			t.Errorf("%s solved in %d segments, want 1 (no run started twice)", s.RunID, len(sol.Segments))
			continue
		}
		g := sol.Segments[0]
		if len(g.GPUs) != 1 || g.GPUs[0] < 0 || g.GPUs[0] > 3 {
			t.Errorf("%s ran on GPUs %v, want one of the pool", s.RunID, g.GPUs)
		}
		spans = append(spans, span{s.RunID, g.Start, *g.End, g.GPUs})
	}
	for i, a := range spans {
		for _, b := range spans[i+1:] {
			if a.start.Before(b.end) && b.start.Before(a.end) && slices.Equal(a.gpus, b.gpus) {
				t.Errorf("%s and %s solved at once on GPU %v", a.id, b.id, a.gpus)
			}
		}
	}
	ents, _ := os.ReadDir(f.out)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{".campaign", "cell-0", "cell-1", "cell-2", "cell-3", "cell-4", "cell-fails"}; !slices.Equal(names, want) {
		t.Errorf("output root holds %v, want %v (one directory per run)", names, want)
	}
}

func supervisorPID(t *testing.T, dir string) int {
	t.Helper()
	var st local.State
	b, err := os.ReadFile(filepath.Join(dir, local.Subdir, local.StateFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st.Supervisor
}

// A job cancelled mid-solve stops cleanly and is not restarted; submitted
// again, its run resumes where it stopped.
func TestLocalCampaignCancelThenResume(t *testing.T) {
	f := newRunIDFixture(t)
	t.Setenv("PATH", f.bin+":"+os.Getenv("PATH"))
	dir := campaign.Dir(f.out, "cancel")
	j := campaign.Job{Index: 0, RunID: "cell-slow"}
	if err := campaign.AppendIndex(dir, []campaign.Entry{{Job: j, SpecHash: "h", Args: f.jobArgs(f.slow)}}); err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	sub := campaign.Submission{Campaign: "cancel", Root: f.out, Dir: dir, Exe: self, Jobs: []campaign.Job{j}}
	ex := &local.Executor{GPUs: []int{}}
	ref := campaign.Ref{Campaign: "cancel", Dir: dir}
	t.Cleanup(func() {
		for i := 0; i < 100 && supervisorPID(t, dir) != 0; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	ctx := context.Background()
	if _, err := ex.Submit(ctx, sub); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(f.out, j.RunID)
	var none bytes.Buffer
	waitSolving(t, run, &none)
	if err := ex.Cancel(ctx, ref, []string{j.RunID}); err != nil {
		t.Fatal(err)
	}
	s := waitEnded(t, ex, ref, j.RunID)
	if s.State != campaign.StateFailed || s.Reason != "cancelled (exit 75)" || s.Restarts != 0 {
		t.Fatalf("after cancel: %+v, want failed, cancelled (exit 75), no restart", s)
	}
	if sol := readSolve(t, run); len(sol.Segments) != 1 || sol.Segments[0].EndReason != "interrupted" {
		t.Fatalf("after cancel the solve is %+v, want one interrupted segment", sol.Segments)
	}
	if _, err := ex.Submit(ctx, sub); err != nil {
		t.Fatal(err)
	}
	if s := waitEnded(t, ex, ref, j.RunID); s.State != campaign.StateExited {
		logs, _ := ex.Logs(ctx, ref, j.RunID)
		b, _ := os.ReadFile(logs[0])
		t.Fatalf("resubmitted: %+v\n%s", s, b)
	}
	sol := readSolve(t, run)
	if len(sol.Segments) != 2 || sol.Segments[1].Kind != "resume" || sol.Segments[1].EndReason != "exited" {
		t.Errorf("segments %+v, want the cancelled one and a resume that exited", sol.Segments)
	}
}

func waitEnded(t *testing.T, ex *local.Executor, ref campaign.Ref, id string) campaign.Status {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, err := ex.List(context.Background(), ref)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st {
			if s.RunID == id && !s.State.Live() {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still live: %+v", id, st)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The whole loop with the real engine: `ptb campaign up --wait` on a pool
// of four fake GPUs is killed mid-way together with the supervisor, then
// `up --wait` again finishes the campaign with no run started twice.
func TestLocalCampaignUpKilledMidway(t *testing.T) {
	f := newRunIDFixture(t)
	t.Setenv("PATH", f.bin+":"+os.Getenv("PATH"))
	dir := filepath.Dir(f.out)
	file := filepath.Join(dir, "study.yaml")
	os.WriteFile(file, []byte(`name: pool
out: runs
agents: [{scaffold: scripted, label: demo}]
base_models: [qwen3-1.7b]
benchmarks: [gsm8k]
seeds: [0, 1, 2, 3, 4, 5]
run: {hours: 0.02, gpus: 1, sandbox: none, script: `+filepath.Base(f.slow)+`, eval: {backend: none}}
executor: {local: {gpus: [0, 1, 2, 3]}}
`), 0o644)
	self, _ := os.Executable()
	cdir := campaign.Dir(f.out, "pool")
	t.Cleanup(func() {
		for i := 0; i < 100 && exists(filepath.Join(cdir, local.Subdir, local.StateFile)) && supervisorPID(t, cdir) != 0; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	up, out := ptbChild(t, f.bin, "campaign", "up", file, "--wait", "--interval", "1s", "--exe", self)
	deadline := time.Now().Add(time.Minute)
	for {
		solving, _ := filepath.Glob(filepath.Join(f.out, "gsm8k_*", rundir.SolveStateFile))
		if len(solving) >= 2 && exists(filepath.Join(cdir, local.Subdir, local.StateFile)) && supervisorPID(t, cdir) != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no run started solving:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	sup := supervisorPID(t, cdir)
	up.Process.Kill()
	syscall.Kill(sup, syscall.SIGKILL)
	up.Wait()
	code, stdout, stderr := runPTB(t, "campaign", "up", file, "--wait", "--interval", "1s", "--exe", self)
	if code != 0 || !strings.Contains(stdout, "6 done") || strings.Contains(stdout, "submitted now") {
		t.Fatalf("the second up --wait: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for i := range 6 {
		run := filepath.Join(f.out, fmt.Sprintf("gsm8k_qwen3-1.7b_scripted_s%d", i))
		if sol := readSolve(t, run); len(sol.Segments) != 1 {
			t.Errorf("%s solved in %d segments, want 1", run, len(sol.Segments))
		}
	}
	ents, _ := os.ReadDir(f.out)
	if len(ents) != 7 {
		t.Errorf("output root holds %d entries, want 6 runs and .campaign", len(ents))
	}
	t.Logf("second up:\n%s", stdout)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
