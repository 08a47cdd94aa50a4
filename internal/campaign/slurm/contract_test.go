package slurm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/campaign"
	"github.com/ptb-dev/ptb/internal/campaign/campaigntest"
)

// needSlurm skips unless a Slurm cluster is up (scripts/ci/slurm-up.sh
// prints PTB_SLURM=1 for it).
func needSlurm(t *testing.T) {
	t.Helper()
	if os.Getenv("PTB_SLURM") == "" {
		t.Skip("no Slurm cluster: run `eval \"$(scripts/ci/slurm-up.sh)\"` as root to start one and set PTB_SLURM=1")
	}
}

// TestContract runs the executor contract suite against the real Slurm.
func TestContract(t *testing.T) {
	needSlurm(t)
	campaigntest.Run(t, func(t *testing.T) campaigntest.Env {
		ex, err := New(nil)
		if err != nil {
			t.Fatal(err)
		}
		root := t.TempDir()
		os.Chmod(root, 0o777)
		return campaigntest.Env{Exec: ex, Root: root, Wait: 3 * time.Minute}
	})
}

// TestCancelIsNotRequeued: ptb campaign exec answers TERM by requeueing the
// job (--preempt slurm), and Slurm accepts `scontrol requeue` for a job
// being cancelled, so a cancel would come back as a requeue unless Cancel
// first makes the job not requeueable.
func TestCancelIsNotRequeued(t *testing.T) {
	needSlurm(t)
	ctx := context.Background()
	root := t.TempDir()
	name := fmt.Sprintf("cancel-%d", os.Getpid()%100000)
	dir := campaign.Dir(root, name)
	job := campaign.Job{Index: 0, RunID: "stubborn"}
	if err := campaign.AppendIndex(dir, []campaign.Entry{{Job: job, SpecHash: "x"}}); err != nil {
		t.Fatal(err)
	}
	// A stand-in for exec's slurm preemption: on TERM, requeue and exit 75.
	exe := filepath.Join(root, "fake-exec")
	script := "#!/bin/bash\nmark=" + root + "/starts\necho start >>$mark\n" +
		"trap 'scontrol requeue ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}; exit 75' TERM\n" +
		"while :; do sleep 0.2; done\n"
	if err := os.WriteFile(exe, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	ex := &Executor{set: Settings{GRES: "gpu", SignalBefore: 300}}
	t.Cleanup(func() { exec.Command("scancel", "--name="+jobName(name)).Run() })
	sub := campaign.Submission{Campaign: name, Root: root, Dir: dir, Exe: exe, Jobs: []campaign.Job{job},
		Resources: campaign.Resources{CPUs: 1, MemoryMB: 128, TimeLimit: 10 * time.Minute}}
	if _, err := ex.Submit(ctx, sub); err != nil {
		t.Fatal(err)
	}
	ref := campaign.Ref{Campaign: name, Dir: dir}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if b, _ := os.ReadFile(filepath.Join(root, "starts")); len(b) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the job did not start within 3 minutes")
		}
		time.Sleep(300 * time.Millisecond)
	}
	if err := ex.Cancel(ctx, ref, []string{"stubborn"}); err != nil {
		t.Fatal(err)
	}
	var st campaign.Status
	for deadline = time.Now().Add(time.Minute); ; {
		l, err := ex.List(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if len(l) == 1 {
			st = l[0]
		}
		if !st.State.Live() || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if st.State != campaign.StateFailed || st.Restarts != 0 || !strings.HasPrefix(st.Reason, "CANCELLED") {
		t.Errorf("after Cancel the job is %+v, want failed (CANCELLED) with no restart", st)
	}
}

// TestGPUsReachTheJob: a job asking for GPUs gets them from gres (the test
// cluster's fake devices) and exec is told to read them from
// CUDA_VISIBLE_DEVICES.
func TestGPUsReachTheJob(t *testing.T) {
	needSlurm(t)
	ctx := context.Background()
	root := t.TempDir()
	name := fmt.Sprintf("gpus-%d", os.Getpid()%100000)
	dir := campaign.Dir(root, name)
	jobs := []campaign.Job{{Index: 0, RunID: "ok-gpu0"}, {Index: 1, RunID: "ok-gpu1"}}
	if err := campaign.AppendIndex(dir, []campaign.Entry{{Job: jobs[0], SpecHash: "x"}, {Job: jobs[1], SpecHash: "x"}}); err != nil {
		t.Fatal(err)
	}
	ex := &Executor{set: Settings{GRES: "gpu", SignalBefore: 300}}
	t.Cleanup(func() { exec.Command("scancel", "--name="+jobName(name)).Run() })
	sub := campaign.Submission{Campaign: name, Root: root, Dir: dir, Exe: campaigntest.FakeExe(t, root), Jobs: jobs,
		Resources: campaign.Resources{GPUs: 2, CPUs: 1, MemoryMB: 128, TimeLimit: 10 * time.Minute}}
	if _, err := ex.Submit(ctx, sub); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for _, j := range jobs {
		path := filepath.Join(root, "contract", j.RunID+".ran")
		var b []byte
		for {
			if b, _ = os.ReadFile(path); strings.Contains(string(b), "gpus:") || time.Now().After(deadline) {
				break
			}
			time.Sleep(300 * time.Millisecond)
		}
		if !strings.Contains(string(b), "--gpus env:CUDA_VISIBLE_DEVICES") {
			t.Errorf("%s: exec was not told to read the devices from CUDA_VISIBLE_DEVICES:\n%s", j.RunID, b)
		}
		var gpus string
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "gpus: "); ok {
				gpus = v
			}
		}
		if ids := strings.Split(gpus, ","); len(ids) != 2 || ids[0] == ids[1] {
			t.Errorf("%s: CUDA_VISIBLE_DEVICES=%q, want two devices from gres", j.RunID, gpus)
		}
	}
}

// TestTimeLimitSendsUSR1: --signal=B:USR1@N reaches the batch shell, which
// is exec (the script execs it), before the time limit. With a 2-minute
// limit the lead is clamped to 60 s; Slurm may send it up to 60 s early.
func TestTimeLimitSendsUSR1(t *testing.T) {
	needSlurm(t)
	if testing.Short() {
		t.Skip("-short: waits for a time limit signal (up to 2 minutes)")
	}
	ctx := context.Background()
	root := t.TempDir()
	name := fmt.Sprintf("usr1-%d", os.Getpid()%100000)
	dir := campaign.Dir(root, name)
	job := campaign.Job{Index: 0, RunID: "slowpoke"}
	if err := campaign.AppendIndex(dir, []campaign.Entry{{Job: job, SpecHash: "x"}}); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(root, "fake-exec")
	script := "#!/bin/bash\nout=" + root + "\ntouch $out/started\n" +
		"trap 'echo \"usr1 pid=$$\" >$out/usr1; exit 75' USR1\n" +
		"while :; do sleep 0.2; done\n"
	if err := os.WriteFile(exe, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	ex := &Executor{set: Settings{GRES: "gpu", SignalBefore: 300}}
	t.Cleanup(func() { exec.Command("scancel", "--name="+jobName(name)).Run() })
	sub := campaign.Submission{Campaign: name, Root: root, Dir: dir, Exe: exe, Jobs: []campaign.Job{job},
		Resources: campaign.Resources{CPUs: 1, MemoryMB: 128, TimeLimit: 2 * time.Minute}}
	if _, err := ex.Submit(ctx, sub); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(4 * time.Minute)
	for {
		if b, err := os.ReadFile(filepath.Join(root, "usr1")); err == nil {
			t.Logf("the job got USR1 before its time limit: %s", b)
			return
		}
		if time.Now().After(deadline) {
			l, _ := ex.List(ctx, campaign.Ref{Campaign: name, Dir: dir})
			t.Fatalf("no USR1 reached the job within 4 minutes; squeue says %+v", l)
		}
		time.Sleep(time.Second)
	}
}
