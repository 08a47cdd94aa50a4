package local

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/campaign"
)

// poolExe is a stand-in for ptb campaign exec: it records its argv and the
// time it ran, naps, and exits by its run id's prefix (flaky-*: 75 the
// first time, then 0).
const poolExe = `#!/bin/bash
id= gpus=
for a in "$@"; do case $a in --run-id=*) id=${a#--run-id=} ;; esac; done
while [ $# -gt 0 ]; do [ "$1" = --gpus ] && gpus=$2; shift; done
out=$(dirname "$0")
echo "run $id gpus=$gpus" >>"$out/$id.ran"
echo "start $id $gpus" >>"$out/events"
sleep 1
echo "end $id $gpus" >>"$out/events"
case $id in
flaky-*) [ -f "$out/$id.once" ] && exit 0; touch "$out/$id.once"; exit 75 ;;
esac
exit 0
`

func poolSubmission(t *testing.T, gpus int, ids ...string) (campaign.Submission, string) {
	t.Helper()
	root := t.TempDir()
	t.Cleanup(func() { waitSupervisorsGone(t, root) })
	dir := campaign.Dir(root, "pool")
	var jobs []campaign.Job
	var entries []campaign.Entry
	for i, id := range ids {
		jobs = append(jobs, campaign.Job{Index: i, RunID: id})
		entries = append(entries, campaign.Entry{Job: jobs[i], SpecHash: "h"})
	}
	if err := campaign.AppendIndex(dir, entries); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "bin")
	os.MkdirAll(bin, 0o755)
	exe := filepath.Join(bin, "ptb")
	os.WriteFile(exe, []byte(poolExe), 0o755)
	return campaign.Submission{Campaign: "pool", Root: root, Dir: dir, Exe: exe, Jobs: jobs, Resources: campaign.Resources{GPUs: gpus}}, bin
}

func waitDone(t *testing.T, ex *Executor, ref campaign.Ref, n int) []campaign.Status {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := ex.List(context.Background(), ref)
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, s := range st {
			if !s.State.Live() {
				done++
			}
		}
		if done == n && len(st) == n {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs still live: %+v", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Each job gets a GPU set of its own from the pool, a job that exits 75
// starts again, and no GPU serves two jobs at once.
func TestPoolAssignsGPUsAndRestarts(t *testing.T) {
	sub, bin := poolSubmission(t, 1, "a", "b", "flaky-c", "d", "e")
	ex := &Executor{GPUs: []int{0, 1}}
	if _, err := ex.Submit(context.Background(), sub); err != nil {
		t.Fatal(err)
	}
	ref := campaign.Ref{Campaign: sub.Campaign, Dir: sub.Dir}
	st := waitDone(t, ex, ref, 5)
	for _, s := range st {
		if s.State != campaign.StateExited {
			t.Errorf("%s: %s (%s)", s.RunID, s.State, s.Reason)
		}
		want := 0
		if s.RunID == "flaky-c" {
			want = 1
		}
		if s.Restarts != want {
			t.Errorf("%s restarted %d times, want %d", s.RunID, s.Restarts, want)
		}
	}
	b, _ := os.ReadFile(filepath.Join(bin, "events"))
	using := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			t.Fatalf("job ran without a GPU: %q\n%s", l, b)
		}
		switch f[0] {
		case "start":
			if other := using[f[2]]; other != "" {
				t.Fatalf("GPU %s given to %s while %s used it:\n%s", f[2], f[1], other, b)
			}
			using[f[2]] = f[1]
		case "end":
			delete(using, f[2])
		}
	}
	if c := strings.Count(string(b), "start flaky-c"); c != 2 {
		t.Errorf("flaky-c started %d times, want 2 (once more after exit 75)", c)
	}
	if _, err := ex.Submit(context.Background(), campaign.Submission{Dir: sub.Dir, Exe: sub.Exe, Jobs: sub.Jobs, Resources: campaign.Resources{GPUs: 3}}); err == nil || !strings.Contains(err.Error(), "needs 3 GPU(s) but the pool has 2") {
		t.Errorf("a job bigger than the pool: %v", err)
	}
}

// A supervisor killed while its jobs run: the jobs go on, the next List
// starts a supervisor that adopts them, and every job runs exactly once.
// Submitting the live jobs again starts nothing twice.
func TestPoolSurvivesSupervisorKill(t *testing.T) {
	ids := []string{"a", "b", "c", "d", "e", "f"}
	sub, bin := poolSubmission(t, 1, ids...)
	ex := &Executor{GPUs: []int{0, 1, 2}}
	if _, err := ex.Submit(context.Background(), sub); err != nil {
		t.Fatal(err)
	}
	ref := campaign.Ref{Campaign: sub.Campaign, Dir: sub.Dir}
	var pid int
	deadline := time.Now().Add(30 * time.Second)
	for pid == 0 || !anyRunning(t, sub.Dir) {
		st, _ := readState(sub.Dir)
		pid = st.Supervisor
		if time.Now().After(deadline) {
			t.Fatal("no supervisor ran a job")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	if _, err := ex.Submit(context.Background(), sub); err != nil { // as a restarted `up` would
		t.Fatal(err)
	}
	st := waitDone(t, ex, ref, len(ids))
	for _, s := range st {
		if s.State != campaign.StateExited || s.Restarts != 0 {
			t.Errorf("%s: %s (%s), %d restarts", s.RunID, s.State, s.Reason, s.Restarts)
		}
	}
	for _, id := range ids {
		b, _ := os.ReadFile(filepath.Join(bin, id+".ran"))
		if n := strings.Count(string(b), "run "); n != 1 {
			t.Errorf("%s ran %d times:\n%s", id, n, b)
		}
	}
	after, _ := readState(sub.Dir)
	if after.Supervisor == pid {
		t.Errorf("the killed supervisor %d is still recorded", pid)
	}
}

func anyRunning(t *testing.T, dir string) bool {
	st, err := readState(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range st.Jobs {
		if j.State == campaign.StateRunning {
			return true
		}
	}
	return false
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	for i := 0; i < 100; i++ {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(b), ") Z ") {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("process %d did not end", pid)
}
