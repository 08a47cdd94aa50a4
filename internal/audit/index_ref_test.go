package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"github.com/ptb-dev/ptb/internal/eval/dataset"
)

// gramsOf returns the distinct n-gram hashes of text, JSON-encoded first
// (the reference build's tokenising of one part).
func gramsOf(text string, code bool) []uint64 {
	enc, _ := json.Marshal(text)
	seen := map[uint64]bool{}
	var out []uint64
	t := newTokenizer(code, emitFunc(func(h uint64) {
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}))
	t.Feed(enc)
	t.reset()
	return out
}

// newIndexRef is the map-based NewIndex that the sort-based one replaced,
// verbatim: a map from each n-gram to its parts and one map per n-gram of
// the items it occurs in.
func newIndexRef(ts *TestSet) (*Index, error) {
	ix := &Index{Task: ts.Task, texts: map[string][]string{}}
	type occ struct{ parts []int32 }
	grams := map[uint64]*occ{}
	var order []uint64
	itemsOf := map[uint64]map[int32]bool{}
	for i, it := range ts.Items {
		ix.ids = append(ix.ids, it.ID)
		for _, p := range it.Parts {
			ix.texts[it.ID] = append(ix.texts[it.ID], p.Text)
		}
		for _, p := range it.Parts {
			pid := int32(len(ix.parts))
			ix.parts = append(ix.parts, partInfo{item: int32(i), name: p.Name, code: p.Code})
			if p.Code {
				ix.code = true
			} else {
				ix.text = true
			}
			for _, h := range gramsOf(p.Text, p.Code) {
				o := grams[h]
				if o == nil {
					o = &occ{}
					grams[h] = o
					order = append(order, h)
					itemsOf[h] = map[int32]bool{}
				}
				o.parts = append(o.parts, pid)
				itemsOf[h][int32(i)] = true
			}
		}
	}
	var kept []uint64
	for _, h := range order {
		if len(itemsOf[h]) >= GenericItems {
			continue
		}
		kept = append(kept, h)
	}
	ix.gramStart = make([]int32, 0, len(kept)+1)
	for _, h := range kept {
		ix.gramStart = append(ix.gramStart, int32(len(ix.gramParts)))
		for _, p := range grams[h].parts {
			ix.gramParts = append(ix.gramParts, p)
			ix.parts[p].total++
		}
	}
	return ix.finish(kept, ts.Task)
}

// indexGrams returns, for each n-gram in ix's table, the parts it counts
// for (gram ids are internal: the two builds number them differently).
func indexGrams(t *testing.T, ix *Index) map[uint64][]int32 {
	t.Helper()
	out := map[uint64][]int32{}
	for _, s := range ix.table.slots {
		if s.key == 0 {
			continue
		}
		if got := ix.table.lookup(s.key); got != s.id {
			t.Fatalf("lookup(%#x) = %d, want %d", s.key, got, s.id)
		}
		out[s.key] = ix.gramParts[ix.gramStart[s.id]:ix.gramStart[s.id+1]]
	}
	return out
}

// diffIndex fails when got and want differ in anything the scan reads:
// items, parts (with their n-gram totals), modes, the n-grams indexed and
// the parts each counts for.
func diffIndex(t *testing.T, name string, got, want *Index) {
	t.Helper()
	switch {
	case !slices.Equal(got.ids, want.ids):
		t.Errorf("%s: ids differ", name)
	case !slices.Equal(got.parts, want.parts):
		t.Errorf("%s: parts differ", name)
	case got.text != want.text || got.code != want.code:
		t.Errorf("%s: modes text %v code %v, want %v %v", name, got.text, got.code, want.text, want.code)
	case got.Measurable != want.Measurable || got.Grams != want.Grams:
		t.Errorf("%s: %d measurable, %d n-grams; want %d, %d", name, got.Measurable, got.Grams, want.Measurable, want.Grams)
	case len(got.gramParts) != len(want.gramParts):
		t.Errorf("%s: %d (n-gram, part) pairs, want %d", name, len(got.gramParts), len(want.gramParts))
	case fmt.Sprint(got.texts) != fmt.Sprint(want.texts):
		t.Errorf("%s: texts differ", name)
	}
	g, w := indexGrams(t, got), indexGrams(t, want)
	if len(g) != len(w) {
		t.Errorf("%s: %d n-grams in the table, want %d", name, len(g), len(w))
	}
	for h, wp := range w {
		if gp, ok := g[h]; !ok || !slices.Equal(gp, wp) {
			t.Errorf("%s: n-gram %#x counts for parts %v, want %v", name, h, gp, wp)
			return
		}
	}
}

// TestNewIndexMatchesReference builds every shared test set and random
// ones (n-grams repeated within a part, shared by 2, 3 and more items,
// text and code parts, parts too short to measure) with NewIndex and with
// the map-based build it replaced, and requires the same index.
func TestNewIndexMatchesReference(t *testing.T) {
	data := sharedDatasets(t)
	for _, task := range []string{"gsm8k", "humaneval", "bfcl", "arenahard", "healthbench"} {
		ts, err := TaskTestSets{Src: dataset.Dir(data)}.TestSet(context.Background(), task)
		if err != nil {
			t.Errorf("%s: %v", task, err)
			continue
		}
		got, err := NewIndex(ts)
		if err != nil {
			t.Fatal(err)
		}
		want, err := newIndexRef(ts)
		if err != nil {
			t.Fatal(err)
		}
		if want.Grams < 1000 {
			t.Errorf("%s: only %d n-grams", task, want.Grams)
		}
		diffIndex(t, task, got, want)
	}
	r := rand.New(rand.NewSource(15))
	words := strings.Fields("how many apples does she have left def return x y if else for in range print the a of to 1 2 3 42 \\n \\u0041 é _ ( ) : =")
	phrase := func(n int) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			b.WriteString(words[r.Intn(len(words))])
			b.WriteByte(" \n\t"[r.Intn(3)])
		}
		return b.String()
	}
	shared := []string{phrase(12), phrase(20), phrase(30)}
	for round := 0; round < 40; round++ {
		ts := &TestSet{Task: fmt.Sprint("random", round)}
		for i := 0; i < 1+r.Intn(60); i++ {
			it := TestItem{ID: fmt.Sprint("t/", i)}
			for k := 0; k < 1+r.Intn(3); k++ {
				s := phrase(r.Intn(40))
				if r.Intn(3) == 0 {
					s += shared[r.Intn(len(shared))] + phrase(r.Intn(5))
				}
				if r.Intn(4) == 0 {
					s += " " + s // n-grams repeated within the part
				}
				it.Parts = append(it.Parts, TestPart{Name: fmt.Sprint("p", k), Text: s, Code: r.Intn(4) == 0})
			}
			ts.Items = append(ts.Items, it)
		}
		want, werr := newIndexRef(ts)
		got, gerr := NewIndex(ts)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("%s: error %v, want %v", ts.Task, gerr, werr)
		}
		if werr == nil {
			diffIndex(t, ts.Task, got, want)
		}
	}
}

// BenchmarkNewIndex builds the GSM8K test index, new and reference side
// by side; reports ref-x-new, the reference's time over the new build's.
func BenchmarkNewIndex(b *testing.B) {
	ts, err := TaskTestSets{Src: dataset.Dir(sharedDatasets(b))}.TestSet(context.Background(), "gsm8k")
	if err != nil {
		b.Fatal(err)
	}
	var tn, tr float64
	for i := 0; i < b.N; i++ {
		c0 := cpuSeconds()
		if _, err := NewIndex(ts); err != nil {
			b.Fatal(err)
		}
		c1 := cpuSeconds()
		if _, err := newIndexRef(ts); err != nil {
			b.Fatal(err)
		}
		tn, tr = tn+c1-c0, tr+cpuSeconds()-c1
	}
	b.ReportMetric(tn*1e3/float64(b.N), "new-cpu-ms")
	b.ReportMetric(tr*1e3/float64(b.N), "ref-cpu-ms")
	b.ReportMetric(tr/tn, "ref-x-new")
}
