package htcondor

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/campaign/campaigntest"
)

// TestCLICampaignOnPool drives the pool through the commands a user types:
// `ptb campaign up FILE --wait` runs a 3-seed campaign of real ptb runs
// (scripted agent, replay evaluation, seconds of budget, no sandbox) to
// completion under max_parallel 2; a second `up` submits nothing; status
// and logs answer.
func TestCLICampaignOnPool(t *testing.T) {
	bin := poolBin(t)
	if testing.Short() {
		t.Skip("-short: the campaign takes about a minute")
	}
	root := sharedRoot(t)
	exe := campaigntest.BuildPTB(t, root)
	if out, _ := exec.Command(exe, "campaign", "up", filepath.Join(root, "none.yaml")).CombinedOutput(); strings.Contains(string(out), "not built yet") {
		t.Skip("ptb campaign up is not built on this branch yet")
	}
	inputs := campaigntest.DemoInputs(t, exe, root)
	out := filepath.Join(root, "runs")
	dir := filepath.Join(out, ".campaign", "condor-e2e")
	// The jobs run as the pool's user: the campaign directory must be
	// theirs to write too (on a real cluster, the submitter is that user).
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{out, filepath.Dir(dir), dir} {
		os.Chmod(d, 0o777)
	}
	file := campaigntest.CampaignFile(t, root, "condor-e2e", out, inputs, "  htcondor:\n    bin: "+bin+"\n    vacate_time: 1m\n")
	ptb := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
		defer cancel()
		b, err := exec.CommandContext(ctx, exe, args...).CombinedOutput()
		return string(b), err
	}
	o, err := ptb("campaign", "up", file, "--wait", "--interval", "2s", "--exe", exe)
	if err != nil {
		t.Fatalf("ptb campaign up --wait: %v\n%s", err, o)
	}
	t.Logf("ptb campaign up --wait:\n%s", o)
	runs, _ := filepath.Glob(filepath.Join(out, "*", "result.json"))
	if len(runs) != 3 {
		t.Fatalf("%d runs have a result.json, want 3: %v", len(runs), runs)
	}
	subs, _ := filepath.Glob(filepath.Join(dir, "htcondor", "submit-*.sub"))
	if o, err := ptb("campaign", "up", file, "--exe", exe); err != nil {
		t.Fatalf("second ptb campaign up: %v\n%s", err, o)
	}
	again, _ := filepath.Glob(filepath.Join(dir, "htcondor", "submit-*.sub"))
	if len(again) != len(subs) {
		t.Errorf("a second up submitted again: %d submit files, then %d", len(subs), len(again))
	}
	if o, err := ptb("campaign", "status", file); err == nil {
		t.Logf("ptb campaign status:\n%s", o)
	}
	o, err = ptb("campaign", "status", file, "--json")
	if err != nil {
		t.Fatalf("ptb campaign status: %v\n%s", err, o)
	}
	id := strings.TrimSuffix(filepath.Base(filepath.Dir(runs[0])), "/")
	if !strings.Contains(o, id) {
		t.Errorf("status lacks %s:\n%s", id, o)
	}
	if o, err := ptb("campaign", "logs", file, id); err != nil || len(strings.TrimSpace(o)) == 0 {
		t.Errorf("ptb campaign logs %s: %v\n%s", id, err, o)
	}
}
