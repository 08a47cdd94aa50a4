package htcondor

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/campaign"
	"github.com/ptb-dev/ptb/internal/rundir"
)

// buildPTB builds the ptb binary into dir (which the pool's jobs can read).
func buildPTB(t *testing.T, dir string) string {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || len(bytes.TrimSpace(gomod)) == 0 {
		t.Fatalf("find the module root: %v", err)
	}
	exe := filepath.Join(dir, "bin", "ptb")
	cmd := exec.Command("go", "build", "-o", exe, "./cmd/ptb")
	cmd.Dir = filepath.Dir(string(bytes.TrimSpace(gomod)))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/ptb: %v\n%s", err, out)
	}
	os.Chmod(filepath.Dir(exe), 0o755)
	return exe
}

// demoInputs runs `ptb demo` under root for the scripted agent's script
// (agent.yaml) and the recorded completions the replay backend scores
// (gsm8k_responses.jsonl), and returns their folder, readable by the
// pool's jobs.
func demoInputs(t *testing.T, exe, root string) string {
	t.Helper()
	demo := filepath.Join(root, "demo")
	if out, err := exec.Command(exe, "demo", "--out", demo, "--sandbox", "none").CombinedOutput(); err != nil {
		t.Fatalf("ptb demo: %v\n%s", err, out)
	}
	readable(root)
	return filepath.Join(demo, "inputs")
}

// readable makes everything under root readable by the pool's jobs,
// which run as another user.
func readable(root string) {
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if fi, ierr := os.Lstat(p); err == nil && ierr == nil && fi.Mode().Type()&fs.ModeSymlink == 0 {
			mode := fi.Mode().Perm() | 0o444
			if d.IsDir() {
				mode |= 0o111
			}
			os.Chmod(p, mode)
		}
		return nil
	})
}

// TestE2ECampaign runs real `ptb run` jobs (scripted agent, replay
// evaluation, a budget of seconds, no sandbox: bubblewrap is not in the
// pool's chroot) through `ptb campaign exec` on the pool: three runs end
// with a result, one is vacated mid-solve (SIGTERM, exit 75, HTCondor runs
// it again) and resumes, one fails and is reported failed.
func TestE2ECampaign(t *testing.T) {
	bin := poolBin(t)
	if testing.Short() {
		t.Skip("-short: the end-to-end campaign takes about a minute")
	}
	ctx := context.Background()
	root := sharedRoot(t)
	exe := buildPTB(t, root)
	if out, _ := exec.Command(exe, "campaign", "exec").CombinedOutput(); strings.Contains(string(out), "not built yet") {
		t.Skip("ptb campaign exec is not built on this branch yet")
	}
	inputs := demoInputs(t, exe, root)
	slow := filepath.Join(inputs, "slow.yaml")
	fail := filepath.Join(inputs, "fail.yaml")
	os.WriteFile(slow, []byte("steps:\n  - run: touch started.flag\n  - sleep: 12s\n  - model: final_model\nfinal: done\n"), 0o644)
	os.WriteFile(fail, []byte("steps:\n  - say: no model today\nfinal: nothing\n"), 0o644)
	args := func(script string) []string {
		return []string{"--agent", "scripted", "--script", script, "--base-model", "qwen3-1.7b", "--benchmark", "gsm8k",
			"--hours", "0.01", "--sandbox", "none", "--eval-backend", "replay",
			"--eval-responses", filepath.Join(inputs, "gsm8k_responses.jsonl"), "--eval-limit", "20"}
	}
	ref := campaign.Ref{Campaign: "e2e", Dir: campaign.Dir(root, "e2e")}
	cells := []struct {
		id     string
		script string
	}{
		{"e2e-a", filepath.Join(inputs, "agent.yaml")},
		{"e2e-b", filepath.Join(inputs, "agent.yaml")},
		{"e2e-vacated", slow},
		{"e2e-nomodel", fail},
	}
	var entries []campaign.Entry
	var jobs []campaign.Job
	for i, c := range cells {
		j := campaign.Job{Index: i, RunID: c.id}
		entries = append(entries, campaign.Entry{Job: j, SpecHash: "e2e", Args: args(c.script)})
		jobs = append(jobs, j)
	}
	if err := campaign.AppendIndex(ref.Dir, entries); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(campaign.ExecSettings{Executor: "htcondor", MaxPreemptions: 3, MaxTimeouts: 2})
	os.WriteFile(filepath.Join(ref.Dir, campaign.ExecFile), b, 0o644)
	for _, d := range []string{filepath.Dir(ref.Dir), ref.Dir} {
		os.Chmod(d, 0o777)
	}
	os.Chmod(filepath.Join(ref.Dir, campaign.IndexFile), 0o644)

	e := New(Settings{Bin: bin, VacateTime: time.Minute})
	st, err := e.Submit(ctx, campaign.Submission{Campaign: ref.Campaign, Root: root, Dir: ref.Dir, Exe: exe, Jobs: jobs,
		MaxParallel: 3, Resources: campaign.Resources{CPUs: 1, MemoryMB: 512}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.run(ctx, "", "condor_rm", clusterOf(st[0].BackendID)) })
	vacated := filepath.Join(root, "e2e-vacated", "workspace", "started.flag")
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if _, err := os.Stat(vacated); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("e2e-vacated did not start its solve")
		}
		time.Sleep(300 * time.Millisecond)
	}
	if _, err := e.run(ctx, "", "condor_vacate_job", find(st, "e2e-vacated").BackendID); err != nil {
		t.Fatal(err)
	}
	var final map[string]campaign.Status
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(time.Second) {
		got, err := e.List(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		final = map[string]campaign.Status{}
		live := false
		for _, s := range got {
			final[s.RunID] = s
			live = live || s.State.Live()
		}
		if !live && len(final) == len(cells) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the campaign did not end: %+v", got)
		}
	}
	logs := func(id string) string {
		paths, _ := e.Logs(ctx, ref, id)
		var all []string
		for _, p := range paths {
			b, _ := os.ReadFile(p)
			all = append(all, string(b))
		}
		return strings.Join(all, "\n")
	}
	for _, c := range cells[:3] {
		if s := final[c.id]; s.State != campaign.StateExited {
			t.Errorf("%s: %s (%s), want exited; logs:\n%s", c.id, s.State, s.Reason, logs(c.id))
		}
		if _, err := os.Stat(filepath.Join(root, c.id, "result.json")); err != nil {
			t.Errorf("%s has no result.json: %v", c.id, err)
		}
	}
	if s := final["e2e-vacated"]; s.Restarts != 1 {
		t.Errorf("e2e-vacated ran %d times after the first, want 1 (vacated once)", s.Restarts)
	}
	if rq, err := campaign.ReadRequeues(ref.Dir, "e2e-vacated"); err != nil || rq.Preemptions != 1 {
		t.Errorf("requeues of e2e-vacated = %+v, %v; want 1 preemption", rq, err)
	} else {
		t.Logf("requeues of e2e-vacated: %+v", rq)
	}
	// The vacated run resumed its solve (a second segment) rather than
	// starting over.
	var solve struct {
		Segments []struct {
			Kind string `json:"kind"`
		} `json:"segments"`
	}
	b, err = os.ReadFile(filepath.Join(root, "e2e-vacated", rundir.SolveState))
	if err == nil {
		err = json.Unmarshal(b, &solve)
	}
	if err != nil || len(solve.Segments) != 2 || solve.Segments[1].Kind != "resume" {
		t.Errorf("solve of e2e-vacated: %v, segments %+v; want start then resume", err, solve.Segments)
	}
	for _, id := range []string{"e2e-vacated", "e2e-nomodel"} {
		t.Logf("%s: %+v", id, final[id])
	}
	if s := final["e2e-nomodel"]; s.State != campaign.StateFailed || !strings.HasPrefix(s.Reason, "exit code") {
		t.Errorf("e2e-nomodel: %s (%s), want failed with its exit code", s.State, s.Reason)
	}
}
