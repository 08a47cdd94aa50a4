package jobrun

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ptb-dev/ptb/internal/audit"
	"github.com/ptb-dev/ptb/internal/eval/dataset"

	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/agent/scripted"
	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/pinned"
	"github.com/ptb-dev/ptb/internal/pipeline"
	"github.com/ptb-dev/ptb/internal/sandbox"
)

// SandboxBackend returns the named backend after checking it can run here.
func SandboxBackend(ctx context.Context, name string) (sandbox.Backend, error) {
	b, err := sandbox.Lookup(name)
	if err != nil {
		return nil, usagef("unknown sandbox %q (want %s; docker, podman and apptainer are not implemented yet)", name, strings.Join(sandbox.Backends(), " or "))
	}
	if err := b.Check(ctx); err != nil {
		return nil, fmt.Errorf("sandbox %s: %w; install bubblewrap or pass --sandbox none for an unsandboxed development run", name, err)
	}
	return b, nil
}

// NewRunner wires the pipeline's seams to their implementations.
func NewRunner(ctx context.Context, cfg Config, spec job.Spec) (*pipeline.Runner, error) {
	reg := cfg.Registry
	sb, err := SandboxBackend(ctx, spec.Sandbox)
	if err != nil {
		return nil, err
	}
	level := slog.LevelWarn
	if cfg.Verbose {
		level = slog.LevelInfo
	}
	r := &pipeline.Runner{
		Registry: reg,
		Sandbox:  sb,
		Scaffold: scaffoldFor(cfg.self()),
		Self:     cfg.self(),
		Log:      slog.New(slog.NewTextHandler(cfg.Stderr, &slog.HandlerOptions{Level: level})),
		Progress: cfg.Stderr,
		Version:  cfg.Version,
	}
	r.LookupEnv = cfg.LookupEnv
	r.Hidden = hostData(spec, cfg.DataDir)
	r.Gateway = RunGateway{Reg: reg, Log: r.Log.With("part", "gateway"), Getenv: cfg.getenv}
	// The workspace gets the original's templates/ (ptb's pinned copies);
	// without them prepare says why in its stage reason.
	tctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if tfs, err := (&pinned.Store{Table: cfg.Pins}).TemplatesFS(tctx, ""); err == nil {
		r.Templates = tfs
	} else {
		r.Log.Warn("no chat templates for the workspace", "err", err)
		r.TemplatesErr = err
	}
	wireStages(r, spec, cfg)
	return r, nil
}

// hostData are the host paths with benchmark data or credentials that the
// agent (and the judge) must not see: the evaluation's data directory
// (the job's, and dataDir, the default one) and dataset cache (test sets),
// the recorded completions, the subscription credentials' source file,
// and the judge grading key's holders.
func hostData(spec job.Spec, dataDir string) []string {
	var h []string
	for _, p := range []string{spec.Eval.DataDir, dataDir, dataset.DefaultCacheDir(), spec.Eval.Responses, spec.Credentials} {
		if p != "" {
			if abs, err := filepath.Abs(p); err == nil {
				// Hidden where it really is: a path through a symlink
				// cannot be covered (bwrap cannot make the mount point).
				if real, err := filepath.EvalSymlinks(abs); err == nil {
					abs = real
				}
				h = append(h, abs)
			}
		}
	}
	return h
}

// scaffoldFor returns the agent scaffold for a job; self is the ptb
// executable (the scripted agent's binary).
func scaffoldFor(self string) pipeline.ScaffoldFunc {
	return func(req pipeline.ScaffoldRequest) (agent.Scaffold, error) {
		switch req.Agent {
		case "scripted":
			b, err := os.ReadFile(req.Script)
			if err != nil {
				return nil, fmt.Errorf("read script: %w", err)
			}
			return &scripted.Scaffold{Binary: self, Script: b}, nil
		}
		return cliScaffold(req)
	}
}

// CheckDataDir rejects a --data-dir that is not a directory: the
// data-location rule (dataset.Locate) passes over a data dir that lacks a
// file, so a mistyped one would otherwise go unnoticed.
func CheckDataDir(dir string) error {
	if dir == "" {
		return nil
	}
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		return usagef("--data-dir %s: not a directory (want one laid out like shared/datasets, e.g. gsm8k/test.jsonl)", dir)
	}
	return nil
}

// TestSets is what the audit's contamination scan reads: the test split of
// each task under the data-location rule (dataset.Locate), as evaluate reads
// it.
func TestSets(dataDir string) audit.TestSets {
	return &audit.CachedTestSets{Src: audit.TaskTestSets{Src: dataset.Locate(dataDir, "", false)}}
}
