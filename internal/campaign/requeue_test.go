package campaign

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Preemptions and timeouts are counted apart, each against its own cap.
func TestRequeuesCount(t *testing.T) {
	s := ExecSettings{MaxPreemptions: 2, MaxTimeouts: 1}
	var r Requeues
	now := time.Date(2026, 11, 30, 1, 2, 3, 0, time.UTC)
	for i, c := range []struct {
		stop   Stop
		sig    string
		again  bool
		gaveUp string
	}{
		{StopPreempt, "SIGTERM", true, ""},
		{StopTimeout, "SIGUSR1", true, ""},
		{StopPreempt, "SIGHUP", true, ""},
		{StopTimeout, "SIGUSR1", false, "max_timeouts 1"},
	} {
		if got := r.Count(s, c.stop, c.sig, now); got != c.again || r.GaveUp != c.gaveUp || r.LastSignal != c.sig {
			t.Fatalf("stop %d: again %v, record %+v; want %v, gave_up %q", i, got, r, c.again, c.gaveUp)
		}
	}
	if r.Preemptions != 2 || r.Timeouts != 2 || r.LastAt != "2026-11-30T01:02:03Z" {
		t.Errorf("record %+v", r)
	}
	dir := t.TempDir()
	if err := WriteRequeues(dir, "run-a", r); err != nil {
		t.Fatal(err)
	}
	got, err := ReadRequeues(dir, "run-a")
	if err != nil || got != r {
		t.Errorf("read back %+v, %v; want %+v", got, err, r)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, RequeuesDir)); len(ents) != 1 {
		t.Errorf("requeues dir holds %d files, want 1 (no temporary left)", len(ents))
	}
	if s, err := ExecSettingsOrDefault(dir); err != nil || s.MaxPreemptions != DefaultMaxPreemptions || s.MaxTimeouts != DefaultMaxTimeouts {
		t.Errorf("without exec.json: %+v, %v", s, err)
	}
	if Root(Dir("/out", "c")) != "/out" {
		t.Errorf("Root(Dir(/out, c)) = %s", Root(Dir("/out", "c")))
	}
}
