package kube

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/campaign/campaigntest"
	"github.com/ptb-dev/ptb/internal/campaign/kube/kubetest"
)

// TestCLICampaign runs `ptb campaign up --wait` with the kubernetes
// executor on the real control plane and the fake node: three cells under
// max_parallel 2 (the engine throttles: Kubernetes has no cap across Jobs),
// all done; a second `up` creates no Job; status and logs answer.
func TestCLICampaign(t *testing.T) {
	kubeconfig, kubectl := plane(t)
	if testing.Short() {
		t.Skip("-short: the campaign takes about a minute")
	}
	kubetest.Start(t, kubeconfig, "ptb-fake-node")
	root := t.TempDir()
	exe := campaigntest.BuildPTB(t, root)
	inputs := campaigntest.DemoInputs(t, exe, root)
	out := filepath.Join(root, "runs")
	file := campaigntest.CampaignFile(t, root, "kube-cli", out, inputs,
		"  kubernetes:\n    image: ptb-test\n    kubectl: "+kubectl+"\n    kubeconfig: "+kubeconfig+"\n    grace_seconds: 60\n")
	ptb := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
		defer cancel()
		b, err := exec.CommandContext(ctx, exe, args...).CombinedOutput()
		return string(b), err
	}
	jobs := func() string {
		b, err := exec.Command(kubectl, "--kubeconfig", kubeconfig, "get", "jobs", "-l", LabelCampaign+"=kube-cli",
			"-o", "jsonpath={range .items[*]}{.metadata.uid} {end}").Output()
		if err != nil {
			t.Fatalf("kubectl get jobs: %v", err)
		}
		return string(b)
	}
	t.Cleanup(func() {
		exec.Command(kubectl, "--kubeconfig", kubeconfig, "delete", "jobs", "-l", LabelCampaign+"=kube-cli", "--wait=false").Run()
	})
	o, err := ptb("campaign", "up", file, "--wait", "--interval", "2s", "--exe", exe)
	if err != nil {
		t.Fatalf("ptb campaign up --wait: %v\n%s", err, o)
	}
	t.Logf("ptb campaign up --wait:\n%s", o)
	runs, _ := filepath.Glob(filepath.Join(out, "*", "result.json"))
	if len(runs) != 3 {
		t.Fatalf("%d runs have a result.json, want 3: %v", len(runs), runs)
	}
	before := jobs()
	if n := len(strings.Fields(before)); n != 3 {
		t.Errorf("%d Jobs, want 3 (one a run)", n)
	}
	if o, err := ptb("campaign", "up", file, "--exe", exe); err != nil {
		t.Fatalf("second ptb campaign up: %v\n%s", err, o)
	}
	if after := jobs(); after != before {
		t.Errorf("a second up made Jobs again: %q, then %q", before, after)
	}
	o, err = ptb("campaign", "status", file, "--json")
	if err != nil {
		t.Fatalf("ptb campaign status: %v\n%s", err, o)
	}
	id := filepath.Base(filepath.Dir(runs[0]))
	if !strings.Contains(o, id) || !strings.Contains(o, "ptb-kube-cli-") {
		t.Errorf("status lacks %s or its Job:\n%s", id, o)
	}
	if o, err := ptb("campaign", "logs", file, id); err != nil || !strings.Contains(o, id) {
		t.Errorf("ptb campaign logs %s: %v\n%s", id, err, o)
	}
}
