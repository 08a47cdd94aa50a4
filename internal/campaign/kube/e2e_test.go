package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/campaign"
	"github.com/ptb-dev/ptb/internal/campaign/kube/kubetest"
)

// buildPTB builds the ptb binary into dir.
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
	return exe
}

// TestE2ECampaign runs real `ptb run` jobs (scripted agent, replay
// evaluation, a budget of seconds, no sandbox) as Kubernetes Jobs on the
// real control plane with the fake node: two end with a result, one is
// evicted mid-solve (DisruptionTarget, TERM, exit 75: the podFailurePolicy
// ignores it, the Job makes a new pod) and resumes, one leaves no
// final_model and its Job fails at once.
func TestE2ECampaign(t *testing.T) {
	kubeconfig, kubectl := plane(t)
	if testing.Short() {
		t.Skip("-short: the end-to-end campaign takes about a minute")
	}
	ctx := context.Background()
	kubetest.Start(t, kubeconfig, "ptb-fake-node")
	api, err := kubetest.NewClient(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	exe := buildPTB(t, root)
	demo := filepath.Join(root, "demo")
	if out, err := exec.Command(exe, "demo", "--out", demo, "--sandbox", "none").CombinedOutput(); err != nil {
		t.Fatalf("ptb demo: %v\n%s", err, out)
	}
	inputs := filepath.Join(demo, "inputs")
	slow := filepath.Join(inputs, "slow.yaml")
	fail := filepath.Join(inputs, "fail.yaml")
	os.WriteFile(slow, []byte("steps:\n  - run: touch started.flag\n  - sleep: 12s\n  - model: final_model\nfinal: done\n"), 0o644)
	os.WriteFile(fail, []byte("steps:\n  - say: no model today\nfinal: nothing\n"), 0o644)
	args := func(script string) []string {
		return []string{"--agent", "scripted", "--script", script, "--base-model", "qwen3-1.7b", "--benchmark", "gsm8k",
			"--hours", "0.01", "--sandbox", "none", "--eval-backend", "replay",
			"--eval-responses", filepath.Join(inputs, "gsm8k_responses.jsonl"), "--eval-limit", "20"}
	}
	name := "e2e" + strings.ToLower(strings.TrimLeft(filepath.Base(root), "0123456789"))
	if len(name) > 30 {
		name = name[:30]
	}
	name = strings.Trim(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, name), "-")
	ref := campaign.Ref{Campaign: name, Dir: campaign.Dir(root, name)}
	cells := []struct{ id, script string }{
		{"e2e-a", filepath.Join(inputs, "agent.yaml")},
		{"e2e-b", filepath.Join(inputs, "agent.yaml")},
		{"e2e-evicted", slow},
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
	b, _ := json.Marshal(campaign.ExecSettings{Executor: Name, MaxPreemptions: 3, MaxTimeouts: 2})
	os.WriteFile(filepath.Join(ref.Dir, campaign.ExecFile), b, 0o644)

	x, err := New(settings(t, "image: ptb-test\nkubectl: "+kubectl+"\nkubeconfig: "+kubeconfig+"\ngrace_seconds: 60\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.Submit(ctx, campaign.Submission{Campaign: ref.Campaign, Root: root, Dir: ref.Dir, Exe: exe, Jobs: jobs,
		Resources: campaign.Resources{CPUs: 1, MemoryMB: 512}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var ids []string
		for _, c := range cells {
			ids = append(ids, c.id)
		}
		x.Cancel(context.Background(), ref, ids)
	})
	started := filepath.Join(root, "e2e-evicted", "workspace", "started.flag")
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(300 * time.Millisecond) {
		if _, err := os.Stat(started); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("e2e-evicted did not start its solve")
		}
	}
	pods, err := kubetest.Pods(ctx, api, "default", "job-name="+jobName(ref.Campaign, 2))
	if err != nil || len(pods) != 1 {
		t.Fatalf("the running pod of e2e-evicted: %v, %v", pods, err)
	}
	if err := kubetest.Evict(ctx, api, "default", pods[0]); err != nil {
		t.Fatalf("evict %s: %v", pods[0], err)
	}
	if p := os.Getenv("PTB_KUBE_CAPTURE_EVICTED"); p != "" {
		// Once the replacement pod exists: the evicted pod, failed with its
		// DisruptionTarget, beside the new one.
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			out, _ := x.(*Executor).kubectl(ctx, nil, "get", "jobs,pods", "-l", LabelCampaign+"="+ref.Campaign, "-o", "json")
			if strings.Count(string(out), `"ptb-e2e-2-`) >= 2 {
				os.WriteFile(p, out, 0o644)
				break
			}
		}
	}
	var final map[string]campaign.Status
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(time.Second) {
		got, err := x.List(ctx, ref)
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
		paths, _ := x.Logs(ctx, ref, id)
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
	if rq, err := campaign.ReadRequeues(ref.Dir, "e2e-evicted"); err != nil || rq.Preemptions != 1 {
		t.Errorf("requeues of e2e-evicted = %+v, %v; want 1 preemption", rq, err)
	}
	// An evicted pod is deleted once it has stopped (as by a kubelet), so
	// the Job keeps no trace of it: the restart shows in exec's requeue
	// record above, which status reads.
	var solve struct {
		Segments []json.RawMessage `json:"segments"`
	}
	if b, err := os.ReadFile(filepath.Join(root, "e2e-evicted", "trace", "solve.json")); err != nil || json.Unmarshal(b, &solve) != nil || len(solve.Segments) < 2 {
		t.Errorf("e2e-evicted trace/solve.json: %d segment(s) (%v), want the solve resumed in a second segment", len(solve.Segments), err)
	}
	if s := final["e2e-nomodel"]; s.State != campaign.StateFailed {
		t.Errorf("e2e-nomodel: %s (%s), want failed (exit 4 fails the Job)", s.State, s.Reason)
	}
	// Capture for TestParseList when asked.
	if os.Getenv("PTB_KUBE_CAPTURE") != "" {
		out, _ := x.(*Executor).kubectl(ctx, nil, "get", "jobs,pods", "-l", LabelCampaign+"="+ref.Campaign, "-o", "json")
		os.WriteFile(os.Getenv("PTB_KUBE_CAPTURE"), out, 0o644)
	}
}
