package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ptb-dev/ptb/internal/fsutil"
	"github.com/ptb-dev/ptb/internal/prompt"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
	"github.com/ptb-dev/ptb/internal/safeio"
)

// Protected is protected.json (see rundir.Protected).
type Protected = rundir.Protected

// prepare makes a fresh workspace: prompt, evaluate.py, templates/,
// timer.sh, and the protected-file manifest.
func (x *run) prepare(ctx context.Context) (result.Stage, error) {
	reg := x.r.Registry
	bench, err := reg.Benchmark(x.spec.Benchmark)
	if err != nil {
		return result.Stage{}, err
	}
	ag, err := reg.Agent(x.spec.Agent)
	if err != nil {
		return result.Stage{}, err
	}
	ws := x.dir.Path(rundir.Workspace)
	// A half-made workspace from a crashed prepare is started over.
	if err := os.RemoveAll(ws); err != nil {
		return result.Stage{}, err
	}
	for _, d := range []string{rundir.Workspace, rundir.Home, rundir.Tmp, rundir.TraceDir} {
		if err := os.MkdirAll(x.dir.Path(d), 0o755); err != nil {
			return result.Stage{}, err
		}
	}
	os.Chmod(x.dir.Path(rundir.Tmp), 0o1777)
	gpus := len(x.spec.GPUs)
	text := prompt.Agent(prompt.Params{
		Model: x.spec.BaseModel, Benchmark: bench, Hours: x.spec.Hours,
		GPUCount: gpus, GPUName: x.r.GPUName, Agent: ag,
	})
	if err := fsutil.WriteFileAtomic(x.dir.Path(rundir.PromptFile), []byte(text), 0o644); err != nil {
		return result.Stage{}, err
	}
	if err := os.WriteFile(filepath.Join(ws, "evaluate.py"), []byte(evaluateScript(x.spec.Benchmark, x.spec.BaseModel)), 0o755); err != nil {
		return result.Stage{}, err
	}
	if err := os.WriteFile(filepath.Join(ws, "timer.sh"), []byte(TimerScript(time.Time{})), 0o755); err != nil {
		return result.Stage{}, err
	}
	ntpl := 0
	if x.r.Templates != nil {
		err := fs.WalkDir(x.r.Templates, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || path.Ext(p) != ".jinja" {
				return err
			}
			b, err := fs.ReadFile(x.r.Templates, p)
			if err != nil {
				return err
			}
			dst := filepath.Join(ws, "templates", filepath.FromSlash(p))
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			ntpl++
			return os.WriteFile(dst, b, 0o644)
		})
		if err != nil {
			return result.Stage{}, fmt.Errorf("copy templates: %w", err)
		}
	}
	prot, err := hashProtected(ws)
	if err != nil {
		return result.Stage{}, err
	}
	if err := x.dir.WriteJSON(rundir.ProtectedFile, prot); err != nil {
		return result.Stage{}, err
	}
	st := result.Stage{Status: result.StatusDone}
	if ntpl == 0 {
		st.Reason = "no chat templates available to copy"
		if x.r.TemplatesErr != nil {
			st.Reason += ": " + x.r.TemplatesErr.Error()
		}
	}
	return st, nil
}

// protectedPaths are the workspace entries the agent must not modify.
var protectedPaths = []string{"evaluate.py", "templates"}

// hashProtected hashes every file under the protected paths. Nothing is
// followed: a symlink or special file (a FIFO, /dev/zero) the agent put
// there is recorded as such, which never matches a prepare-time hash.
func hashProtected(ws string) (Protected, error) {
	p := Protected{Files: map[string]string{}}
	for _, top := range protectedPaths {
		root := filepath.Join(ws, top)
		fi, err := os.Lstat(root)
		if err != nil {
			continue
		}
		if !fi.IsDir() && !fi.Mode().IsRegular() {
			p.Files[top] = "not a regular file: " + fi.Mode().Type().String()
			continue
		}
		err = filepath.WalkDir(root, func(f string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(ws, f)
			rel = filepath.ToSlash(rel)
			if !d.Type().IsRegular() {
				p.Files[rel] = "not a regular file: " + d.Type().String()
				return nil
			}
			sum, err := hashAgentFile(f)
			if errors.Is(err, safeio.ErrNotRegular) {
				sum = "not a regular file: " + err.Error()
			} else if err != nil {
				return err
			}
			p.Files[rel] = sum
			return nil
		})
		if err != nil {
			return p, fmt.Errorf("hash protected files: %w", err)
		}
	}
	return p, nil
}

// checkProtected compares the workspace with the prepare-time hashes and
// lists what changed ("modified: x", "deleted: x", "added: x").
func checkProtected(ws string, want Protected) ([]string, error) {
	got, err := hashProtected(ws)
	if err != nil {
		return nil, err
	}
	var diffs []string
	for f, sum := range want.Files {
		switch g, ok := got.Files[f]; {
		case !ok:
			diffs = append(diffs, "deleted: "+f)
		case g != sum:
			diffs = append(diffs, "modified: "+f)
		}
	}
	for f := range got.Files {
		if _, ok := want.Files[f]; !ok {
			diffs = append(diffs, "added: "+f)
		}
	}
	slices.Sort(diffs)
	return diffs, nil
}

// TimerScript is timer.sh: it prints the remaining time as the original
// did ("Remaining time (hours:minutes):" then H:MM, or "Timer expired!").
// The deadline comes from $PTB_DEADLINE (Unix seconds, set by the harness
// for every launch) or, failing that, the value baked in at launch time.
func TimerScript(deadline time.Time) string {
	baked := "0"
	if !deadline.IsZero() {
		baked = strconv.FormatInt(deadline.Unix(), 10)
	}
	return `#!/bin/bash
# Written by ptb. Prints the time left for this job.
DEADLINE="${PTB_DEADLINE:-` + baked + `}"
if [ "$DEADLINE" -le 0 ] 2>/dev/null; then
    echo "Timer not initialized."
    exit 1
fi
NOW=$(date +%s)
REMAINING=$((DEADLINE - NOW))

if [ $REMAINING -le 0 ]; then
    echo "Timer expired!"
else
    echo "Remaining time (hours:minutes)":
    HOURS=$((REMAINING / 3600))
    MINUTES=$(((REMAINING % 3600) / 60))
    printf "%d:%02d\n" $HOURS $MINUTES
fi
`
}

// evaluateScript is evaluate.py: the agent's entry point to the benchmark.
// It accepts the original script's options and hands over to `ptb eval`
// with the original's development defaults (`--dev`, e.g. the first 150
// GSM8K problems) unless --limit is given. The chat template is the base
// model's (from templates/, checked against ptb's pinned digests).
func evaluateScript(task, baseModel string) string {
	return strings.NewReplacer("{{BASE_MODEL}}", baseModel, "{{TASK}}", task).Replace(`#!/usr/bin/env python3
"""Evaluate a model on {{TASK}} (PostTrainBench, run by ptb).

Do not modify this file: the harness checks its hash. It runs the same
evaluation code as the final evaluation (` + "`ptb eval`" + `), on the original's
development subset unless --limit is given (-1: the full benchmark).

Usage: python evaluate.py --model-path final_model [--limit N] [--max-tokens N]
                          [--max-connections N] [--json-output-file FILE]
"""
import argparse
import os
import shutil
import subprocess
import sys

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--model-path", default="final_model")
parser.add_argument("--limit", type=int, default=None, help="number of samples; -1 for all")
parser.add_argument("--max-tokens", "--max-new-tokens", type=int, default=None)
parser.add_argument("--max-connections", type=int, default=None)
parser.add_argument("--json-output-file", default=None)
parser.add_argument("--templates-dir", default="templates")
args, rest = parser.parse_known_args()

out = os.path.join("eval_runs", "{{TASK}}")
if os.path.isdir(out):
    shutil.rmtree(out)
cmd = [os.environ.get("PTB_BIN", "ptb"), "eval", "--task", "{{TASK}}", "--model", args.model_path,
       "--backend", os.environ.get("PTB_EVAL_BACKEND", "vllm"), "--out", out,
       "--base-model", "{{BASE_MODEL}}"]
if os.environ.get("PTB_RUN_ID"):
    # Inside ptb's sandbox already: HumanEval programs run with the agent's
    # own isolation (a sandbox cannot be nested in it).
    cmd += ["--unsafe-no-sandbox"]
if os.path.isdir(args.templates_dir):
    cmd += ["--templates-dir", args.templates_dir]
if args.limit is None:
    cmd += ["--dev"]
elif args.limit >= 0:
    cmd += ["--limit", str(args.limit)]
if args.max_tokens:
    cmd += ["--max-tokens", str(args.max_tokens)]
if args.max_connections:
    cmd += ["--concurrency", str(args.max_connections)]
cmd += rest
sys.stdout.flush()
code = subprocess.call(cmd)
if code == 0 and args.json_output_file:
    shutil.copyfile(os.path.join(out, "metrics.json"), args.json_output_file)
sys.exit(code)
`)
}
