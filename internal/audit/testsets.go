package audit

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// TestItem is one benchmark test sample as the contamination scan sees it:
// its id and its text parts (question, answer, ...). Each part is matched
// on its own: training on the questions alone or the answers alone counts.
type TestItem struct {
	ID    string
	Parts []TestPart
}

// TestPart is one text part of a test item.
type TestPart struct {
	Name string // question, answer, test, ...
	Text string
	Code bool // also match with identifiers normalised (program text)
}

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

// DirTestSets reads test splits from a directory laid out like
// shared/datasets: gsm8k/test.jsonl, humaneval/HumanEval.jsonl.gz,
// bfcl/BFCL_v3_exec_simple.json, arenahard/question.jsonl,
// healthbench/healthbench_easy.jsonl.
type DirTestSets struct{ Dir string }

var _ TestSets = DirTestSets{}

// TestSet implements TestSets.
func (d DirTestSets) TestSet(ctx context.Context, task string) (*TestSet, error) {
	if d.Dir == "" {
		return nil, fmt.Errorf("test set %s: no data dir: %w", task, os.ErrNotExist)
	}
	var rel string
	var conv func(map[string]json.RawMessage, int) (TestItem, error)
	switch task {
	case "gsm8k":
		rel, conv = "gsm8k/test.jsonl", convGSM8K
	case "humaneval":
		rel, conv = "humaneval/HumanEval.jsonl.gz", convHumanEval
	case "bfcl":
		rel, conv = "bfcl/BFCL_v3_exec_simple.json", convBFCL
	case "arenahard", "arenahardwriting":
		rel, conv = "arenahard/question.jsonl", convArena
	case "healthbench":
		rel, conv = "healthbench/healthbench_easy.jsonl", convHealth
	default:
		return nil, fmt.Errorf("test set %s: no loader for this task in a data dir: %w", task, os.ErrNotExist)
	}
	path := filepath.Join(d.Dir, rel)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("test set %s: %w", task, err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer gz.Close()
		r = gz
	}
	ts := &TestSet{Task: task, Source: path}
	br := bufio.NewReaderSize(r, 1<<20)
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		line, err := br.ReadBytes('\n')
		if len(strings.TrimSpace(string(line))) > 0 {
			var m map[string]json.RawMessage
			if jerr := json.Unmarshal(line, &m); jerr != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, n+1, jerr)
			}
			it, cerr := conv(m, n)
			if cerr != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, n+1, cerr)
			}
			ts.Items = append(ts.Items, it)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	if len(ts.Items) == 0 {
		return nil, fmt.Errorf("%s: no items", path)
	}
	return ts, nil
}

func str(m map[string]json.RawMessage, k string) string {
	var s string
	json.Unmarshal(m[k], &s)
	return s
}

func convGSM8K(m map[string]json.RawMessage, n int) (TestItem, error) {
	return TestItem{ID: fmt.Sprintf("gsm8k/test/%d", n), Parts: []TestPart{
		{Name: "question", Text: str(m, "question")},
		{Name: "answer", Text: str(m, "answer")},
	}}, nil
}

var docstringRE = regexp.MustCompile(`(?s)("""|''').*?("""|''')`)

func convHumanEval(m map[string]json.RawMessage, n int) (TestItem, error) {
	prompt := str(m, "prompt")
	return TestItem{ID: str(m, "task_id"), Parts: []TestPart{
		{Name: "prompt", Text: prompt},
		// The signature (docstring removed: prose normalised to identifier
		// placeholders would match any prose) with the solution, as code.
		{Name: "solution", Text: docstringRE.ReplaceAllString(prompt, " ") + "\n" + str(m, "canonical_solution"), Code: true},
		{Name: "test", Text: str(m, "test"), Code: true},
	}}, nil
}

func convBFCL(m map[string]json.RawMessage, n int) (TestItem, error) {
	var q [][]struct {
		Content string `json:"content"`
	}
	json.Unmarshal(m["question"], &q)
	var qs []string
	for _, turn := range q {
		for _, msg := range turn {
			qs = append(qs, msg.Content)
		}
	}
	var gt []string
	json.Unmarshal(m["ground_truth"], &gt)
	return TestItem{ID: str(m, "id"), Parts: []TestPart{
		{Name: "question", Text: strings.Join(qs, "\n")},
		{Name: "answer", Text: strings.Join(gt, "\n")},
	}}, nil
}

func convArena(m map[string]json.RawMessage, n int) (TestItem, error) {
	return TestItem{ID: "arenahard/" + str(m, "uid"), Parts: []TestPart{{Name: "question", Text: str(m, "prompt")}}}, nil
}

func convHealth(m map[string]json.RawMessage, n int) (TestItem, error) {
	var conv []struct {
		Content string `json:"content"`
	}
	json.Unmarshal(m["prompt"], &conv)
	var qs []string
	for _, c := range conv {
		qs = append(qs, c.Content)
	}
	var ideal struct {
		Ideal string `json:"ideal_completion"`
	}
	json.Unmarshal(m["ideal_completions_data"], &ideal)
	parts := []TestPart{{Name: "question", Text: strings.Join(qs, "\n")}}
	if ideal.Ideal != "" {
		parts = append(parts, TestPart{Name: "answer", Text: ideal.Ideal})
	}
	return TestItem{ID: "healthbench/" + str(m, "prompt_id"), Parts: parts}, nil
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
