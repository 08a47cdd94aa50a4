package kube

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/campaign"
	"github.com/ptb-dev/ptb/internal/campaign/campaigntest"
	"github.com/ptb-dev/ptb/internal/campaign/kube/kubetest"
)

// TestE2ECampaign runs the end-to-end campaign of campaigntest.E2E as
// Kubernetes Jobs on the real control plane with the fake node: the
// preempted run is evicted mid-solve through the Eviction API
// (DisruptionTarget, TERM, exit 75: the podFailurePolicy ignores it and the
// Job makes a new pod) and resumes; the run with no model fails its Job at
// once (the FailJob rule).
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
	exe := campaigntest.BuildPTB(t, root)
	x := newExec(t, "image: ptb-test\nkubectl: "+kubectl+"\nkubeconfig: "+kubeconfig+"\ngrace_seconds: 60\n")
	capture := func(env string) {
		if p := os.Getenv(env); p != "" {
			out, _ := x.kubectl(ctx, nil, "get", "jobs,pods", "-l", LabelCampaign+"=e2e", "-o", "json")
			os.WriteFile(p, out, 0o644)
		}
	}
	e := campaigntest.E2E{Exec: x, Root: root, Exe: exe, Inputs: campaigntest.DemoInputs(t, exe, root), Campaign: "e2e",
		Preempt: func(t *testing.T, _ []campaign.Status) {
			pods, err := kubetest.Pods(ctx, api, "default", "job-name="+jobName("e2e", 2))
			if err != nil || len(pods) != 1 {
				t.Fatalf("the running pod of e2e-preempted: %v, %v", pods, err)
			}
			if err := kubetest.Evict(ctx, api, "default", pods[0]); err != nil {
				t.Fatalf("evict %s: %v", pods[0], err)
			}
			// testdata/get-jobs-pods-evicted.json: the evicted pod being
			// deleted, with its DisruptionTarget condition.
			time.Sleep(500 * time.Millisecond)
			capture("PTB_KUBE_CAPTURE_EVICTED")
		}}
	final := e.Run(t)
	if s := final["e2e-nomodel"]; !strings.HasPrefix(s.Reason, "PodFailurePolicy") {
		t.Errorf("e2e-nomodel: reason %q, want the FailJob rule's", s.Reason)
	}
	// An evicted pod is deleted once it has stopped (as by a kubelet), so
	// the Job keeps no trace of it: the restart shows in exec's requeue
	// record, which E2E checks and status reads.
	capture("PTB_KUBE_CAPTURE") // testdata/get-jobs-pods.json
}
