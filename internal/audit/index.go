package audit

import (
	"cmp"
	"fmt"
	"slices"
)

// Contamination thresholds (docs/AUDIT.md).
const (
	// HitFraction: a test item's part (question, answer, ...) is present in
	// a file when at least this fraction of its distinct n-grams occur there.
	HitFraction = 0.5
	// MinGrams and MinCodeGrams: parts with fewer distinct n-grams than
	// this are too short to measure and never count as hit. Code n-grams
	// with identifiers normalised are less specific, so code parts need more.
	MinGrams     = 4
	MinCodeGrams = 10
	// GenericItems: an n-gram that occurs in this many test items or more is
	// boilerplate ("how many ... does she have left") and is not indexed.
	GenericItems = 3
	// FlagItems: the scan flags when at least this many distinct test items
	// are present in the scanned files, taken together.
	FlagItems = 3
)

type partInfo struct {
	item  int32
	name  string
	total int32
	code  bool
}

func (p partInfo) measurable() bool {
	if p.code {
		return p.total >= MinCodeGrams
	}
	return p.total >= MinGrams
}

// Index is a test set prepared for scanning.
type Index struct {
	Task       string
	ids        []string
	parts      []partInfo
	table      *gramTable
	gramStart  []int32 // CSR: parts of gram g are gramParts[gramStart[g]:gramStart[g+1]]
	gramParts  []int32
	text, code bool // which tokenizers the scan needs
	Measurable int  // items with at least one measurable part
	Grams      int
	// parts' texts by item id: an evaluation sample's target is checked
	// against them (evalSamples).
	texts map[string][]string
}

// NewIndex builds the n-gram index of ts.
func NewIndex(ts *TestSet) (*Index, error) {
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
	ix.gramStart = append(ix.gramStart, int32(len(ix.gramParts)))
	ix.table = newGramTable(kept)
	ix.Grams = len(kept)
	meas := map[int32]bool{}
	for _, p := range ix.parts {
		if p.measurable() {
			meas[p.item] = true
		}
	}
	ix.Measurable = len(meas)
	if ix.Measurable == 0 {
		return nil, fmt.Errorf("test set %s: no measurable items", ts.Task)
	}
	return ix, nil
}

// matcher collects the grams one file matched; one per worker (and one per
// decoder that runs on a goroutine of its own). Each stream in the file
// (a member, a decoded run) is tokenised by a feeder of its own, and all of
// them record into the matcher.
type matcher struct {
	ix      *Index
	seen    []uint64
	touched []int32
	counts  []int32
	fd      *feeder // the default stream: feed and docBreak
}

// feeder tokenises one stream into its matcher's n-grams.
type feeder struct {
	m    *matcher
	text *tokenizer
	code *tokenizer
	hits int // indexed n-grams seen (repeats included)
}

func (ix *Index) newMatcher() *matcher {
	m := &matcher{ix: ix, seen: make([]uint64, (ix.Grams+63)/64), counts: make([]int32, len(ix.parts))}
	m.fd = m.newFeeder()
	return m
}

func (m *matcher) mark(g int32) {
	if m.seen[g/64]&(1<<(g%64)) == 0 {
		m.seen[g/64] |= 1 << (g % 64)
		m.touched = append(m.touched, g)
	}
}

// newFeeder starts a stream whose n-grams do not join those of others.
func (m *matcher) newFeeder() *feeder {
	f := &feeder{m: m}
	if m.ix.text {
		f.text = newTokenizer(false, f)
	}
	if m.ix.code {
		f.code = newTokenizer(true, f)
	}
	return f
}

// grams looks a batch of n-grams up: the filter for each first, then the
// table for the few that pass.
func (f *feeder) grams(hs []uint64) {
	t := f.m.ix.table
	for _, h := range hs {
		if !t.mayHave(h) {
			continue
		}
		if g := t.find(h); g >= 0 {
			f.hits++
			f.m.mark(g)
		}
	}
}

func (f *feeder) feed(b []byte) {
	if f.text != nil {
		f.text.Feed(b)
	}
	if f.code != nil {
		f.code.Feed(b)
	}
}

// reset ends a document (e.g. a parquet value) so n-grams do not span it.
func (f *feeder) reset() {
	if f.text != nil {
		f.text.reset()
	}
	if f.code != nil {
		f.code.reset()
	}
}

// absorb records the grams another matcher (of the same index) saw.
func (m *matcher) absorb(o *matcher) {
	o.fd.reset()
	for _, g := range o.touched {
		m.mark(g)
	}
}

func (m *matcher) feed(b []byte) { m.fd.feed(b) }

// docBreak ends a document of the default stream.
func (m *matcher) docBreak() { m.fd.reset() }

// hit is one test item found in a file.
type hit struct {
	item int32
	part string
	frac float64
}

// finish returns the items hit since the last finish and resets.
func (m *matcher) finish() []hit {
	m.docBreak()
	ix := m.ix
	var touchedParts []int32
	for _, g := range m.touched {
		m.seen[g/64] &^= 1 << (g % 64)
		for _, p := range ix.gramParts[ix.gramStart[g]:ix.gramStart[g+1]] {
			if m.counts[p] == 0 {
				touchedParts = append(touchedParts, p)
			}
			m.counts[p]++
		}
	}
	m.touched = m.touched[:0]
	// In part order: among an item's parts with the same fraction the
	// first wins, whatever order the n-grams were seen in (a file
	// scanned in parts, decoders on goroutines of their own).
	slices.Sort(touchedParts)
	best := map[int32]hit{}
	for _, p := range touchedParts {
		pi := ix.parts[p]
		c := m.counts[p]
		m.counts[p] = 0
		if !pi.measurable() {
			continue
		}
		f := float64(c) / float64(pi.total)
		if f >= HitFraction && f > best[pi.item].frac {
			best[pi.item] = hit{item: pi.item, part: pi.name, frac: f}
		}
	}
	out := make([]hit, 0, len(best))
	for _, h := range best {
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b hit) int { return cmp.Compare(a.item, b.item) })
	return out
}
