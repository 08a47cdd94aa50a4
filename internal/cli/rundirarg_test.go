package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/pipeline"
	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
)

// ptb run RUN_DIR starts a run directory that was made but never started
// (and resumes or reports any other run); anything else is refused with
// exit 2 and what to do.
func TestRunStartsCreatedRunDir(t *testing.T) {
	f := newRunIDFixture(t)
	reg := registry.Default()
	spec := job.Spec{Agent: "scripted", Script: f.quick, Sandbox: "none", BaseModel: "qwen3-1.7b", Benchmark: "gsm8k",
		Hours: 0.02, OutRoot: f.out, Eval: job.EvalSpec{Backend: "none"}}
	if err := spec.Normalize(reg); err != nil {
		t.Fatal(err)
	}
	created, err := pipeline.Create(spec, reg, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	run := string(created)
	if _, err := os.Stat(created.Path(rundir.ResultFile)); err == nil {
		t.Fatalf("a created run already has %s", rundir.ResultFile)
	}
	notRun := t.TempDir()
	for _, c := range []struct {
		name    string
		args    []string
		code    int
		stderr  string
		stdout  string
		started bool
	}{
		{"not a run directory", []string{"run", notRun, "--monitor-interval", "0"}, 2, "is not a run directory", "", false},
		{"missing directory", []string{"run", filepath.Join(notRun, "nothing")}, 2, "ptb run RUN_DIR starts or resumes an existing run", "", false},
		{"with --run-id", []string{"run", run, "--run-id", "x"}, 2, "--resume and --run-id cannot be given with it", "", false},
		{"with --resume", []string{"run", run, "--resume", run}, 2, "--resume and --run-id cannot be given with it", "", false},
		{"with a job flag", []string{"run", run, "--agent", "claude"}, 2, "--agent cannot be combined with --resume", "", false},
		{"two directories", []string{"run", run, notRun}, 2, "run takes at most one RUN_DIR, got 2 arguments", "", false},
		{"created, never started", []string{"run", run, "--monitor-interval", "0"}, 0, "resuming " + run, "record ", true},
		{"finished", []string{"run", run}, 0, "is finished; nothing to resume", "record ", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := runPTB(t, c.args...)
			if code != c.code || !strings.Contains(stderr, c.stderr) || !strings.Contains(stdout, c.stdout) {
				t.Fatalf("ptb %s: exit %d, want %d with %q in stderr and %q in stdout\nstdout:\n%s\nstderr:\n%s", strings.Join(c.args, " "), code, c.code, c.stderr, c.stdout, stdout, stderr)
			}
			res, err := result.Read(created.Path(rundir.ResultFile))
			if started := err == nil; started != c.started {
				t.Fatalf("after ptb %s: result.json %v (%v), want it %v", strings.Join(c.args, " "), started, err, c.started)
			}
			if c.started && (res.Solve == nil || !res.Solve.FinalModel) {
				t.Errorf("record %+v: want a solve that left final_model", res.Solve)
			}
		})
	}
	if entries, _ := os.ReadDir(notRun); len(entries) != 0 {
		t.Errorf("a refused start wrote into %s: %v", notRun, entries)
	}
}
