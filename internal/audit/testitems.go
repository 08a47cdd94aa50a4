package audit

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/ptb-dev/ptb/internal/eval/dataset"
	"github.com/ptb-dev/ptb/internal/eval/task"
)

// TestItem is one benchmark test sample as the contamination scan sees it
// (the task supplies it: task.TestItems).
type TestItem = task.TestItem

// TestPart is one text part of a test item.
type TestPart = task.TestPart

// TestSet is a benchmark's test split.
type TestSet struct {
	Task   string
	Source string // where it was read from
	Items  []TestItem
}

// TestSets loads a benchmark's test split by task name. It returns an error
// wrapping os.ErrNotExist when it has no data for the task.
type TestSets interface {
	TestSet(ctx context.Context, task string) (*TestSet, error)
}

// TaskTestSets reads test splits through the tasks themselves
// (task.TestItems) from Src, so the scan reads what evaluate reads, under
// the same data-location rule (dataset.Locate: data dir, cache, shipped
// files, hub).
type TaskTestSets struct{ Src dataset.Source }

var _ TestSets = TaskTestSets{}

// TestSet implements TestSets.
func (s TaskTestSets) TestSet(ctx context.Context, name string) (*TestSet, error) {
	tn := name
	if tn == "arenahard" {
		tn = "arenahardwriting"
	}
	if s.Src == nil {
		return nil, fmt.Errorf("test set %s: no data source: %w", name, os.ErrNotExist)
	}
	t, err := task.New(tn, "", task.Config{})
	if err != nil {
		return nil, fmt.Errorf("test set %s: %v: %w", name, err, os.ErrNotExist)
	}
	ti, ok := t.(task.TestItems)
	if !ok {
		return nil, fmt.Errorf("test set %s: no test items for this task: %w", name, os.ErrNotExist)
	}
	items, src, err := ti.TestItems(ctx, s.Src)
	if err != nil {
		return nil, fmt.Errorf("test set %s: %w", name, err)
	}
	return &TestSet{Task: name, Source: src, Items: items}, nil
}

// CachedTestSets loads each task's test set once and keeps its n-gram
// index, for auditing many runs in one process. Safe for concurrent use.
type CachedTestSets struct {
	Src TestSets
	mu  sync.Mutex
	ix  map[string]*cachedIndex
}

type cachedIndex struct {
	ts  *TestSet
	ix  *Index
	err error
}

// TestSet implements TestSets.
func (c *CachedTestSets) TestSet(ctx context.Context, task string) (*TestSet, error) {
	ci := c.get(ctx, task)
	return ci.ts, ci.err
}

func (c *CachedTestSets) get(ctx context.Context, task string) *cachedIndex {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ci, ok := c.ix[task]; ok {
		return ci
	}
	ci := &cachedIndex{}
	ci.ts, ci.err = c.Src.TestSet(ctx, task)
	if ci.err == nil {
		ci.ix, ci.err = NewIndex(ci.ts)
	}
	if ctx.Err() == nil {
		if c.ix == nil {
			c.ix = map[string]*cachedIndex{}
		}
		c.ix[task] = ci
	}
	return ci
}

func loadIndex(ctx context.Context, sets TestSets, task string) (*TestSet, *Index, error) {
	if c, ok := sets.(*CachedTestSets); ok {
		ci := c.get(ctx, task)
		return ci.ts, ci.ix, ci.err
	}
	ts, err := sets.TestSet(ctx, task)
	if err != nil {
		return nil, nil, err
	}
	ix, err := NewIndex(ts)
	return ts, ix, err
}
