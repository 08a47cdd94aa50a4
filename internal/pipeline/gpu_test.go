package pipeline_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/pipeline"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
)

func TestParseGPUUUIDs(t *testing.T) {
	out := "0, GPU-1b2c3d4e-0000-1111-2222-333344445555\n1, GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\n\n"
	got := pipeline.ParseGPUUUIDs(out)
	if got["0"] != "GPU-1b2c3d4e-0000-1111-2222-333344445555" || got["1"] != "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee" || len(got) != 2 {
		t.Errorf("got %v", got)
	}
}

// A job whose GPU this host lacks fails at once, before the agent
// starts, with the reason in result.json.
func TestMissingGPUFailsTheSolveWithItsReason(t *testing.T) {
	b := bwrapOrSkip(t)
	_, d := newJob(t, 60, "steps:\n  - run: \"touch started\"\nfinal: done\n")
	// Rewrite the job with a GPU no machine here has.
	var js map[string]any
	b2, _ := os.ReadFile(d.Path(rundir.JobFile))
	json.Unmarshal(b2, &js)
	js["gpus"] = []int{97}
	b3, _ := json.Marshal(js)
	os.WriteFile(d.Path(rundir.JobFile), b3, 0o644)
	r := newRunner(b)
	r.Scaffold = scriptedScaffold
	r.Run(context.Background(), d)
	res := validate(t, d)
	if res.Solve == nil || res.Solve.EndReason != result.EndHarnessError || !strings.Contains(res.Solve.Error, "/dev/nvidia97") {
		t.Errorf("solve %+v, want a harness error naming /dev/nvidia97", res.Solve)
	}
	if _, err := os.Stat(d.Path(rundir.Workspace) + "/started"); err == nil {
		t.Errorf("the agent started")
	}
}
