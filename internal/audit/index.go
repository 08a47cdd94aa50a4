package audit

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math/bits"
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
//
// It gathers every part's n-grams as (hash, part) pairs in one slice and
// sorts it: the pairs of one n-gram are then adjacent, in part order, so
// the parts that share an n-gram and the items it occurs in are read off
// in one pass, with no map per n-gram (newIndexRef in index_ref_test.go
// is the map-based build this replaced; TestNewIndexMatchesReference
// compares the two).
func NewIndex(ts *TestSet) (*Index, error) {
	ix := &Index{Task: ts.Task, texts: make(map[string][]string, len(ts.Items))}
	size := 0
	for _, it := range ts.Items {
		for _, p := range it.Parts {
			size += len(p.Text)
		}
	}
	occ := make([]gramOcc, 0, size/4) // about a word per 5 bytes, an n-gram per word
	sink := &occSink{}
	var tok [2]*tokenizer // text, code
	for i, it := range ts.Items {
		ix.ids = append(ix.ids, it.ID)
		for _, p := range it.Parts {
			ix.texts[it.ID] = append(ix.texts[it.ID], p.Text)
			pid := int32(len(ix.parts))
			ix.parts = append(ix.parts, partInfo{item: int32(i), name: p.Name, code: p.Code})
			mode := 0
			if p.Code {
				ix.code, mode = true, 1
			} else {
				ix.text = true
			}
			if tok[mode] == nil {
				tok[mode] = newTokenizer(p.Code, sink)
			}
			enc, _ := json.Marshal(p.Text) // test text is JSON-encoded before it is tokenised
			sink.occ, sink.part = occ, pid
			tok[mode].Feed(enc)
			tok[mode].reset()
			occ = sink.occ
		}
	}
	occ = slices.Compact(sortOccs(occ)) // an n-gram repeated within a part counts once
	kept := make([]uint64, 0, len(occ))
	ix.gramStart = make([]int32, 0, len(occ)+1)
	ix.gramParts = make([]int32, 0, len(occ))
	for i := 0; i < len(occ); {
		j, items, last := i, 0, int32(-1)
		for ; j < len(occ) && occ[j].h == occ[i].h; j++ {
			if it := ix.parts[occ[j].part].item; it != last { // parts are in item order
				items, last = items+1, it
			}
		}
		if items < GenericItems {
			kept = append(kept, occ[i].h)
			ix.gramStart = append(ix.gramStart, int32(len(ix.gramParts)))
			for _, o := range occ[i:j] {
				ix.gramParts = append(ix.gramParts, o.part)
				ix.parts[o.part].total++
			}
		}
		i = j
	}
	return ix.finish(kept, ts.Task)
}

// gramOcc is one n-gram of one test part.
type gramOcc struct {
	h    uint64
	part int32
}

// sortOccs sorts occ by hash, then part: a counting sort on the hashes'
// top bits (they are uniform) into about two per bucket, stable, so parts
// stay in the order they were added (increasing), then an insertion sort
// of each bucket by hash (stable too).
func sortOccs(occ []gramOcc) []gramOcc {
	if len(occ) < 2 {
		return occ
	}
	b := uint(bits.Len(uint(len(occ)/2)) + 1)
	shift := 64 - b
	start := make([]int32, 1<<b+1)
	for _, o := range occ {
		start[o.h>>shift+1]++
	}
	for i := 1; i < len(start); i++ {
		start[i] += start[i-1]
	}
	out := make([]gramOcc, len(occ))
	next := slices.Clone(start[:1<<b])
	for _, o := range occ {
		k := o.h >> shift
		out[next[k]] = o
		next[k]++
	}
	for k := 0; k < 1<<b; k++ {
		bk := out[start[k]:start[k+1]]
		for i := 1; i < len(bk); i++ {
			for j := i; j > 0 && bk[j].h < bk[j-1].h; j-- {
				bk[j], bk[j-1] = bk[j-1], bk[j]
			}
		}
	}
	return out
}

// occSink gathers a part's n-grams as gramOccs.
type occSink struct {
	occ  []gramOcc
	part int32
}

func (s *occSink) grams(hs []uint64) {
	for _, h := range hs {
		s.occ = append(s.occ, gramOcc{h: h, part: s.part})
	}
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

// finish closes the last n-gram's parts, builds the lookup table over the
// kept n-grams and counts the measurable items; a set with none is an
// error.
func (ix *Index) finish(kept []uint64, task string) (*Index, error) {
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
		return nil, fmt.Errorf("test set %s: no measurable items", task)
	}
	return ix, nil
}
