package task

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/ptb-dev/ptb/internal/eval/dataset"
)

// TestItem is one benchmark test sample as the audit's contamination scan
// sees it: its id and its text parts (question, answer, ...). Each part is
// matched on its own: training on the questions alone or the answers alone
// counts.
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

// TestItems is a Task whose test split the audit's contamination scan can
// match against: the tasks whose data an agent could train on verbatim.
type TestItems interface {
	// TestItems reads the test split from src (the same source and the
	// same data-location rule as Load) and returns its items and where
	// they were read from (a path, or "shipped with ptb (...)").
	TestItems(ctx context.Context, src dataset.Source) (items []TestItem, source string, err error)
}

var (
	_ TestItems = (*gsm8k)(nil)
	_ TestItems = (*humaneval)(nil)
	_ TestItems = (*bfcl)(nil)
	_ TestItems = (*arenaHard)(nil)
	_ TestItems = (*healthBench)(nil)
)

// testItems reads f from src and converts each record with conv.
func testItems(ctx context.Context, src dataset.Source, f dataset.File, conv func(map[string]json.RawMessage, int) TestItem) ([]TestItem, string, error) {
	rc, name, err := src.Open(ctx, f)
	if err != nil {
		return nil, "", err
	}
	defer rc.Close()
	recs, err := dataset.Decode(rc, name)
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", name, err)
	}
	source := name
	if f.Shipped != "" && name == f.Shipped {
		source = "shipped with ptb (" + f.Shipped + ")"
	}
	items := make([]TestItem, 0, len(recs))
	for i, rec := range recs {
		if err := ctx.Err(); err != nil {
			return nil, "", err
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(rec, &m); err != nil {
			return nil, "", fmt.Errorf("%s: record %d: %w", source, i+1, err)
		}
		items = append(items, conv(m, i))
	}
	if len(items) == 0 {
		return nil, "", fmt.Errorf("%s: no items", source)
	}
	return items, source, nil
}

// rawString is m[k] as a string ("" when absent or not a string).
func rawString(m map[string]json.RawMessage, k string) string {
	var s string
	json.Unmarshal(m[k], &s)
	return s
}

// TestItems implements TestItems.
func (g *gsm8k) TestItems(ctx context.Context, src dataset.Source) ([]TestItem, string, error) {
	return testItems(ctx, src, GSM8KTest, func(m map[string]json.RawMessage, n int) TestItem {
		return TestItem{ID: fmt.Sprintf("gsm8k/test/%d", n), Parts: []TestPart{
			{Name: "question", Text: rawString(m, "question")},
			{Name: "answer", Text: rawString(m, "answer")},
		}}
	})
}

var docstringRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?s)("""|''').*?("""|''')`) })

// TestItems implements TestItems.
func (h *humaneval) TestItems(ctx context.Context, src dataset.Source) ([]TestItem, string, error) {
	return testItems(ctx, src, HumanEvalFile, func(m map[string]json.RawMessage, n int) TestItem {
		prompt := rawString(m, "prompt")
		return TestItem{ID: rawString(m, "task_id"), Parts: []TestPart{
			{Name: "prompt", Text: prompt},
			// The signature (docstring removed: prose normalised to identifier
			// placeholders would match any prose) with the solution, as code.
			{Name: "solution", Text: docstringRE().ReplaceAllString(prompt, " ") + "\n" + rawString(m, "canonical_solution"), Code: true},
			{Name: "test", Text: rawString(m, "test"), Code: true},
		}}
	})
}

// TestItems implements TestItems.
func (b *bfcl) TestItems(ctx context.Context, src dataset.Source) ([]TestItem, string, error) {
	return testItems(ctx, src, BFCLFile, func(m map[string]json.RawMessage, n int) TestItem {
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
		return TestItem{ID: rawString(m, "id"), Parts: []TestPart{
			{Name: "question", Text: strings.Join(qs, "\n")},
			{Name: "answer", Text: strings.Join(gt, "\n")},
		}}
	})
}

// TestItems implements TestItems: the questions (the baseline answers are
// another model's, not the benchmark's).
func (a *arenaHard) TestItems(ctx context.Context, src dataset.Source) ([]TestItem, string, error) {
	return testItems(ctx, src, ArenaHardQuestions, func(m map[string]json.RawMessage, n int) TestItem {
		return TestItem{ID: "arenahard/" + rawString(m, "uid"), Parts: []TestPart{{Name: "question", Text: rawString(m, "prompt")}}}
	})
}

// TestItems implements TestItems: the conversation and, where the data has
// one, the ideal completion.
func (h *healthBench) TestItems(ctx context.Context, src dataset.Source) ([]TestItem, string, error) {
	return testItems(ctx, src, HealthBenchData, func(m map[string]json.RawMessage, n int) TestItem {
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
		return TestItem{ID: "healthbench/" + rawString(m, "prompt_id"), Parts: parts}
	})
}
