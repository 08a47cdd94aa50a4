package report

import (
	"math/rand/v2"
	"testing"
)

// TestPCGIsRandPCG: the inlined PCG gives rand.PCG's outputs.
func TestPCGIsRandPCG(t *testing.T) {
	for _, seed := range [][2]uint64{{0, 0}, {1, 2}, {1 << 63, 1<<64 - 1}, {12345, 0xcbf29ce484222325}} {
		want, got := rand.NewPCG(seed[0], seed[1]), &pcg{hi: seed[0], lo: seed[1]}
		for i := range 100000 {
			if g, w := got.Uint64(), want.Uint64(); g != w {
				t.Fatalf("seed %v output %d: got %#x, want %#x", seed, i, g, w)
			}
		}
	}
}

// TestIntNIsRandIntN: the bootstrap's draws are exactly rand.Rand.IntN's
// for the same PCG, for small, power-of-two, odd and huge bounds (where the
// rejection loop runs often), so that faster resampling moves no interval.
func TestIntNIsRandIntN(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 5, 7, 8, 10, 64, 1000, 1<<62 + 1, 1<<63 - 1, 3 << 61} {
		for seed := range uint64(4) {
			want := rand.New(rand.NewPCG(seed, 99))
			src := &pcg{hi: seed, lo: 99}
			u := uint64(n)
			for i := range 5000 {
				if got, w := int(src.intN(u, -u%u)), want.IntN(n); got != w {
					t.Fatalf("n=%d seed=%d draw %d: got %d, want IntN's %d", n, seed, i, got, w)
				}
			}
		}
	}
}

// nestedResample is the bootstrap replicate as written before the flat
// matrix: nested slices and rand.Rand.IntN.
func nestedResample(c [][][]float64, rng *rand.Rand, cols []float64) {
	for b := range c {
		sum := 0.0
		for m := range c[b] {
			vals := c[b][m]
			n := len(vals)
			s := 0.0
			for range n {
				s += vals[rng.IntN(n)]
			}
			sum += s / float64(n)
		}
		cols[b] = sum / float64(len(c[b]))
	}
}

// TestResampleMatchesNested: the flat resampler gives bit-identical columns
// to the nested-slice one, replicate after replicate.
func TestResampleMatchesNested(t *testing.T) {
	for _, dims := range [][3]int{{7, 4, 3}, {7, 4, 1}, {2, 3, 5}, {1, 1, 2}, {3, 2, 8}} {
		nb, nm, ns := dims[0], dims[1], dims[2]
		vals := rand.New(rand.NewPCG(uint64(nb), uint64(ns)))
		flat := newCellMatrix(nb, nm, ns)
		nested := make([][][]float64, nb)
		for b := range nb {
			nested[b] = make([][]float64, nm)
			for m := range nm {
				nested[b][m] = make([]float64, ns)
				for s := range ns {
					v := 100 * vals.Float64()
					nested[b][m][s], flat.at(b, m)[s] = v, v
				}
			}
		}
		src, rng := newRNG(1, "method", "x"), rand.New(newRNG(1, "method", "x"))
		got, want := make([]float64, nb), make([]float64, nb)
		for i := range 500 {
			flat.resample(src, got)
			nestedResample(nested, rng, want)
			for b := range nb {
				if got[b] != want[b] {
					t.Fatalf("%v replicate %d benchmark %d: got %v, want %v", dims, i, b, got[b], want[b])
				}
			}
		}
	}
}

// BenchmarkResample: one method's 2,000 replicates (7 benchmarks, 4 base
// models, 3 seeds), flat with direct draws against nested with IntN.
func BenchmarkResample(b *testing.B) {
	const nb, nm, ns, reps = 7, 4, 3, 2000
	flat := newCellMatrix(nb, nm, ns)
	nested := make([][][]float64, nb)
	for bi := range nb {
		nested[bi] = make([][]float64, nm)
		for m := range nm {
			nested[bi][m] = make([]float64, ns)
			for s := range ns {
				nested[bi][m][s], flat.at(bi, m)[s] = float64(bi+m+s), float64(bi+m+s)
			}
		}
	}
	cols := make([]float64, nb)
	b.Run("flat", func(b *testing.B) {
		for b.Loop() {
			src := newRNG(1, "method", "x")
			for range reps {
				flat.resample(src, cols)
			}
		}
	})
	b.Run("nested-IntN", func(b *testing.B) {
		for b.Loop() {
			rng := rand.New(newRNG(1, "method", "x"))
			for range reps {
				nestedResample(nested, rng, cols)
			}
		}
	})
}
