package htcondor

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/campaign"
	"github.com/ptb-dev/ptb/internal/campaign/campaigntest"
)

// TestE2ECampaign runs the end-to-end campaign of campaigntest.E2E on the
// pool (no sandbox: bubblewrap cannot make user namespaces in the pool's
// chroot): the preempted run is vacated mid-solve (SIGTERM, exit 75,
// HTCondor runs it again) and resumes; the run with no model is reported
// failed with its exit code.
func TestE2ECampaign(t *testing.T) {
	bin := poolBin(t)
	if testing.Short() {
		t.Skip("-short: the end-to-end campaign takes about a minute")
	}
	ctx := context.Background()
	root := sharedRoot(t)
	exe := campaigntest.BuildPTB(t, root)
	x := New(Settings{Bin: bin, VacateTime: time.Minute})
	e := campaigntest.E2E{Exec: x, Root: root, Exe: exe, Inputs: campaigntest.DemoInputs(t, exe, root), Campaign: "e2e",
		Preempt: func(t *testing.T, st []campaign.Status) {
			t.Cleanup(func() { x.run(ctx, "", "condor_rm", clusterOf(st[0].BackendID)) })
			if _, err := x.run(ctx, "", "condor_vacate_job", find(st, "e2e-preempted").BackendID); err != nil {
				t.Fatal(err)
			}
		}}
	final := e.Run(t)
	if s := final["e2e-preempted"]; s.Restarts != 1 {
		t.Errorf("e2e-preempted ran %d times after the first, want 1 (vacated once)", s.Restarts)
	}
	if s := final["e2e-nomodel"]; !strings.HasPrefix(s.Reason, "exit code") {
		t.Errorf("e2e-nomodel: reason %q, want its exit code", s.Reason)
	}
}
