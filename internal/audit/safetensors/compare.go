package safetensors

import (
	"github.com/ptb-dev/ptb/internal/safeio"

	"context"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// Distance is how far a model is from one reference, over the tensors the
// two share (same canonical name, same trailing dimensions; when only the
// first dimension differs, as after a vocabulary resize, the common rows).
type Distance struct {
	Ref          string `json:"ref"`
	Matched      int    `json:"matched_tensors"`
	MatchedElems int64  `json:"matched_elems"`
	// Coverage is the fraction of the model's elements that were compared.
	Coverage float64 `json:"coverage"`
	// RefCoverage is the fraction of the reference's elements compared.
	RefCoverage float64 `json:"ref_coverage"`
	// RelDist is ||model - ref|| / ||ref|| over all compared elements.
	RelDist float64 `json:"rel_dist"`
	// FarFraction is the fraction of compared elements in tensors whose own
	// relative distance exceeds the FarTensor threshold given to Compare.
	FarFraction float64 `json:"far_fraction"`
	// Identical is true when every compared element is equal and coverage is 1.
	Identical bool `json:"identical"`
	sqDiff    float64
	sqRef     float64
	farElems  int64
	diffElems int64
}

// CanonicalName strips wrapper prefixes that differ between loaders
// ("model.", "language_model.", "base_model."), so that
// "model.language_model.layers.0.x" and "model.layers.0.x" compare.
func CanonicalName(name string) string {
	for {
		i := strings.IndexByte(name, '.')
		if i < 0 {
			return name
		}
		switch name[:i] {
		case "model", "language_model", "base_model":
			name = name[i+1:]
		default:
			return name
		}
	}
}

type pair struct {
	ref   int
	r     Tensor
	elems int64
}

// group is one model tensor and the reference tensors it is compared with.
type group struct {
	m     Tensor
	pairs []pair
}

// Compare streams model and every reference tensor by tensor, in chunks,
// over GOMAXPROCS workers, and returns one Distance per reference. A tensor
// whose relative distance to a reference exceeds farTensor counts towards
// that reference's FarFraction. Non-float tensors are skipped.
func Compare(ctx context.Context, model *Model, refs []*Model, farTensor float64) ([]Distance, error) {
	return compare(ctx, model, refs, farTensor, compareGroup, newChunkBufs)
}

// groupFunc computes one group's sums with a worker's buffers B.
type groupFunc[B any] func(open func(string) (*os.File, error), g *group, b B) ([]float64, []float64, error)

func compare[B any](ctx context.Context, model *Model, refs []*Model, farTensor float64, compareGroup groupFunc[B], newBufs func() B) ([]Distance, error) {
	mByCanon := map[string]Tensor{}
	var mElems int64
	for _, n := range model.Names {
		t := model.Tensors[n]
		if _, err := Decode(t.DType, nil, nil); err != nil {
			continue
		}
		mByCanon[CanonicalName(n)] = t
		mElems += t.Elems()
	}
	out := make([]Distance, len(refs))
	groups := map[string]*group{}
	var order []string
	for i, ref := range refs {
		out[i].Ref = ref.Dir
		var refElems int64
		for _, n := range ref.Names {
			rt := ref.Tensors[n]
			if _, err := Decode(rt.DType, nil, nil); err != nil {
				continue
			}
			refElems += rt.Elems()
			mt, ok := mByCanon[CanonicalName(n)]
			if !ok || len(mt.Shape) != len(rt.Shape) || len(mt.Shape) == 0 && mt.Elems() != 1 {
				continue
			}
			same := true
			for d := 1; d < len(mt.Shape); d++ {
				same = same && mt.Shape[d] == rt.Shape[d]
			}
			if !same {
				continue
			}
			e := mt.Elems()
			if len(mt.Shape) > 0 && mt.Shape[0] != rt.Shape[0] {
				rows := min(mt.Shape[0], rt.Shape[0])
				e = e / mt.Shape[0] * rows
			}
			g := groups[mt.Name]
			if g == nil {
				g = &group{m: mt}
				groups[mt.Name] = g
				order = append(order, mt.Name)
			}
			g.pairs = append(g.pairs, pair{ref: i, r: rt, elems: e})
			out[i].Matched++
			out[i].MatchedElems += e
		}
		if mElems > 0 {
			out[i].Coverage = float64(out[i].MatchedElems) / float64(mElems)
		}
		if refElems > 0 {
			out[i].RefCoverage = float64(out[i].MatchedElems) / float64(refElems)
		}
	}
	var mu sync.Mutex
	var firstErr error
	ch := make(chan *group)
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			files := map[string]*os.File{}
			defer func() {
				for _, f := range files {
					f.Close()
				}
			}()
			open := func(p string) (*os.File, error) {
				if f, ok := files[p]; ok {
					return f, nil
				}
				f, _, err := safeio.Open(p)
				if err == nil {
					files[p] = f
				}
				return f, err
			}
			bufs := newBufs()
			for g := range ch {
				if ctx.Err() != nil {
					continue
				}
				sqd, sqr, err := compareGroup(open, g, bufs)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				for k, p := range g.pairs {
					d := &out[p.ref]
					d.sqDiff += sqd[k]
					d.sqRef += sqr[k]
					if sqd[k] > 0 {
						d.diffElems += p.elems
					}
					if sqr[k] > 0 && math.Sqrt(sqd[k]/sqr[k]) > farTensor || sqr[k] == 0 && sqd[k] > 0 {
						d.farElems += p.elems
					}
				}
				mu.Unlock()
			}
		}()
	}
	for _, n := range order {
		ch <- groups[n]
	}
	close(ch)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		d := &out[i]
		if d.sqRef > 0 {
			d.RelDist = math.Sqrt(d.sqDiff / d.sqRef)
		} else if d.sqDiff > 0 {
			d.RelDist = math.Inf(1)
		}
		if d.MatchedElems > 0 {
			d.FarFraction = float64(d.farElems) / float64(d.MatchedElems)
		}
		d.Identical = d.MatchedElems > 0 && d.diffElems == 0 && d.sqDiff == 0 && d.Coverage == 1 && d.RefCoverage == 1
	}
	return out, nil
}

const chunkElems = 1 << 18

// chunkSet holds one chunk's raw bytes: the model tensor's and, for each
// pair, the reference tensor's.
type chunkSet struct {
	done, n int64
	rm      []byte
	rr      [][]byte
	err     error
}

// chunkBufs are a worker's buffers: two chunk sets (one being read while
// the other is computed on) and the decoded floats.
type chunkBufs struct {
	sets   [2]*chunkSet
	fm, fr []float32
}

func newChunkBufs() *chunkBufs {
	return &chunkBufs{sets: [2]*chunkSet{{}, {}}, fm: make([]float32, chunkElems), fr: make([]float32, chunkElems)}
}

func grow(b []byte, n int64) []byte {
	if int64(cap(b)) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// compareGroup reads the model tensor once, chunk by chunk, and for each
// reference returns sum (m-r)^2 and sum r^2 over the compared elements. A
// goroutine reads the next chunk (model and references) while this one is
// computed on, so reading and computing overlap.
func compareGroup(open func(string) (*os.File, error), g *group, b *chunkBufs) ([]float64, []float64, error) {
	szm := int64(DTypeSize(g.m.DType))
	var maxE int64
	for _, p := range g.pairs {
		maxE = max(maxE, p.elems)
	}
	full := make(chan *chunkSet, 1)
	free := make(chan *chunkSet, 2)
	free <- b.sets[0]
	free <- b.sets[1]
	stop := make(chan struct{})
	go func() {
		defer close(full)
		for done := int64(0); done < maxE; {
			var s *chunkSet
			select {
			case s = <-free:
			case <-stop:
				return
			}
			n := min(int64(chunkElems), maxE-done)
			s.done, s.n, s.err = done, n, readChunk(open, g, s, done, n, szm)
			select {
			case full <- s:
			case <-stop:
				return
			}
			if s.err != nil {
				return
			}
			done += n
		}
	}()
	defer func() {
		close(stop)
		for range full { // the reader has stopped once full is closed
		}
	}()
	sqd, sqr := make([]float64, len(g.pairs)), make([]float64, len(g.pairs))
	mBF16 := g.m.DType == "BF16" && nativeLE
	for s := range full {
		if s.err != nil {
			return nil, nil, s.err
		}
		n, done := s.n, s.done
		decoded := false
		model := func() []float32 {
			if !decoded {
				Decode(g.m.DType, s.rm, b.fm[:n])
				decoded = true
			}
			return b.fm
		}
		for k, p := range g.pairs {
			if done >= p.elems {
				continue
			}
			k2 := min(n, p.elems-done)
			rr := s.rr[k]
			var d, r float64
			switch {
			case p.r.DType == "BF16" && mBF16:
				d, r = sumSqBF16Pair(asU16(s.rm)[:k2], asU16(rr)[:k2])
			case p.r.DType == "BF16" && nativeLE:
				d, r = sumSqBF16(model()[:k2], asU16(rr)[:k2])
			default:
				Decode(p.r.DType, rr, b.fr[:k2])
				d, r = sumSq(model()[:k2], b.fr[:k2])
			}
			sqd[k] += d
			sqr[k] += r
		}
		free <- s
	}
	return sqd, sqr, nil
}

// readChunk reads elements [done, done+n) of the model tensor and the
// matching part of each reference tensor into s.
func readChunk(open func(string) (*os.File, error), g *group, s *chunkSet, done, n, szm int64) error {
	fm, err := open(g.m.File)
	if err != nil {
		return err
	}
	s.rm = grow(s.rm, n*szm)
	if _, err := fm.ReadAt(s.rm, g.m.Offset+done*szm); err != nil && err != io.EOF {
		return fmt.Errorf("read %s in %s: %w", g.m.Name, g.m.File, err)
	}
	for len(s.rr) < len(g.pairs) {
		s.rr = append(s.rr, nil)
	}
	for k, p := range g.pairs {
		if done >= p.elems {
			continue
		}
		k2 := min(n, p.elems-done)
		fr, err := open(p.r.File)
		if err != nil {
			return err
		}
		szr := int64(DTypeSize(p.r.DType))
		s.rr[k] = grow(s.rr[k], k2*szr)
		if _, err := fr.ReadAt(s.rr[k], p.r.Offset+done*szr); err != nil && err != io.EOF {
			return fmt.Errorf("read %s in %s: %w", p.r.Name, p.r.File, err)
		}
	}
	return nil
}

// asU16 views raw little-endian bytes as []uint16 (nativeLE only).
func asU16(b []byte) []uint16 {
	return unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/2)
}

// sumSqBF16Pair is sumSqBF16 with a given as raw bfloat16 bits too: one
// pass over both tensors' bytes, the same sums in the same order.
func sumSqBF16Pair(a, b []uint16) (float64, float64) {
	var sd, sr float64
	for len(a) > 0 {
		k := min(len(a), len(b), 1024)
		aa, bb := a[:k], b[:k]
		var d0, d1, r0, r1 float32
		i := 0
		for ; i+2 <= k; i += 2 {
			y0 := math.Float32frombits(uint32(bb[i]) << 16)
			y1 := math.Float32frombits(uint32(bb[i+1]) << 16)
			x0 := math.Float32frombits(uint32(aa[i])<<16) - y0
			x1 := math.Float32frombits(uint32(aa[i+1])<<16) - y1
			d0 += x0 * x0
			d1 += x1 * x1
			r0 += y0 * y0
			r1 += y1 * y1
		}
		for ; i < k; i++ {
			y := math.Float32frombits(uint32(bb[i]) << 16)
			x := math.Float32frombits(uint32(aa[i])<<16) - y
			d0 += x * x
			r0 += y * y
		}
		sd += float64(d0) + float64(d1)
		sr += float64(r0) + float64(r1)
		a, b = a[k:], b[k:]
	}
	return sd, sr
}

// nativeLE is true on little-endian machines, where raw tensor bytes can
// be viewed as []uint16 without copying.
var nativeLE = func() bool { x := uint16(1); return *(*byte)(unsafe.Pointer(&x)) == 1 }()

// sumSqBF16 is sumSq with b given as raw bfloat16 bits.
func sumSqBF16(a []float32, b []uint16) (float64, float64) {
	var sd, sr float64
	for len(a) > 0 {
		k := min(len(a), len(b), 1024)
		aa, bb := a[:k], b[:k]
		var d0, d1, r0, r1 float32
		i := 0
		for ; i+2 <= k; i += 2 {
			y0 := math.Float32frombits(uint32(bb[i]) << 16)
			y1 := math.Float32frombits(uint32(bb[i+1]) << 16)
			x0, x1 := aa[i]-y0, aa[i+1]-y1
			d0 += x0 * x0
			d1 += x1 * x1
			r0 += y0 * y0
			r1 += y1 * y1
		}
		for ; i < k; i++ {
			y := math.Float32frombits(uint32(bb[i]) << 16)
			x := aa[i] - y
			d0 += x * x
			r0 += y * y
		}
		sd += float64(d0) + float64(d1)
		sr += float64(r0) + float64(r1)
		a, b = a[k:], b[k:]
	}
	return sd, sr
}

// sumSq returns sum (a-b)^2 and sum b^2, accumulating blocks in float32
// lanes and the block sums in float64.
func sumSq(a, b []float32) (float64, float64) {
	var sd, sr float64
	for len(a) > 0 {
		k := min(len(a), 1024)
		var d0, d1, d2, d3, r0, r1, r2, r3 float32
		i := 0
		for ; i+4 <= k; i += 4 {
			x0, x1, x2, x3 := a[i]-b[i], a[i+1]-b[i+1], a[i+2]-b[i+2], a[i+3]-b[i+3]
			d0 += x0 * x0
			d1 += x1 * x1
			d2 += x2 * x2
			d3 += x3 * x3
			r0 += b[i] * b[i]
			r1 += b[i+1] * b[i+1]
			r2 += b[i+2] * b[i+2]
			r3 += b[i+3] * b[i+3]
		}
		for ; i < k; i++ {
			x := a[i] - b[i]
			d0 += x * x
			r0 += b[i] * b[i]
		}
		sd += float64(d0) + float64(d1) + float64(d2) + float64(d3)
		sr += float64(r0) + float64(r1) + float64(r2) + float64(r3)
		a, b = a[k:], b[k:]
	}
	return sd, sr
}
