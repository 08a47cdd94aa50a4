package cli

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
	"github.com/ptb-dev/ptb/internal/campaign/local"
	"github.com/ptb-dev/ptb/internal/jobrun"
)

// On a machine with GPUs (PTB_GPU_E2E=1): a 2-cell local campaign with
// --hours 0.05 on the GPUs nvidia-smi lists. Each run gets a GPU of its
// own, assigned at run time, and its agent sees the device in the
// sandbox. Run with:
//
//	PTB_GPU_E2E=1 go test ./internal/cli -run TestLocalCampaignGPU -v -count=1
func TestLocalCampaignGPU(t *testing.T) {
	if os.Getenv("PTB_GPU_E2E") != "1" {
		t.Skip("set PTB_GPU_E2E=1 on a machine with GPUs")
	}
	ctx := context.Background()
	pool, err := local.DetectGPUs(ctx, "nvidia-smi", "/dev")
	if err != nil || len(pool) == 0 {
		t.Fatalf("no GPU found (nvidia-smi -L, /dev/nvidiaN): %v", err)
	}
	sb := "bwrap"
	if _, err := jobrun.SandboxBackend(ctx, "bwrap"); err != nil {
		t.Logf("bwrap unusable (%v): the none sandbox", err)
		sb = "none"
	}
	tmp := t.TempDir()
	script := filepath.Join(tmp, "gpu.yaml")
	os.WriteFile(script, []byte(`steps:
  - run: "ls /dev | grep nvidia > devs.txt; echo CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES > env.txt; nvidia-smi -L > smi.txt 2>&1 || true"
  - model: final_model
final: done
`), 0o644)
	out := filepath.Join(tmp, "runs")
	dir := campaign.Dir(out, "gpu")
	var entries []campaign.Entry
	var jobs []campaign.Job
	for i := range 2 {
		j := campaign.Job{Index: i, RunID: fmt.Sprintf("gpu-%d", i)}
		jobs = append(jobs, j)
		entries = append(entries, campaign.Entry{Job: j, SpecHash: "h", Args: []string{"--agent", "scripted", "--script", script,
			"--sandbox", sb, "--base-model", "qwen3-1.7b", "--benchmark", "gsm8k", "--hours", "0.05", "--eval-backend", "none", "--seed", fmt.Sprint(i)}})
	}
	if err := campaign.AppendIndex(dir, entries); err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	ex := &local.Executor{Auto: true}
	ref := campaign.Ref{Campaign: "gpu", Dir: dir}
	t.Cleanup(func() {
		for i := 0; i < 100 && supervisorPID(t, dir) != 0; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	if _, err := ex.Submit(ctx, campaign.Submission{Campaign: "gpu", Root: out, Dir: dir, Exe: self, Jobs: jobs, Resources: campaign.Resources{GPUs: 1}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(8 * time.Minute)
	var st []campaign.Status
	for {
		if st, err = ex.List(ctx, ref); err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(st, func(s campaign.Status) bool { return s.State.Live() }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still live: %+v", st)
		}
		time.Sleep(time.Second)
	}
	for _, s := range st {
		run := filepath.Join(out, s.RunID)
		logs, _ := ex.Logs(ctx, ref, s.RunID)
		var logText []byte
		if len(logs) > 0 {
			logText, _ = os.ReadFile(logs[0])
		}
		if s.State != campaign.StateExited {
			t.Errorf("%s: %s (%s)\n%s", s.RunID, s.State, s.Reason, logText)
			continue
		}
		sol := readSolve(t, run)
		devs, _ := os.ReadFile(filepath.Join(run, "workspace", "devs.txt"))
		env, _ := os.ReadFile(filepath.Join(run, "workspace", "env.txt"))
		smi, _ := os.ReadFile(filepath.Join(run, "workspace", "smi.txt"))
		t.Logf("%s: segment GPUs %v, solve gpus %+v\n/dev: %s\n%s\nnvidia-smi in the sandbox: %s", s.RunID, sol.Segments[0].GPUs, sol.GPUs, strings.Fields(string(devs)), env, smi)
		if len(sol.Segments[0].GPUs) != 1 {
			t.Errorf("%s ran on %v, want one GPU", s.RunID, sol.Segments[0].GPUs)
			continue
		}
		g := sol.Segments[0].GPUs[0]
		if sb == "bwrap" && !slices.Contains(strings.Fields(string(devs)), fmt.Sprintf("nvidia%d", g)) {
			t.Errorf("%s: /dev/nvidia%d is not visible in the sandbox: %s", s.RunID, g, devs)
		}
		if sb == "none" && !strings.Contains(string(env), fmt.Sprintf("=%d", g)) {
			t.Errorf("%s: CUDA_VISIBLE_DEVICES is not GPU %d: %s", s.RunID, g, env)
		}
	}
}
