package slurm

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/campaign"
	"github.com/ptb-dev/ptb/internal/campaign/campaigntest"
)

var capture = flag.Bool("capture", false, "with PTB_SLURM=1: submit a campaign to the real Slurm and save squeue --json at each stage in testdata/squeue-*.json")

// TestCaptureSqueue records what the real slurmctld says about a campaign's
// arrays (pending, running, requeued, cancelled, failed, completed; a
// second chunk with index base 5) for the parsing tests:
//
//	PTB_SLURM=1 go test ./internal/campaign/slurm -run TestCaptureSqueue -capture
func TestCaptureSqueue(t *testing.T) {
	if !*capture {
		t.Skip("run with -capture (and PTB_SLURM=1) to record testdata/squeue-*.json")
	}
	needSlurm(t)
	ctx := context.Background()
	root := t.TempDir()
	name := "capture"
	dir := campaign.Dir(root, name)
	ids := []string{"ok-a", "fail-b", "sleep-c", "sleep-d", "nap-e", "ok-f", "sleep-g"}
	var entries []campaign.Entry
	var jobs []campaign.Job
	for i, id := range ids {
		j := campaign.Job{Index: i, RunID: id}
		entries = append(entries, campaign.Entry{Job: j, SpecHash: "capture", Args: []string{"--agent", "scripted"}})
		jobs = append(jobs, j)
	}
	if err := campaign.AppendIndex(dir, entries); err != nil {
		t.Fatal(err)
	}
	ex := &Executor{set: Settings{GRES: "gpu", SignalBefore: 300, MaxArraySize: 5}}
	sub := campaign.Submission{
		Campaign: name, Root: root, Dir: dir, Exe: campaigntest.FakeExe(t, root), Jobs: jobs,
		Resources:   campaign.Resources{GPUs: 1, CPUs: 1, MemoryMB: 256, TimeLimit: 10 * time.Minute},
		MaxParallel: 3,
	}
	ref := campaign.Ref{Campaign: name, Dir: dir}
	t.Cleanup(func() { exec.Command("scancel", "--name="+jobName(name)).Run() })
	if _, err := ex.Submit(ctx, sub); err != nil {
		t.Fatal(err)
	}
	save := func(stage string) {
		b, err := run(ctx, "squeue", "--json", "--name="+jobName(name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", "squeue-"+stage+".json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	save("pending")
	waitFor := func(what string, ok func() bool) {
		deadline := time.Now().Add(3 * time.Minute)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 3 minutes", what)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	started := func(id string) func() bool {
		return func() bool { _, err := os.Stat(filepath.Join(root, "contract", id+".started")); return err == nil }
	}
	waitFor("sleep-c and sleep-d start", func() bool { return started("sleep-c")() && started("sleep-d")() })
	save("running")
	st, err := ex.List(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	backend := map[string]string{}
	for _, s := range st {
		backend[s.RunID] = s.BackendID
	}
	// sleep-c is requeued (as ptb campaign exec does), sleep-d cancelled.
	if _, err := run(ctx, "scontrol", "requeue", backend["sleep-c"]); err != nil {
		t.Fatal(err)
	}
	if err := ex.Cancel(ctx, ref, []string{"sleep-d"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	save("requeued")
	waitFor("sleep-c runs again", func() bool {
		b, _ := os.ReadFile(filepath.Join(root, "contract", "sleep-c.ran"))
		return len(b) > 0 && strings.Count(string(b), "argv:") == 2
	})
	if err := ex.Cancel(ctx, ref, []string{"sleep-c", "sleep-g"}); err != nil {
		t.Fatal(err)
	}
	// A cancelled task of an array's pending rest leaves squeue at once
	// (sleep-g); every other one stays for MinJobAge.
	waitFor("every job ends", func() bool {
		st, err := ex.List(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st {
			if s.State.Live() {
				return false
			}
		}
		return len(st) >= len(ids)-1
	})
	save("ended")
}
