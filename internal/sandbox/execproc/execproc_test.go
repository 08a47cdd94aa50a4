package execproc_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/execproc"
	"github.com/ptb-dev/ptb/internal/sandbox/proctree"
)

// A handle stored as JSON by one harness lets the next one reap the
// process; a handle whose start time does not match leaves the pid alone.
func TestHandleReap(t *testing.T) {
	p, err := execproc.Start(context.Background(), []string{"/bin/sleep", "60"}, sandbox.Spec{Dir: t.TempDir()}, execproc.Options{Backend: "none"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Destroy()
	stored, err := json.Marshal(p.Handle())
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	json.Unmarshal(stored, &fields)
	if fields["backend"] != "none" || fields["pid"] != float64(p.PID()) || fields["pgid"] != float64(p.PID()) || fields["start"] == nil {
		t.Errorf("stored handle %s: want backend, pid, pgid and start beside each other", stored)
	}
	var h sandbox.Handle
	if err := json.Unmarshal(stored, &h); err != nil {
		t.Fatal(err)
	}
	var st execproc.State
	json.Unmarshal(h.State, &st)
	wrong := st
	wrong.Start++
	ws, _ := json.Marshal(wrong)
	if err := execproc.Reap(sandbox.Handle{Backend: "none", State: ws}); err != nil {
		t.Fatal(err)
	}
	if !proctree.Alive(p.PID()) {
		t.Fatalf("a handle with another start time killed pid %d", p.PID())
	}
	if err := execproc.Reap(h); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ex, err := p.Wait(ctx)
	if err != nil || ex.Signal != "SIGKILL" {
		t.Errorf("after Reap: exit %+v, %v; want killed by SIGKILL", ex, err)
	}
	if err := execproc.Reap(sandbox.Handle{Backend: "none", State: json.RawMessage(`{"pid":"x"}`)}); err == nil {
		t.Errorf("a broken handle state was accepted")
	}
}
