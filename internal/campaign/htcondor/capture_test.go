package htcondor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/campaign"
	"github.com/ptb-dev/ptb/internal/campaign/campaigntest"
)

// The capture is the campaign the testdata/condor_*.json files were taken
// from, on the pool of scripts/ci/condor-up.sh (HTCondor 23.9.6):
//
//	cluster A: ok-a (exit 0), fail-b (exit 3), sleep-c (vacated once with
//	           condor_vacate_job: TERM, exit 75, runs again), sleep-r (removed)
//	cluster B: sleep-d, nap-e, nap-f under max_materialize = 1 (nap-e and
//	           nap-f wait in the job factory)
//	cluster C: sleep-h, held with condor_hold
var captureWant = map[string]struct {
	state    campaign.State
	reason   string // prefix
	restarts int
}{
	"ok-a":    {state: campaign.StateExited},
	"fail-b":  {state: campaign.StateFailed, reason: "exit code 3"},
	"sleep-c": {state: campaign.StateRunning, restarts: 1},
	"sleep-r": {state: campaign.StateFailed, reason: "removed: ptb campaign cancel"},
	"sleep-d": {state: campaign.StateRunning},
	"nap-e":   {state: campaign.StatePending, reason: notMaterialized},
	"nap-f":   {state: campaign.StatePending, reason: notMaterialized},
	"sleep-h": {state: campaign.StatePending, reason: "held: "},
}

// TestCapture re-takes testdata/condor_*.json from the real pool when
// PTB_CONDOR_CAPTURE=1 (and checks List on the live pool either way).
func TestCapture(t *testing.T) {
	bin := poolBin(t)
	if os.Getenv("PTB_CONDOR_CAPTURE") == "" {
		t.Skip("set PTB_CONDOR_CAPTURE=1 to re-take testdata/condor_*.json from the pool")
	}
	ctx := context.Background()
	root := sharedRoot(t)
	ref := campaign.Ref{Campaign: "cap", Dir: campaign.Dir(root, "cap")}
	var entries []campaign.Entry
	ids := []string{"ok-a", "fail-b", "sleep-c", "sleep-r", "sleep-d", "nap-e", "nap-f", "sleep-h"}
	for i, id := range ids {
		entries = append(entries, campaign.Entry{Job: campaign.Job{Index: i, RunID: id}, SpecHash: "capture"})
	}
	if err := campaign.AppendIndex(ref.Dir, entries); err != nil {
		t.Fatal(err)
	}
	exe := campaigntest.FakeExe(t, root)
	for _, d := range []string{filepath.Dir(exe), filepath.Dir(ref.Dir), ref.Dir} {
		os.Chmod(d, 0o777)
	}
	e := New(Settings{Bin: bin, VacateTime: 30 * time.Second})
	sub := func(max int, jobs ...campaign.Job) []campaign.Status {
		st, err := e.Submit(ctx, campaign.Submission{Campaign: ref.Campaign, Root: root, Dir: ref.Dir, Exe: exe, Jobs: jobs, MaxParallel: max,
			Resources: campaign.Resources{CPUs: 1, MemoryMB: 128}})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	a := sub(0, entries[0].Job, entries[1].Job, entries[2].Job, entries[3].Job)
	b := sub(1, entries[4].Job, entries[5].Job, entries[6].Job)
	c := sub(0, entries[7].Job)
	t.Cleanup(func() {
		e.run(ctx, "", "condor_rm", clusterOf(a[0].BackendID), clusterOf(b[0].BackendID), clusterOf(c[0].BackendID))
	})
	until := func(what string, ok func(map[string]campaign.Status) bool) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
			st, err := e.List(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			m := map[string]campaign.Status{}
			for _, s := range st {
				m[s.RunID] = s
			}
			if ok(m) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s: %+v", what, st)
			}
		}
	}
	started := func(id string) bool {
		_, err := os.Stat(filepath.Join(root, "contract", id+".started"))
		return err == nil
	}
	until("the first jobs", func(m map[string]campaign.Status) bool {
		return !m["ok-a"].State.Live() && !m["fail-b"].State.Live() && started("sleep-c") && started("sleep-r") && started("sleep-d") && started("sleep-h")
	})
	if _, err := e.run(ctx, "", "condor_hold", c[0].BackendID); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(root, "contract", "sleep-c.started"))
	if _, err := e.run(ctx, "", "condor_vacate_job", a[2].BackendID); err != nil {
		t.Fatal(err)
	}
	if err := e.Cancel(ctx, ref, []string{"sleep-r"}); err != nil {
		t.Fatal(err)
	}
	until("vacate, hold and remove", func(m map[string]campaign.Status) bool {
		return started("sleep-c") && m["sleep-c"].State == campaign.StateRunning && m["sleep-c"].Restarts == 1 &&
			m["sleep-r"].State == campaign.StateFailed && strings.HasPrefix(m["sleep-h"].Reason, "held")
	})
	// The three queries of List, verbatim.
	constraint := AttrCampaign + ` == "cap"`
	for _, q := range []struct {
		file string
		args []string
	}{
		{"condor_q-jobs.json", []string{"condor_q", "-json", "-constraint", constraint, "-attributes", strings.Join(jobAttrs, ",")}},
		{"condor_q-factory.json", []string{"condor_q", "-factory", "-json", "-constraint", constraint, "-attributes", strings.Join(factoryAttrs, ",")}},
		{"condor_history.json", []string{"condor_history", "-json", "-constraint", constraint, "-limit", "96", "-attributes", strings.Join(jobAttrs, ",")}},
	} {
		out, err := e.run(ctx, "", q.args[0], q.args[1:]...)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", q.file), out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The factory's queue file, under its own name.
	fs, err := parseAds(mustRead(t, "testdata/condor_q-factory.json"), "condor_q -factory")
	if err != nil || len(fs) != 1 {
		t.Fatalf("factory ads: %v %+v", err, fs)
	}
	if err := os.WriteFile(filepath.Join("testdata", filepath.Base(fs[0].QueueFile)), mustRead(t, fs[0].QueueFile), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// capturedStatuses merges the captured ads as List does.
func capturedStatuses(t *testing.T) []campaign.Status {
	t.Helper()
	var ads [3][]ad
	for i, f := range []string{"condor_q-jobs.json", "condor_q-factory.json", "condor_history.json"} {
		var err error
		if ads[i], err = parseAds(mustRead(t, filepath.Join("testdata", f)), f); err != nil {
			t.Fatal(err)
		}
	}
	return merge(ads[0], ads[1], ads[2], func(path string) ([]string, error) {
		return readQueueFile(filepath.Join("testdata", filepath.Base(path)))
	})
}

func TestListCaptured(t *testing.T) {
	st := capturedStatuses(t)
	if len(st) != len(captureWant) {
		t.Errorf("got %d statuses, want %d: %+v", len(st), len(captureWant), st)
	}
	seen := map[string]bool{}
	for _, s := range st {
		want, ok := captureWant[s.RunID]
		if !ok {
			t.Errorf("unexpected run %q", s.RunID)
			continue
		}
		seen[s.RunID] = true
		if s.State != want.state || !strings.HasPrefix(s.Reason, want.reason) || s.Restarts != want.restarts {
			t.Errorf("%s: got %s %q restarts %d, want %s %q… restarts %d", s.RunID, s.State, s.Reason, s.Restarts, want.state, want.reason, want.restarts)
		}
		if _, _, err := jobID(s.BackendID); err != nil {
			t.Errorf("%s: backend id %q: %v", s.RunID, s.BackendID, err)
		}
	}
	// The factory's cluster ad carries the first item's run id: it must
	// not stand for sleep-d, nor make nap-e look running.
	if st := find(st, "nap-e"); strings.HasSuffix(st.BackendID, ".0") {
		t.Errorf("nap-e got the factory's cluster ad: %+v", st)
	}
}

func find(st []campaign.Status, id string) campaign.Status {
	for _, s := range st {
		if s.RunID == id {
			return s
		}
	}
	return campaign.Status{}
}

func TestRemovals(t *testing.T) {
	st := capturedStatuses(t)
	b := clusterOf(find(st, "sleep-d").BackendID)
	tests := []struct {
		name   string
		cancel []string
		args   string
		left   string
	}{
		{"materialized", []string{"sleep-c"}, find(st, "sleep-c").BackendID, ""},
		{"ended runs are left alone", []string{"ok-a", "fail-b", "sleep-r"}, "", ""},
		{"one factory item", []string{"nap-e"}, "", "nap-e"},
		{"a whole factory", []string{"sleep-d", "nap-e", "nap-f"}, b, ""},
		{"held", []string{"sleep-h"}, find(st, "sleep-h").BackendID, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, left := removals(st, tt.cancel)
			if strings.Join(args, " ") != tt.args || strings.Join(left, " ") != tt.left {
				t.Errorf("removals(%v) = %v, %v; want %q, %q", tt.cancel, args, left, tt.args, tt.left)
			}
		})
	}
}
