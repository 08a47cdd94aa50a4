package campaigntest

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/campaign"
	"github.com/ptb-dev/ptb/internal/rundir"
)

// BuildPTB builds the ptb binary into dir/bin/ptb, readable by every user
// (a scheduler may run jobs as another).
func BuildPTB(t *testing.T, dir string) string {
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

// DemoInputs runs `ptb demo` under root for the scripted agent's script
// (agent.yaml) and the recorded completions the replay backend scores
// (gsm8k_responses.jsonl), adds slow.yaml (touches started.flag, then
// works 12 s) and fail.yaml (leaves no model), and returns their folder,
// with everything under root readable by every user.
func DemoInputs(t *testing.T, exe, root string) string {
	t.Helper()
	demo := filepath.Join(root, "demo")
	if out, err := exec.Command(exe, "demo", "--out", demo, "--sandbox", "none").CombinedOutput(); err != nil {
		t.Fatalf("ptb demo: %v\n%s", err, out)
	}
	inputs := filepath.Join(demo, "inputs")
	os.WriteFile(filepath.Join(inputs, "slow.yaml"), []byte("steps:\n  - run: touch started.flag\n  - sleep: 12s\n  - model: final_model\nfinal: done\n"), 0o644)
	os.WriteFile(filepath.Join(inputs, "fail.yaml"), []byte("steps:\n  - say: no model today\nfinal: nothing\n"), 0o644)
	Readable(root)
	return inputs
}

// Readable makes everything under root readable (and folders enterable)
// by every user.
func Readable(root string) {
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

// E2E is an end-to-end campaign of real `ptb run` jobs (scripted agent,
// replay evaluation, a budget of seconds, no sandbox) through `ptb campaign
// exec` on a real scheduler. Its four cells: e2e-a and e2e-b end with a
// result; e2e-preempted is stopped by Preempt mid-solve and must resume
// (one preemption in its requeue record, a second solve segment);
// e2e-nomodel leaves no model and must end failed.
type E2E struct {
	Exec     campaign.Executor
	Root     string // the output root (reachable by the scheduler's jobs)
	Exe      string // BuildPTB's binary
	Inputs   string // DemoInputs' folder
	Campaign string
	// Preempt stops the job of e2e-preempted the scheduler's way (vacate,
	// evict), given what Submit returned.
	Preempt func(t *testing.T, submitted []campaign.Status)
	// Settings for exec.json (MaxPreemptions 3, MaxTimeouts 2 when zero).
	Settings campaign.ExecSettings
}

// Run runs the campaign and returns each run's final status, for the
// executor's own checks.
func (e E2E) Run(t *testing.T) map[string]campaign.Status {
	t.Helper()
	ctx := context.Background()
	args := func(script string) []string {
		return []string{"--agent", "scripted", "--script", filepath.Join(e.Inputs, script), "--base-model", "qwen3-1.7b", "--benchmark", "gsm8k",
			"--hours", "0.01", "--sandbox", "none", "--eval-backend", "replay",
			"--eval-responses", filepath.Join(e.Inputs, "gsm8k_responses.jsonl"), "--eval-limit", "20"}
	}
	ref := campaign.Ref{Campaign: e.Campaign, Dir: campaign.Dir(e.Root, e.Campaign)}
	cells := []struct{ id, script string }{
		{"e2e-a", "agent.yaml"}, {"e2e-b", "agent.yaml"}, {"e2e-preempted", "slow.yaml"}, {"e2e-nomodel", "fail.yaml"},
	}
	var entries []campaign.Entry
	var jobs []campaign.Job
	var ids []string
	for i, c := range cells {
		j := campaign.Job{Index: i, RunID: c.id}
		entries = append(entries, campaign.Entry{Job: j, SpecHash: "e2e", Args: args(c.script)})
		jobs = append(jobs, j)
		ids = append(ids, c.id)
	}
	if err := campaign.AppendIndex(ref.Dir, entries); err != nil {
		t.Fatal(err)
	}
	es := e.Settings
	es.Executor = e.Exec.Name()
	if es.MaxPreemptions == 0 {
		es.MaxPreemptions, es.MaxTimeouts = 3, 2
	}
	b, _ := json.Marshal(es)
	os.WriteFile(filepath.Join(ref.Dir, campaign.ExecFile), b, 0o644)
	for _, d := range []string{filepath.Dir(ref.Dir), ref.Dir} {
		os.Chmod(d, 0o777)
	}
	os.Chmod(filepath.Join(ref.Dir, campaign.IndexFile), 0o644)

	st, err := e.Exec.Submit(ctx, campaign.Submission{Campaign: ref.Campaign, Root: e.Root, Dir: ref.Dir, Exe: e.Exe, Jobs: jobs,
		MaxParallel: len(cells), Resources: campaign.Resources{CPUs: 1, MemoryMB: 512}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Exec.Cancel(context.Background(), ref, ids) })
	started := filepath.Join(e.Root, "e2e-preempted", rundir.Workspace, "started.flag")
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(300 * time.Millisecond) {
		if _, err := os.Stat(started); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("e2e-preempted did not start its solve")
		}
	}
	e.Preempt(t, st)
	final := map[string]campaign.Status{}
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(time.Second) {
		got, err := e.Exec.List(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		// Only this campaign's cells count: a scheduler's history may
		// still hold jobs of an earlier campaign of the same name.
		clear(final)
		live := false
		for _, s := range got {
			if slices.Contains(ids, s.RunID) {
				final[s.RunID] = s
				live = live || s.State.Live()
			}
		}
		if !live && len(final) == len(cells) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the campaign did not end: %+v", got)
		}
	}
	logs := func(id string) string {
		paths, _ := e.Exec.Logs(ctx, ref, id)
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
		if _, err := os.Stat(filepath.Join(e.Root, c.id, rundir.ResultFile)); err != nil {
			t.Errorf("%s has no result.json: %v", c.id, err)
		}
	}
	if rq, err := campaign.ReadRequeues(ref.Dir, "e2e-preempted"); err != nil || rq.Preemptions != 1 {
		t.Errorf("requeues of e2e-preempted = %+v, %v; want 1 preemption", rq, err)
	}
	var solve struct {
		Segments []json.RawMessage `json:"segments"`
	}
	if b, err := os.ReadFile(filepath.Join(e.Root, "e2e-preempted", rundir.SolveStateFile)); err != nil || json.Unmarshal(b, &solve) != nil || len(solve.Segments) < 2 {
		t.Errorf("e2e-preempted trace/solve.json: %d segment(s) (%v), want the solve resumed in a second segment", len(solve.Segments), err)
	}
	if s := final["e2e-nomodel"]; s.State != campaign.StateFailed {
		t.Errorf("e2e-nomodel: %s (%s), want failed", s.State, s.Reason)
	}
	return final
}

// CampaignFile writes root/campaign.yaml: campaign name with three seeds of
// the scripted agent on GSM8K (a budget of seconds, no sandbox, replay
// evaluation from DemoInputs' inputs), output root out, max_parallel 2,
// and the executor block given (YAML under `executor:`, indented two
// spaces). It returns the file's path.
func CampaignFile(t *testing.T, root, name, out, inputs, executor string) string {
	t.Helper()
	file := filepath.Join(root, "campaign.yaml")
	text := "name: " + name + "\nout: " + out + `
agents:
  - {scaffold: scripted, name: scripted}
base_models: [qwen3-1.7b]
benchmarks: [gsm8k]
seeds: [1, 2, 3]
run:
  hours: 0.003
  gpus: 0
  sandbox: none
  script: ` + filepath.Join(inputs, "agent.yaml") + `
  eval: {backend: replay, responses: ` + filepath.Join(inputs, "gsm8k_responses.jsonl") + `, limit: 20}
limits: {max_parallel: 2}
executor:
` + executor
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}
