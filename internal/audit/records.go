package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
)

// RecordTestSets reads test splits as decoded records from Load (in the
// CLI: the data-location rule of every command, so a fresh install audits
// against the test sets shipped with ptb). Load returns the records of the
// task's test split and where they came from, or an error wrapping
// os.ErrNotExist when it has none.
type RecordTestSets struct {
	Load func(ctx context.Context, task string) (recs []json.RawMessage, source string, err error)
}

var _ TestSets = RecordTestSets{}

// TestSet implements TestSets.
func (r RecordTestSets) TestSet(ctx context.Context, task string) (*TestSet, error) {
	var conv func(map[string]json.RawMessage, int) (TestItem, error)
	switch task {
	case "gsm8k":
		conv = convGSM8K
	case "humaneval":
		conv = convHumanEval
	case "bfcl":
		conv = convBFCL
	case "arenahard", "arenahardwriting":
		conv = convArena
	case "healthbench":
		conv = convHealth
	default:
		return nil, fmt.Errorf("test set %s: no loader for this task: %w", task, os.ErrNotExist)
	}
	if r.Load == nil {
		return nil, fmt.Errorf("test set %s: no source: %w", task, os.ErrNotExist)
	}
	recs, src, err := r.Load(ctx, task)
	if err != nil {
		return nil, fmt.Errorf("test set %s: %w", task, err)
	}
	ts := &TestSet{Task: task, Source: src}
	for i, rec := range recs {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(rec, &m); err != nil {
			return nil, fmt.Errorf("%s: record %d: %w", src, i+1, err)
		}
		it, err := conv(m, i)
		if err != nil {
			return nil, fmt.Errorf("%s: record %d: %w", src, i+1, err)
		}
		ts.Items = append(ts.Items, it)
	}
	if len(ts.Items) == 0 {
		return nil, fmt.Errorf("%s: no items", src)
	}
	return ts, nil
}
