package campaign

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/registry"
)

// Entry kinds: what `ptb campaign exec` runs for an index entry.
const (
	KindRun  = ""     // ptb run --run-id ID --out ROOT ARGS...
	KindEval = "eval" // ptb eval --out ROOT/ID ARGS... (a baseline: no agent, no solve)
)

// Cell is one job of the expanded campaign.
type Cell struct {
	Agent     string // the agent's name; "" for a baseline
	Baseline  string // the baseline kind; "" for an agent's run
	BaseModel string // hub id
	Benchmark string
	Seed      int
	RunID     string
	Kind      string   // KindRun or KindEval
	Args      []string // `ptb run` (or `ptb eval`) arguments, without --run-id, --out and --gpus
	Hash      string   // spec hash: job.Spec.Hash of the normalized spec (a baseline: of its arguments)
	Line      int      // line of the file that declares it (the agent, include or baselines entry)
}

// Describe names the cell for messages.
func (c Cell) Describe() string {
	who := "agent " + c.Agent
	if c.Baseline != "" {
		who = "baseline " + c.Baseline
	}
	return fmt.Sprintf("%s, %s, %s, seed %d", who, c.BaseModel, c.Benchmark, c.Seed)
}

// Specifier turns a cell's `ptb run` arguments into the normalized job
// spec `ptb run` itself would make from them (the command line's own
// parser: internal/cli provides it), so that the spec hash stored in the
// index is the one `ptb run --run-id` checks.
type Specifier func(args []string) (job.Spec, error)

// Expand lists the campaign's cells in a deterministic order: agents (in
// file order) x base models x benchmarks x seeds less the excluded cells,
// then the included cells, then the baselines (base models x benchmarks x
// kinds). Run ids are job.StableRunID of the cell's spec, with
// "_"+name added for a variant (an agent with args), so that declaring a
// variant never changes another agent's ids.
func (f *File) Expand(reg *registry.Registry, specify Specifier) ([]Cell, error) {
	var cells []Cell
	seen := map[string]int{} // run id -> position in cells
	add := func(c Cell) error {
		if j, dup := seen[c.RunID]; dup {
			o := cells[j]
			if o.Hash == c.Hash && o.Agent == c.Agent && o.Baseline == c.Baseline {
				return nil // the same cell twice (an include of a matrix cell)
			}
			return fmt.Errorf("%s:%d: cell (%s) and the cell on line %d (%s) would share run id %s; give one of the agents a distinct name and args, or remove one", f.Path, c.Line, c.Describe(), o.Line, o.Describe(), c.RunID)
		}
		seen[c.RunID] = len(cells)
		cells = append(cells, c)
		return nil
	}
	modelID := func(m string) string {
		if mm, err := reg.Model(m); err == nil {
			return mm.ID
		}
		return m
	}
	for i, a := range f.Agents {
		for _, m := range f.BaseModels {
			for _, b := range f.Benchmarks {
				for _, s := range f.Seeds {
					if f.excluded(a.Name, modelID(m), b, s, modelID) {
						continue
					}
					c, err := f.runCell(reg, specify, i, m, b, s, a.line)
					if err != nil {
						return nil, err
					}
					if err := add(c); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	for _, p := range f.Include {
		i := f.agentIndex(p.Agent)
		c, err := f.runCell(reg, specify, i, p.BaseModel, p.Benchmark, *p.Seed, p.line)
		if err != nil {
			return nil, err
		}
		if err := add(c); err != nil {
			return nil, err
		}
	}
	if b := f.Baselines; b != nil {
		for _, m := range f.BaseModels {
			for _, bench := range f.Benchmarks {
				for _, k := range b.Kinds {
					c, err := f.baselineCell(reg, k, m, bench)
					if err != nil {
						return nil, err
					}
					if err := add(c); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	return cells, nil
}

func (f *File) agentIndex(name string) int {
	for i, a := range f.Agents {
		if a.Name == name {
			return i
		}
	}
	return -1
}

func (f *File) excluded(agent, model, bench string, seed int, modelID func(string) string) bool {
	for _, p := range f.Exclude {
		if (p.Agent == "" || p.Agent == agent) && (p.BaseModel == "" || modelID(p.BaseModel) == model) &&
			(p.Benchmark == "" || p.Benchmark == bench) && (p.Seed == nil || *p.Seed == seed) {
			return true
		}
	}
	return false
}

// RunArgs are the `ptb run` arguments of agent i's cell.
func (f *File) RunArgs(i int, model, bench string, seed int) []string {
	a := f.Agents[i]
	args := []string{"--agent", a.Scaffold}
	if a.Model != "" {
		args = append(args, "--agent-model", a.Model)
	}
	args = append(args, "--base-model", model, "--benchmark", bench, "--seed", strconv.Itoa(seed),
		"--hours", strconv.FormatFloat(f.Run.Hours, 'g', -1, 64))
	opt := func(flag, v string) {
		if v != "" {
			args = append(args, flag, v)
		}
	}
	opt("--label", a.Label)
	opt("--sandbox", f.Run.Sandbox)
	opt("--network", f.Run.Network)
	opt("--eval-backend", f.Run.Eval.Backend)
	opt("--eval-version", f.Run.Eval.Version)
	opt("--eval-responses", f.Run.Eval.Responses)
	opt("--eval-base-url", f.Run.Eval.BaseURL)
	if f.Run.Eval.Limit > 0 {
		opt("--eval-limit", strconv.Itoa(f.Run.Eval.Limit))
	}
	opt("--data-dir", f.Run.DataDir)
	if a.Scaffold == "scripted" {
		opt("--script", f.Run.Script)
	}
	if f.Limits.SpendCapUSD > 0 {
		opt("--spend-cap", strconv.FormatFloat(f.Limits.SpendCapUSD, 'g', -1, 64))
	}
	opt("--registry", f.Registry)
	args = append(args, f.Run.Args...)
	return append(args, a.Args...)
}

func (f *File) runCell(reg *registry.Registry, specify Specifier, i int, model, bench string, seed, line int) (Cell, error) {
	a := f.Agents[i]
	args := f.RunArgs(i, model, bench, seed)
	spec, err := specify(args)
	if err != nil {
		return Cell{}, fmt.Errorf("%s:%d: agent %s, %s, %s, seed %d: %w", f.Path, line, a.Name, model, bench, seed, err)
	}
	id := job.StableRunID(spec, reg)
	if len(a.Args) > 0 {
		id += "_" + a.Name
	}
	return Cell{Agent: a.Name, BaseModel: spec.BaseModel, Benchmark: bench, Seed: seed, RunID: id, Args: args, Hash: spec.Hash(), Line: line}, nil
}

func (f *File) baselineCell(reg *registry.Registry, kind, model, bench string) (Cell, error) {
	line := f.line("baselines")
	m, err := reg.Model(model)
	if err != nil {
		return Cell{}, fmt.Errorf("%s:%d: baselines of base model %s: %w", f.Path, f.line("base_models"), model, err)
	}
	if _, err := reg.Benchmark(bench); err != nil {
		return Cell{}, fmt.Errorf("%s:%d: baselines of benchmark %s: %w", f.Path, f.line("benchmarks"), bench, err)
	}
	hub := m.ID
	if kind == BaselineInstruct {
		if m.Instruct == "" {
			return Cell{}, fmt.Errorf("%s:%d: baselines: base model %s has no instruct counterpart in the registry; drop %s or add instruct: to the model in the registry file", f.Path, line, m.ID, BaselineInstruct)
		}
		hub = m.Instruct
	}
	short := m.Short
	if short == "" {
		short = m.ID
	}
	args := []string{"--task", bench, "--base-model", m.ID, "--model", filepath.Join(f.Baselines.ModelsDir, filepath.FromSlash(hub)), "--backend", f.Baselines.Backend}
	if f.Run.DataDir != "" {
		args = append(args, "--data-dir", f.Run.DataDir)
	}
	if f.Run.Sandbox != "" {
		args = append(args, "--sandbox", f.Run.Sandbox)
	}
	if f.Registry != "" {
		args = append(args, "--registry", f.Registry)
	}
	args = append(args, f.Baselines.Args...)
	sum := sha256.Sum256([]byte(KindEval + "\x00" + strings.Join(args, "\x00")))
	id := strings.Join([]string{idSlug(bench), idSlug(short), "baseline-" + strings.ReplaceAll(kind, "-", "")}, "_")
	return Cell{Baseline: kind, BaseModel: m.ID, Benchmark: bench, RunID: id, Kind: KindEval, Args: args, Hash: hex.EncodeToString(sum[:]), Line: line}, nil
}

// Assign matches the cells with the campaign's index. A cell whose run id
// is in the index keeps its entry, and its spec hash must be the one
// stored; one that is new gets the next index. A run id whose hash changed
// is an error while its run directory exists; once the user has removed
// it, the cell gets a new entry (the last entry of a run id wins).
// It returns the entry of every cell, in cell order, and the new entries
// to append.
func Assign(index []Entry, cells []Cell, root string) (entries, added []Entry, err error) {
	last := map[string]Entry{}
	for _, e := range index {
		last[e.RunID] = e
	}
	var errs []error
	next := len(index)
	for _, c := range cells {
		e, ok := last[c.RunID]
		if ok && e.SpecHash != c.Hash {
			if _, statErr := os.Lstat(filepath.Join(root, c.RunID)); statErr == nil {
				errs = append(errs, fmt.Errorf("line %d: cell (%s) reuses run id %s, whose run was made with a different job (index %d, spec hash %.12s, now %.12s): give the cell a new seed, or the agent a new name with its args, or remove the old run directory %s to run it anew",
					c.Line, c.Describe(), c.RunID, e.Index, e.SpecHash, c.Hash, filepath.Join(root, c.RunID)))
				continue
			}
			ok = false
		}
		if !ok {
			e = Entry{Job: Job{Index: next, RunID: c.RunID}, SpecHash: c.Hash, Args: c.Args, Kind: c.Kind}
			next++
			added = append(added, e)
			last[c.RunID] = e
		}
		entries = append(entries, e)
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return entries, added, nil
}

var idUnsafe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[^a-z0-9.-]+`) })

// idSlug makes a run id part as job.StableRunID does.
func idSlug(s string) string {
	return strings.Trim(idUnsafe().ReplaceAllString(strings.ToLower(s), "-"), "-")
}

// ChildArgs are the ptb arguments `ptb campaign exec` runs for the entry
// under root: `run --run-id ID --out ROOT ARGS...` or, for a baseline,
// `eval --out ROOT/ID ARGS...`; gpus ("" for none) are the devices this
// start was given.
func (e Entry) ChildArgs(root, gpus string) []string {
	var out []string
	if e.Kind == KindEval {
		out = append([]string{"eval", "--out", filepath.Join(root, e.RunID)}, e.Args...)
		if gpus == "" {
			gpus = "none"
		}
	} else {
		out = append([]string{"run", "--run-id", e.RunID, "--out", root}, e.Args...)
	}
	if gpus != "" {
		out = append(out, "--gpus", gpus)
	}
	return out
}
