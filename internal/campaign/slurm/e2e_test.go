package slurm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/campaign/campaigntest"
)

// TestE2ECampaign runs a campaign of eight real `ptb run` jobs (scripted
// agent, replay evaluation, budgets of seconds) as Slurm arrays, through
// the real `ptb campaign up/status/cancel`:
//
//   - the eight cells go out as two arrays (the cluster's MaxArraySize is 5);
//   - a second `up` submits nothing;
//   - one run (slow s0) is cancelled mid-solve, submitted again by `up`,
//     and resumes;
//   - one (slow s1) is requeued with `scontrol requeue` and resumes in the
//     same array task with the solve time that was left;
//   - one (nomodel s0) leaves no final_model, and status says so.
//
// It needs PTB_SLURM=1 (scripts/ci/slurm-up.sh) and a ptb whose `campaign
// up` and `campaign exec` are built.
func TestE2ECampaign(t *testing.T) {
	needSlurm(t)
	if testing.Short() {
		t.Skip("-short: the Slurm end-to-end campaign takes minutes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	ptb := campaigntest.BuildPTB(t, t.TempDir())
	// The placeholders of an unfinished branch have no flags.
	for sub, flag := range map[string]string{"up": "--dry-run", "exec": "--dir"} {
		out, _ := exec.Command(ptb, "campaign", sub, "--help").CombinedOutput()
		if !strings.Contains(string(out), flag) {
			t.Skipf("ptb campaign %s is not built on this branch yet:\n%s", sub, out)
		}
	}
	root := t.TempDir()
	os.Chmod(root, 0o755)
	out := filepath.Join(root, "runs")
	write := func(name, content string) string {
		p := filepath.Join(root, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	okScript := write("ok.yaml", "steps:\n  - model: final_model\nfinal: done\n")
	slowScript := write("slow.yaml", "steps:\n  - say: slow start\n  - sleep: 25s\n  - model: final_model\nfinal: done\n")
	noModel := write("nomodel.yaml", "steps:\n  - say: I leave no model\nfinal: done\n")
	responses := write("responses.jsonl", `{"id": 0, "completion": "ANSWER: 18"}`+"\n"+`{"id": 1, "completion": "ANSWER: 3"}`+"\n")
	sandbox := "bwrap"
	if os.Getenv("PTB_SLURM_SANDBOX") != "" {
		sandbox = os.Getenv("PTB_SLURM_SANDBOX")
	}
	name := fmt.Sprintf("e2e-%d", os.Getpid())
	file := write("campaign.yaml", fmt.Sprintf(`name: %s
out: %s
agents:
  - {name: ok, scaffold: scripted, label: ok}
  - {name: slow, scaffold: scripted, label: slow, args: [--script, %s]}
  - {name: nomodel, scaffold: scripted, label: nomodel, args: [--script, %s]}
base_models: [qwen3-1.7b]
benchmarks: [gsm8k]
seeds: [0, 1, 2, 3, 4]
exclude: [{agent: slow}, {agent: nomodel}]
include:
  - {agent: slow, base_model: qwen3-1.7b, benchmark: gsm8k, seed: 0}
  - {agent: slow, base_model: qwen3-1.7b, benchmark: gsm8k, seed: 1}
  - {agent: nomodel, base_model: qwen3-1.7b, benchmark: gsm8k, seed: 0}
run: {script: %s, hours: 0.02, gpus: 0, sandbox: %s, eval: {backend: replay, responses: %s, limit: 2}}
resources: {cpus: 1, memory: 1G}
limits: {max_parallel: 8}
executor:
  slurm: {}
`, name, out, slowScript, noModel, okScript, sandbox, responses))
	const (
		slow0   = "gsm8k_qwen3-1.7b_scripted_s0_slow"
		slow1   = "gsm8k_qwen3-1.7b_scripted_s1_slow"
		nomodel = "gsm8k_qwen3-1.7b_scripted_s0_nomodel"
	)
	campaignDir := filepath.Join(out, ".campaign", name)
	t.Cleanup(func() { exec.Command("scancel", "--name="+jobName(name)).Run() })
	ptbRun := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, ptb, args...)
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		if err := cmd.Run(); err != nil {
			t.Fatalf("ptb %s: %v\n%s", strings.Join(args, " "), err, buf.String())
		}
		return buf.String()
	}
	status := func() map[string]e2eRun {
		t.Helper()
		var rep struct {
			Runs []e2eRun `json:"runs"`
		}
		b := ptbRun("campaign", "status", file, "--json")
		if err := json.Unmarshal([]byte(b), &rep); err != nil {
			t.Fatalf("status --json: %v\n%s", err, b)
		}
		m := map[string]e2eRun{}
		for _, r := range rep.Runs {
			m[r.RunID] = r
		}
		return m
	}
	waitFor := func(what string, limit time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for !ok() {
			if time.Now().After(deadline) {
				b, _ := exec.Command(ptb, "campaign", "status", file).CombinedOutput()
				q, _ := exec.Command("squeue").CombinedOutput()
				t.Fatalf("%s: not within %s\n%s\n%s", what, limit, b, q)
			}
			time.Sleep(time.Second)
		}
	}

	// 1. Eight cells, two arrays.
	t.Logf("up:\n%s", ptbRun("campaign", "up", file))
	recs, err := readRecords(filepath.Join(campaignDir, "slurm"))
	if err != nil || len(recs) != 2 || len(recs[0].Indices) != 5 || len(recs[1].Indices) != 3 || recs[1].Base != 5 {
		t.Fatalf("arrays after the first up: %+v (%v), want indices 0-4 and 5-7 (base 5)", recs, err)
	}
	// 2. A second up submits nothing.
	t.Logf("second up:\n%s", ptbRun("campaign", "up", file))
	if recs, _ := readRecords(filepath.Join(campaignDir, "slurm")); len(recs) != 2 {
		t.Fatalf("the second up submitted again: %+v", recs)
	}

	// 3. Both slow runs are mid-solve: cancel s0, requeue s1.
	midSolve := func(id string) func() bool {
		return func() bool {
			st, err := readSolve(filepath.Join(out, id))
			if err != nil || len(st.Segments) == 0 {
				return false
			}
			s := st.Segments[len(st.Segments)-1]
			return s.End == nil && s.Heartbeat.Sub(s.Start) > 4*time.Second
		}
	}
	waitFor("slow s0 and s1 solving", 4*time.Minute, func() bool { return midSolve(slow0)() && midSolve(slow1)() })
	st := status()
	backend1 := st[slow1].Backend.BackendID
	ptbRun("campaign", "cancel", file, slow0)
	if b, err := exec.CommandContext(ctx, "scontrol", "requeue", backend1).CombinedOutput(); err != nil {
		t.Fatalf("scontrol requeue %s: %v: %s", backend1, err, b)
	}
	// Slurm holds a requeued job for about two minutes (BeginTime); let it
	// start as soon as it can.
	waitFor("slow s1 pending again", time.Minute, func() bool {
		return status()[slow1].Backend.State == "pending"
	})
	exec.CommandContext(ctx, "scontrol", "update", "JobId="+backend1, "StartTime=now").Run()
	waitFor("slow s0's job ends", time.Minute, func() bool {
		b := status()[slow0].Backend
		return b == nil || (b.State != "pending" && b.State != "running")
	})
	// 4. up submits the cancelled run again; the campaign finishes.
	t.Logf("up after cancel:\n%s", ptbRun("campaign", "up", file))
	if recs, _ := readRecords(filepath.Join(campaignDir, "slurm")); len(recs) != 3 || len(recs[2].Indices) != 1 || recs[2].Indices[0] != 5 {
		t.Fatalf("arrays after the cancel: %+v, want a third with index 5 (slow s0) only", recs)
	}
	t.Logf("up --wait:\n%s", ptbRun("campaign", "up", file, "--wait", "--interval", "3s"))

	final := status()
	if b, err := exec.CommandContext(ctx, ptb, "campaign", "status", file).CombinedOutput(); err == nil {
		t.Logf("status at the end:\n%s", b)
	}
	if len(final) != 8 {
		t.Errorf("status has %d runs, want 8", len(final))
	}
	for id, r := range final {
		if r.State != "done" {
			t.Errorf("%s is %s, want done (%v)", id, r.State, r.Triage)
		}
		if _, err := os.Stat(filepath.Join(out, id, "result.json")); err != nil {
			t.Errorf("%s has no result.json: %v", id, err)
		}
	}
	if tr := strings.Join(final[nomodel].Triage, "\n"); !strings.Contains(tr, "final_model") {
		t.Errorf("nomodel's triage %q does not say it left no final_model", tr)
	}
	if r := final[slow1].Requeues; r.Preemptions != 1 {
		t.Errorf("slow s1's requeue record %+v, want one preemption (scontrol requeue sends TERM)", r)
	}
	if b := final[slow1].Backend; b == nil || b.Restarts < 1 {
		t.Errorf("slow s1's job %+v, want a restart", b)
	}
	if final[slow0].Submits < 2 {
		t.Errorf("slow s0 was submitted %d times, want 2 (cancelled, then submitted again)", final[slow0].Submits)
	}
	// The resumed runs spent no more than their budget, each start with the
	// time the earlier ones left.
	for _, id := range []string{slow0, slow1} {
		st, err := readSolve(filepath.Join(out, id))
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Segments) < 2 {
			t.Errorf("%s ran %d solve segment(s), want a resume: %+v", id, len(st.Segments), st.Segments)
			continue
		}
		var used time.Duration
		for i, s := range st.Segments {
			left := time.Duration(st.BudgetS*float64(time.Second)) - used
			if got := s.Deadline.Sub(s.Start); got > left+2*time.Second {
				t.Errorf("%s segment %d (%s) had %s until its deadline, want at most the %s left", id, i+1, s.Kind, got.Round(time.Second), left.Round(time.Second))
			}
			if s.End != nil {
				used += s.End.Sub(s.Start)
			}
		}
		if last := st.Segments[len(st.Segments)-1]; last.Kind != "resume" || last.EndReason != "exited" {
			t.Errorf("%s last segment %s ended %s, want a resume that exited", id, last.Kind, last.EndReason)
		}
	}
	if b, err := exec.CommandContext(ctx, ptb, "campaign", "logs", file, slow1).CombinedOutput(); err != nil || !strings.Contains(string(b), "REQUEUE") {
		t.Errorf("logs of slow s1 do not show the requeue (%v):\n%s", err, b)
	}
}

type e2eRun struct {
	RunID    string   `json:"run_id"`
	State    string   `json:"state"`
	Triage   []string `json:"triage"`
	Submits  int      `json:"submits"`
	Requeues struct {
		Preemptions int `json:"preemptions"`
		Timeouts    int `json:"timeouts"`
	} `json:"requeues"`
	Backend *struct {
		BackendID string `json:"backend_id"`
		State     string `json:"state"`
		Restarts  int    `json:"restarts"`
	} `json:"backend"`
}

// solveState is the part of RUN_DIR/trace/solve.json the test reads.
type solveState struct {
	BudgetS  float64 `json:"budget_s"`
	Segments []struct {
		Kind      string     `json:"kind"`
		Start     time.Time  `json:"start"`
		Heartbeat time.Time  `json:"heartbeat"`
		End       *time.Time `json:"end"`
		Deadline  time.Time  `json:"deadline"`
		EndReason string     `json:"end_reason"`
	} `json:"segments"`
}

func readSolve(runDir string) (solveState, error) {
	var st solveState
	b, err := os.ReadFile(filepath.Join(runDir, "trace", "solve.json"))
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}
