package slurm

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ptb-dev/ptb/internal/campaign"
)

// A chunk is one job array: campaign indices that fit below MaxArraySize as
// array task ids once Base is taken off (task id = index - Base).
type chunk struct {
	Base int
	Jobs []campaign.Job // sorted by index
}

// chunks splits jobs into arrays whose task ids stay below maxArray.
// Indices below maxArray are their own task ids (base 0), so that a backend
// id NNN_7 names index 7; larger ones go in windows starting at their first
// index.
func chunks(jobs []campaign.Job, maxArray int) []chunk {
	sorted := slices.Clone(jobs)
	slices.SortFunc(sorted, func(a, b campaign.Job) int { return a.Index - b.Index })
	var out []chunk
	for _, j := range sorted {
		if n := len(out); n > 0 && j.Index-out[n-1].Base < maxArray {
			out[n-1].Jobs = append(out[n-1].Jobs, j)
			continue
		}
		base := j.Index
		if j.Index < maxArray {
			base = 0
		}
		out = append(out, chunk{Base: base, Jobs: []campaign.Job{j}})
	}
	return out
}

// arraySpec is the --array value: task ids as ranges ("0-3,7,9-10"), then
// "%N" when throttled.
func arraySpec(c chunk, maxParallel int) string {
	var b strings.Builder
	ids := make([]int, len(c.Jobs))
	for i, j := range c.Jobs {
		ids[i] = j.Index - c.Base
	}
	for i := 0; i < len(ids); {
		k := i
		for k+1 < len(ids) && ids[k+1] == ids[k]+1 {
			k++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(ids[i]))
		if k > i {
			fmt.Fprintf(&b, "-%d", ids[k])
		}
		i = k + 1
	}
	if maxParallel > 0 {
		fmt.Fprintf(&b, "%%%d", maxParallel)
	}
	return b.String()
}

// parseArray expands squeue's array_task_string ("1-4%1", "3,5,9", "0-8:2")
// into task ids.
func parseArray(s string) ([]int, error) {
	if i := strings.IndexByte(s, '%'); i >= 0 {
		s = s[:i]
	}
	var ids []int
	for _, part := range strings.Split(s, ",") {
		if part == "" {
			continue
		}
		step := 1
		if i := strings.IndexByte(part, ':'); i >= 0 {
			n, err := strconv.Atoi(part[i+1:])
			if err != nil || n < 1 {
				return nil, fmt.Errorf("array task string %q: bad step in %q", s, part)
			}
			step, part = n, part[:i]
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("array task string %q: bad task id %q", s, lo)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("array task string %q: bad range %q", s, part)
			}
		}
		if (b-a)/step > 1<<20 {
			return nil, fmt.Errorf("array task string %q: range %q too large", s, part)
		}
		for id := a; id <= b; id += step {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// commentPrefix starts the --comment of every array ptb submits: it carries
// the chunk's index base, so that a task id maps back to its index from
// squeue alone.
const commentPrefix = "ptb-index-base="

// baseExport are the variables every allocation gets besides PassEnv and
// the settings' export list; SLURM_* variables always pass.
var baseExport = []string{"PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR"}

// script renders the batch script of one chunk. Options are #SBATCH lines
// so that the script alone says how the array was asked for; the batch
// shell execs ptb, so that Slurm's signals (--signal=B:USR1, scancel's
// TERM) reach ptb campaign exec itself.
func (e *Executor) script(s campaign.Submission, c chunk) string {
	var b strings.Builder
	b.WriteString("#!/bin/bash\n")
	fmt.Fprintf(&b, "# Written by ptb for campaign %s: one array task per campaign index (index = task id + %d).\n", s.Campaign, c.Base)
	opt := func(format string, a ...any) { fmt.Fprintf(&b, "#SBATCH "+format+"\n", a...) }
	opt("--job-name=%s", jobName(s.Campaign))
	opt("--array=%s", arraySpec(c, s.MaxParallel))
	opt("--comment=%s%d", commentPrefix, c.Base)
	opt("--output=%s", logPattern(s.Dir))
	opt("--open-mode=append")
	opt("--requeue")
	opt("--signal=B:USR1@%d", e.signalBefore(s.TimeLimit))
	if s.TimeLimit > 0 {
		opt("--time=%d", minutes(s.TimeLimit))
	}
	opt("--nodes=1")
	opt("--ntasks=1")
	if s.CPUs > 0 {
		opt("--cpus-per-task=%d", s.CPUs)
	}
	if s.MemoryMB > 0 {
		opt("--mem=%dM", s.MemoryMB)
	}
	if s.DiskMB > 0 && e.set.TmpDisk {
		opt("--tmp=%dM", s.DiskMB)
	}
	if s.GPUs > 0 {
		opt("--gres=%s:%d", e.set.GRES, s.GPUs)
	}
	if e.set.Partition != "" {
		opt("--partition=%s", e.set.Partition)
	}
	if e.set.Account != "" {
		opt("--account=%s", e.set.Account)
	}
	if e.set.QOS != "" {
		opt("--qos=%s", e.set.QOS)
	}
	opt("--export=%s", strings.Join(exportNames(s.PassEnv, e.set.Export), ","))
	for _, a := range e.set.SbatchArgs {
		opt("%s", a)
	}
	b.WriteString("set -eu\n")
	fmt.Fprintf(&b, "index=$((SLURM_ARRAY_TASK_ID + %d))\n", c.Base)
	gpus := ""
	if s.GPUs > 0 {
		gpus = "env:CUDA_VISIBLE_DEVICES"
	}
	argv := s.ExecArgv(indexSelector, "slurm", gpus)
	b.WriteString("exec")
	for _, a := range argv {
		b.WriteByte(' ')
		if a == indexSelector {
			b.WriteString(`"--index=$index"`)
		} else {
			b.WriteString(shellQuote(a))
		}
	}
	b.WriteByte('\n')
	return b.String()
}

// indexSelector stands for the selector in the rendered exec line, where
// the shell expands the index.
const indexSelector = "--index=$index"

func jobName(campaignName string) string { return "ptb-" + campaignName }

// logPattern is the --output of every array: one file per array task,
// appended to across requeues.
func logPattern(dir string) string { return dir + "/slurm/logs/%A_%a.out" }

func logPath(dir string, jobID, task int) string {
	return fmt.Sprintf("%s/slurm/logs/%d_%d.out", dir, jobID, task)
}

// signalBefore is the USR1 lead (seconds before the time limit): the
// setting, at most half the time limit.
func (e *Executor) signalBefore(limit time.Duration) int {
	s := e.set.SignalBefore
	if limit > 0 && time.Duration(s)*time.Second > limit/2 {
		s = int(limit / 2 / time.Second)
	}
	return max(s, 1)
}

func minutes(d time.Duration) int {
	m := int((d + time.Minute - 1) / time.Minute)
	return max(m, 1)
}

func exportNames(passEnv, extra []string) []string {
	names := slices.Clone(baseExport)
	for _, n := range append(slices.Clone(passEnv), extra...) {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
