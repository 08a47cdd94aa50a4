package safetensors

import (
	"fmt"
	"io"
	"os"
	"unsafe"
)

type refChunkBufs struct {
	rawM, rawR []byte
	fm, fr     []float32
}

func newRefChunkBufs() *refChunkBufs {
	return &refChunkBufs{rawM: make([]byte, chunkElems*8), rawR: make([]byte, chunkElems*8), fm: make([]float32, chunkElems), fr: make([]float32, chunkElems)}
}

// refCompareGroup is compareGroup as it was before reads were overlapped
// with computing (kept as the reference of TestCompareMatchesReference): it
// reads the model tensor once, chunk by chunk, and for each
// reference returns sum (m-r)^2 and sum r^2 over the compared elements.
func refCompareGroup(open func(string) (*os.File, error), g *group, b *refChunkBufs) ([]float64, []float64, error) {
	fm, err := open(g.m.File)
	if err != nil {
		return nil, nil, err
	}
	szm := int64(DTypeSize(g.m.DType))
	var maxE int64
	for _, p := range g.pairs {
		maxE = max(maxE, p.elems)
	}
	sqd, sqr := make([]float64, len(g.pairs)), make([]float64, len(g.pairs))
	for done := int64(0); done < maxE; {
		n := min(int64(chunkElems), maxE-done)
		rm := b.rawM[:n*szm]
		if _, err := fm.ReadAt(rm, g.m.Offset+done*szm); err != nil && err != io.EOF {
			return nil, nil, fmt.Errorf("read %s in %s: %w", g.m.Name, g.m.File, err)
		}
		Decode(g.m.DType, rm, b.fm[:n])
		for k, p := range g.pairs {
			if done >= p.elems {
				continue
			}
			k2 := min(n, p.elems-done)
			fr, err := open(p.r.File)
			if err != nil {
				return nil, nil, err
			}
			szr := int64(DTypeSize(p.r.DType))
			rr := b.rawR[:k2*szr]
			if _, err := fr.ReadAt(rr, p.r.Offset+done*szr); err != nil && err != io.EOF {
				return nil, nil, fmt.Errorf("read %s in %s: %w", p.r.Name, p.r.File, err)
			}
			var d, r float64
			if p.r.DType == "BF16" && nativeLE {
				d, r = sumSqBF16(b.fm[:k2], unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(rr))), k2))
			} else {
				Decode(p.r.DType, rr, b.fr[:k2])
				d, r = sumSq(b.fm[:k2], b.fr[:k2])
			}
			sqd[k] += d
			sqr[k] += r
		}
		done += n
	}
	return sqd, sqr, nil
}
