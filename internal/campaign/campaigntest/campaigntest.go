// Package campaigntest is the contract suite every campaign executor
// passes, against its real scheduler. The jobs it submits run a stand-in
// for `ptb campaign exec` (FakeExe, a shell script) whose behaviour is
// chosen by the run id's prefix:
//
//	ok-*    prints "hello from ID" and exits 0
//	fail-*  prints "hello from ID" and exits 3
//	nap-*   sleeps 2 s and exits 0 (for MaxParallel)
//	sleep-* runs until TERM, then records it and exits campaign.ExitRequeue
//
// Each job leaves ROOT/contract/ID.ran (its argv and CUDA_VISIBLE_DEVICES)
// and start/end lines in ROOT/contract/events.
package campaigntest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/campaign"
)

// Env is one executor under test.
type Env struct {
	Exec campaign.Executor
	// Root is an output root that the scheduler's jobs can read and write
	// (for a scheduler running jobs as another user: world-writable).
	Root string
	// Wait bounds how long a job may take to start and end (scheduler
	// latency included); 0 means 2 minutes.
	Wait time.Duration
	// Preempt and GPUs are passed to Submission.ExecArgv as the executor
	// would; the suite only checks they reach the job.
	Campaign string // a fresh campaign name per Env; "" picks one
	// EngineThrottles says the scheduler has no cap across jobs (one
	// Kubernetes Job a run): the engine's `up` submits at most MaxParallel
	// at a time instead, and the MaxParallel subtest is skipped.
	EngineThrottles bool
}

// Run runs the contract suite. newEnv is called once per subtest.
func Run(t *testing.T, newEnv func(t *testing.T) Env) {
	t.Run("Check", func(t *testing.T) {
		env := setup(t, newEnv)
		if err := env.Exec.Check(context.Background()); err != nil {
			t.Fatalf("Check: %v", err)
		}
	})
	t.Run("SubmitRunsEachJobOnce", func(t *testing.T) {
		env := setup(t, newEnv)
		sub := submission(t, env, "ok-a", "ok-b", "fail-c")
		submit(t, env, sub)
		ref := campaign.Ref{Campaign: sub.Campaign, Dir: sub.Dir}
		waitEnded(t, env, ref, sub.Jobs)
		for _, id := range []string{"ok-a", "ok-b", "fail-c"} {
			b, err := os.ReadFile(filepath.Join(env.Root, "contract", id+".ran"))
			if err != nil {
				t.Fatalf("job %s did not run: %v", id, err)
			}
			if got := strings.Count(string(b), "argv:"); got != 1 {
				t.Errorf("job %s ran %d times, want 1:\n%s", id, got, b)
			}
			if !strings.Contains(string(b), "--dir "+sub.Dir) {
				t.Errorf("job %s argv lacks --dir %s:\n%s", id, sub.Dir, b)
			}
		}
		st := list(t, env, ref)
		for _, s := range st {
			if s.RunID == "fail-c" && s.State == campaign.StateExited {
				t.Errorf("fail-c exited 3 but is reported %s", s.State)
			}
			if s.RunID == "ok-a" && s.State == campaign.StateFailed {
				t.Errorf("ok-a exited 0 but is reported %s (%s)", s.State, s.Reason)
			}
		}
	})
	t.Run("Logs", func(t *testing.T) {
		env := setup(t, newEnv)
		sub := submission(t, env, "ok-logs")
		submit(t, env, sub)
		ref := campaign.Ref{Campaign: sub.Campaign, Dir: sub.Dir}
		waitEnded(t, env, ref, sub.Jobs)
		var all []byte
		deadline := time.Now().Add(wait(env))
		for {
			paths, err := env.Exec.Logs(context.Background(), ref, "ok-logs")
			if err != nil {
				t.Fatalf("Logs: %v", err)
			}
			all = all[:0]
			for _, p := range paths {
				b, _ := os.ReadFile(p)
				all = append(all, b...)
			}
			if strings.Contains(string(all), "hello from ok-logs") || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond) // the scheduler may copy output back after the job ends
		}
		if !strings.Contains(string(all), "hello from ok-logs") {
			t.Errorf("logs of ok-logs lack the job's output; got %q", all)
		}
	})
	t.Run("CancelSendsTERM", func(t *testing.T) {
		env := setup(t, newEnv)
		sub := submission(t, env, "sleep-d")
		submit(t, env, sub)
		ref := campaign.Ref{Campaign: sub.Campaign, Dir: sub.Dir}
		waitFile(t, env, filepath.Join(env.Root, "contract", "sleep-d.started"))
		if st := find(list(t, env, ref), "sleep-d"); st.State != campaign.StateRunning {
			t.Errorf("a started job is reported %q, want running", st.State)
		}
		if err := env.Exec.Cancel(context.Background(), ref, []string{"sleep-d"}); err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		waitFile(t, env, filepath.Join(env.Root, "contract", "sleep-d.term"))
		waitEnded(t, env, ref, sub.Jobs)
	})
	t.Run("MaxParallel", func(t *testing.T) {
		env := setup(t, newEnv)
		if env.EngineThrottles {
			t.Skip("the executor has no cap across jobs; the engine throttles its submissions")
		}
		sub := submission(t, env, "nap-e", "nap-f", "nap-g")
		sub.MaxParallel = 1
		submit(t, env, sub)
		waitEnded(t, env, campaign.Ref{Campaign: sub.Campaign, Dir: sub.Dir}, sub.Jobs)
		b, err := os.ReadFile(filepath.Join(env.Root, "contract", "events"))
		if err != nil {
			t.Fatal(err)
		}
		running := 0
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			switch {
			case strings.HasPrefix(l, "start "):
				running++
			case strings.HasPrefix(l, "end "):
				running--
			}
			if running > 1 {
				t.Fatalf("two jobs ran at once under MaxParallel 1:\n%s", b)
			}
		}
	})
	t.Run("ListIsScopedToTheCampaign", func(t *testing.T) {
		env := setup(t, newEnv)
		a := submission(t, env, "sleep-mine")
		submit(t, env, a)
		other := newEnv(t)
		other.Root = env.Root
		other.Campaign = env.Campaign + "-x"
		b := submission(t, other, "sleep-theirs")
		submit(t, other, b)
		refA := campaign.Ref{Campaign: a.Campaign, Dir: a.Dir}
		refB := campaign.Ref{Campaign: b.Campaign, Dir: b.Dir}
		t.Cleanup(func() {
			env.Exec.Cancel(context.Background(), refA, []string{"sleep-mine"})
			other.Exec.Cancel(context.Background(), refB, []string{"sleep-theirs"})
			waitEnded(t, env, refA, a.Jobs)
			waitEnded(t, other, refB, b.Jobs)
		})
		for _, s := range list(t, env, refA) {
			if s.RunID != "sleep-mine" {
				t.Errorf("List of %s returned %q of another campaign", a.Campaign, s.RunID)
			}
		}
		if st := find(list(t, env, refA), "sleep-mine"); !st.State.Live() {
			t.Errorf("sleep-mine is reported %q, want a live state", st.State)
		}
	})
}

var seq int

func setup(t *testing.T, newEnv func(t *testing.T) Env) Env {
	t.Helper()
	env := newEnv(t)
	if env.Root == "" {
		t.Fatal("campaigntest: Env.Root is empty")
	}
	if env.Campaign == "" {
		seq++
		env.Campaign = fmt.Sprintf("ct%d-%d", os.Getpid()%100000, seq)
	}
	return env
}

func wait(env Env) time.Duration {
	if env.Wait > 0 {
		return env.Wait
	}
	return 2 * time.Minute
}

// submission writes the index for ids and returns a Submission running
// FakeExe.
func submission(t *testing.T, env Env, ids ...string) campaign.Submission {
	t.Helper()
	dir := campaign.Dir(env.Root, env.Campaign)
	have, err := campaign.ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	var entries []campaign.Entry
	var jobs []campaign.Job
	for i, id := range ids {
		j := campaign.Job{Index: len(have) + i, RunID: id}
		entries = append(entries, campaign.Entry{Job: j, SpecHash: "contract", Args: []string{"--agent", "scripted"}})
		jobs = append(jobs, j)
	}
	if err := campaign.AppendIndex(dir, entries); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(env.Root, "contract"), 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(env.Root, "contract"), 0o777)
	for _, d := range []string{filepath.Join(env.Root, campaign.CampaignsDir), dir} {
		os.Chmod(d, 0o777)
	}
	os.Chmod(filepath.Join(dir, campaign.IndexFile), 0o644)
	return campaign.Submission{
		Campaign:  env.Campaign,
		Root:      env.Root,
		Dir:       dir,
		Exe:       FakeExe(t, env.Root),
		Jobs:      jobs,
		Resources: campaign.Resources{GPUs: 0, CPUs: 1, MemoryMB: 256, TimeLimit: 10 * time.Minute},
	}
}

func submit(t *testing.T, env Env, sub campaign.Submission) {
	t.Helper()
	st, err := env.Exec.Submit(context.Background(), sub)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	for _, j := range sub.Jobs {
		if s := find(st, j.RunID); s.BackendID == "" {
			t.Errorf("Submit returned no backend id for %s: %+v", j.RunID, st)
		}
	}
}

func list(t *testing.T, env Env, ref campaign.Ref) []campaign.Status {
	t.Helper()
	st, err := env.Exec.List(context.Background(), ref)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return st
}

func find(st []campaign.Status, id string) campaign.Status {
	if i := slices.IndexFunc(st, func(s campaign.Status) bool { return s.RunID == id }); i >= 0 {
		return st[i]
	}
	return campaign.Status{RunID: id}
}

// waitEnded waits until none of jobs is live in List.
func waitEnded(t *testing.T, env Env, ref campaign.Ref, jobs []campaign.Job) {
	t.Helper()
	deadline := time.Now().Add(wait(env))
	for {
		st := list(t, env, ref)
		live := ""
		for _, j := range jobs {
			if s := find(st, j.RunID); s.State.Live() {
				live = fmt.Sprintf("%s is %s (%s)", j.RunID, s.State, s.Reason)
				break
			}
		}
		if live == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs still live after %s: %s", wait(env), live)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func waitFile(t *testing.T, env Env, path string) {
	t.Helper()
	deadline := time.Now().Add(wait(env))
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %s", path, wait(env))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// FakeExe writes the stand-in for ptb (see the package comment) under
// root and returns its path. It reads the run id from --run-id=ID, or from
// the index line of --index=N.
func FakeExe(t *testing.T, root string) string {
	t.Helper()
	path := filepath.Join(root, "contract", "fake-ptb")
	if err := os.MkdirAll(filepath.Dir(path), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(fakeScript), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

const fakeScript = `#!/bin/bash
# Stand-in for "ptb campaign exec" in the campaign executor contract suite.
set -u
dir= id= index=
args="$*"
while [ $# -gt 0 ]; do
	case $1 in
	--dir) dir=$2; shift ;;
	--dir=*) dir=${1#--dir=} ;;
	--run-id) id=$2; shift ;;
	--run-id=*) id=${1#--run-id=} ;;
	--index) index=$2; shift ;;
	--index=*) index=${1#--index=} ;;
	esac
	shift
done
if [ -z "$id" ]; then
	id=$(sed -n "$((index + 1))p" "$dir/index.jsonl" | grep -o '"run_id":"[^"]*"' | cut -d'"' -f4)
fi
out=$(cd "$(dirname "$0")" && pwd)
echo "argv: $args" >>"$out/$id.ran"
echo "gpus: ${CUDA_VISIBLE_DEVICES:-}" >>"$out/$id.ran"
echo "start $id" >>"$out/events"
echo "hello from $id"
case $id in
ok-*) code=0 ;;
fail-*) code=3 ;;
nap-*) sleep 2; code=0 ;;
sleep-*)
	trap 'echo term >"$out/$id.term"; echo "end $id" >>"$out/events"; exit 75' TERM
	touch "$out/$id.started"
	while :; do sleep 0.2; done ;;
*) code=1 ;;
esac
echo "end $id" >>"$out/events"
exit $code
`
