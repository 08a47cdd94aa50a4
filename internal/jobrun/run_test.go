package jobrun

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/pipeline"
	"github.com/ptb-dev/ptb/internal/registry"
	"github.com/ptb-dev/ptb/internal/rundir"
	"github.com/ptb-dev/ptb/internal/runevents"
)

// Run refuses what it cannot start before anything is made or watched,
// with a usage error (exit 2) that says what was wrong.
func TestRunRefusesBeforeMakingAnything(t *testing.T) {
	reg := registry.Default()
	newSpec := func(t *testing.T, out string, seed int) job.Spec {
		s := job.Spec{Agent: "scripted", Script: "agent.yaml", Sandbox: "none", BaseModel: "qwen3-1.7b", Benchmark: "gsm8k",
			Hours: 0.01, Seed: seed, OutRoot: out, Eval: job.EvalSpec{Backend: "none"}}
		if err := s.Normalize(reg); err != nil {
			t.Fatal(err)
		}
		return s
	}
	refused := errors.New("preflight says no")
	for _, c := range []struct {
		name  string
		start func(t *testing.T, out string) Start
		usage bool
		want  string
	}{
		{"resume of a directory that is no run", func(t *testing.T, out string) Start {
			return Start{Resume: t.TempDir()}
		}, true, "--resume: "},
		{"preflight fails", func(t *testing.T, out string) Start {
			return Start{Spec: newSpec(t, out, 0), Preflight: func(context.Context, job.Spec, *registry.Registry) error { return refused }}
		}, false, refused.Error()},
		{"run id of another job", func(t *testing.T, out string) Start {
			if _, _, err := pipeline.CreateWithID(newSpec(t, out, 1), "cell-0", time.Now()); err != nil {
				t.Fatal(err)
			}
			return Start{Spec: newSpec(t, out, 2), RunID: "cell-0"}
		}, true, "differing fields: seed (stored 1, given 2)"},
		{"unknown sandbox", func(t *testing.T, out string) Start {
			s := newSpec(t, out, 0)
			s.Sandbox = "docker"
			return Start{Spec: s}
		}, true, `unknown sandbox "docker"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "runs")
			st := c.start(t, out)
			before, _ := os.ReadDir(out)
			watched := false
			st.Watch = func(context.Context, rundir.Dir, job.Spec) (runevents.Handler, func()) {
				watched = true
				return nil, func() {}
			}
			_, err := Run(context.Background(), Config{Registry: reg, Stderr: io.Discard}, st)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want one with %q", err, c.want)
			}
			var ue *UsageError
			if errors.As(err, &ue) != c.usage {
				t.Errorf("err %v: usage error %v, want %v", err, !c.usage, c.usage)
			}
			if after, _ := os.ReadDir(out); len(after) != len(before) {
				t.Errorf("a refused start made %d entries in %s, had %d", len(after), out, len(before))
			}
			if watched {
				t.Errorf("a refused start was watched")
			}
		})
	}
}
