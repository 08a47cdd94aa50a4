package pipeline

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"time"

	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/result"
	"github.com/ptb-dev/ptb/internal/rundir"
)

// RedoStages are the stages a redo may rerun. Prepare and solve are the
// agent's session itself: redoing them is a new run, not a redo.
var RedoStages = []string{result.StageCollect, result.StageAudit, result.StageEvaluate, result.StageRecord}

// Redo prepares dir to rerun stages, and every stage after the first of
// them, with spec (the run's job with new settings): it records the change
// in redo.jsonl, writes spec to job.json, moves the old evaluation aside
// (eval.N) when evaluate reruns, and marks the stages pending. The next
// Runner.Run runs them. Redo takes the run's lock.
func Redo(dir rundir.Dir, stages []string, spec job.Spec, now time.Time) (*result.Redo, error) {
	if len(stages) == 0 {
		return nil, errors.New("redo: no stage given")
	}
	first := len(result.Stages)
	for _, s := range stages {
		if !slices.Contains(RedoStages, s) {
			return nil, fmt.Errorf("redo: stage %q cannot be redone (want one of %v; prepare and solve are the agent's session: start a new run)", s, RedoStages)
		}
		first = min(first, slices.Index(result.Stages, s))
	}
	unlock, err := dir.Lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	old, err := LoadSpec(dir)
	if err != nil {
		return nil, err
	}
	man, err := LoadManifest(dir)
	if err != nil {
		return nil, err
	}
	if man.Stages[result.StageSolve].Status != result.StatusDone {
		return nil, fmt.Errorf("redo: the solve of %s is not done (%s); finish it first with ptb run --resume %s", dir, man.Stages[result.StageSolve].Status, dir)
	}
	rerun := result.Stages[first:]
	rec := &result.Redo{At: result.Now(now), Stages: slices.Clone(rerun), Changes: specChanges(old, spec)}
	line, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(dir.Path(rundir.RedoFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := dir.WriteJSON(rundir.JobFile, spec); err != nil {
		return nil, err
	}
	if slices.Contains(rerun, result.StageEvaluate) {
		if _, err := os.Stat(dir.Path(rundir.EvalDir)); err == nil {
			for i := 1; ; i++ {
				aside := dir.Path(rundir.EvalAside(i))
				if _, err := os.Lstat(aside); errors.Is(err, os.ErrNotExist) {
					if err := os.Rename(dir.Path(rundir.EvalDir), aside); err != nil {
						return nil, err
					}
					break
				}
			}
		}
	}
	for _, s := range rerun {
		man.Stages[s] = result.Stage{Status: result.StatusPending}
	}
	man.Updated = result.Now(now)
	if err := dir.WriteManifest(man); err != nil {
		return nil, err
	}
	return rec, nil
}

// ReadRedos reads redo.jsonl; a missing file is no redo.
func ReadRedos(dir rundir.Dir) ([]result.Redo, error) {
	f, err := os.Open(dir.Path(rundir.RedoFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []result.Redo
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for n := 1; sc.Scan(); n++ {
		var r result.Redo
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", dir.Path(rundir.RedoFile), n, err)
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

// specChanges lists the job.json fields that differ between a and b, by
// their JSON paths (eval.backend), with the JSON values.
func specChanges(a, b job.Spec) []result.Change {
	var ma, mb map[string]any
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	json.Unmarshal(ja, &ma)
	json.Unmarshal(jb, &mb)
	out := []result.Change{}
	diffMaps("", ma, mb, &out)
	slices.SortFunc(out, func(a, b result.Change) int { return cmp.Compare(a.Field, b.Field) })
	return out
}

func diffMaps(prefix string, a, b map[string]any, out *[]result.Change) {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	for k := range keys {
		va, vb := a[k], b[k]
		sa, okA := va.(map[string]any)
		sb, okB := vb.(map[string]any)
		if okA && okB {
			diffMaps(prefix+k+".", sa, sb, out)
			continue
		}
		if !reflect.DeepEqual(va, vb) {
			*out = append(*out, result.Change{Field: prefix + k, Old: va, New: vb})
		}
	}
}

// SpecDiff lists the fields (JSON paths, e.g. "eval.backend") in which two
// specs describe different jobs: what Spec.Hash covers, so the GPUs and
// the output root are left out.
func SpecDiff(stored, given job.Spec) []result.Change {
	stored.GPUs, given.GPUs = nil, nil
	stored.OutRoot, given.OutRoot = "", ""
	return specChanges(stored, given)
}
