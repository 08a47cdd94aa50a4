package report

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
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

// sortedCI is percentileCI as it was: sort every replicate, then quantile.
func sortedCI(reps []float64) *Interval {
	if len(reps) == 0 {
		return nil
	}
	s := slices.Clone(reps)
	slices.Sort(s)
	return &Interval{Lo: quantile(s, 0.025), Hi: quantile(s, 0.975)}
}

// TestPercentileCIIsSorted: the interval found by selection has the bits
// of the one found by sorting, on bootstrap replicates of the kind Build
// makes and on random values of every length, with many ties, in sorted,
// reversed and random order, with negative zeros and NaNs (which sort).
func TestPercentileCIIsSorted(t *testing.T) {
	same := func(name string, reps []float64) {
		t.Helper()
		want := sortedCI(reps)
		got := percentileCI(slices.Clone(reps))
		if math.Float64bits(got.Lo) != math.Float64bits(want.Lo) || math.Float64bits(got.Hi) != math.Float64bits(want.Hi) {
			t.Fatalf("%s (%d values): got [%v, %v], want [%v, %v]", name, len(reps), got.Lo, got.Hi, want.Lo, want.Hi)
		}
	}
	// Replicates as Build makes them: 3 seeds, 7 benchmarks, 4 models.
	for seed := range uint64(20) {
		vals := rand.New(rand.NewPCG(seed, 7))
		m := newCellMatrix(7, 4, 3)
		for b := range 7 {
			for mi := range 4 {
				for s := range 3 {
					m.at(b, mi)[s] = math.Round(1000*vals.Float64()) / 10
				}
			}
		}
		for _, n := range []int{2000, 1000, 10000, 407, 408, 409} {
			src := newRNG(seed, "method", "x")
			col := make([]float64, 7)
			reps := make([]float64, n)
			for i := range reps {
				m.resample(src, col)
				reps[i] = weighted(col, []float64{0.2, 0.1, 0.1, 0.2, 0.1, 0.2, 0.1})
			}
			same(fmt.Sprintf("replicates seed %d", seed), reps)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		n := 1 + rng.IntN(3000)
		if i < 100 {
			n = 1 + i
		}
		reps := make([]float64, n)
		distinct := 1 + rng.IntN(2*n) // few distinct values: many ties
		for j := range reps {
			switch rng.IntN(8) {
			case 0:
				reps[j] = float64(rng.IntN(distinct)) - float64(distinct)/2
			case 1:
				reps[j] = 0
			default:
				reps[j] = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(6)))
			}
		}
		switch rng.IntN(6) {
		case 0:
			slices.Sort(reps)
		case 1:
			slices.Sort(reps)
			slices.Reverse(reps)
		case 2:
			reps[rng.IntN(n)] = math.Copysign(0, -1)
		case 3:
			reps[rng.IntN(n)] = math.NaN()
		case 4:
			reps[rng.IntN(n)] = math.Inf(1 - 2*rng.IntN(2))
		}
		same(fmt.Sprintf("random %d", i), reps)
	}
}

// BenchmarkPercentileCI: the interval of 2,000 replicates, by selection
// against sorting them all (the old way).
func BenchmarkPercentileCI(b *testing.B) {
	vals := rand.New(rand.NewPCG(1, 7))
	m := newCellMatrix(7, 4, 3)
	for b := range 7 {
		for mi := range 4 {
			for s := range 3 {
				m.at(b, mi)[s] = math.Round(1000*vals.Float64()) / 10
			}
		}
	}
	src := newRNG(1, "method", "x")
	col := make([]float64, 7)
	reps := make([]float64, 2000)
	for i := range reps {
		m.resample(src, col)
		reps[i] = weighted(col, []float64{0.2, 0.1, 0.1, 0.2, 0.1, 0.2, 0.1})
	}
	work := make([]float64, len(reps))
	b.Run("select", func(b *testing.B) {
		for b.Loop() {
			copy(work, reps)
			percentileCI(work)
		}
	})
	b.Run("sort", func(b *testing.B) {
		for b.Loop() {
			copy(work, reps)
			slices.Sort(work)
			_ = &Interval{Lo: quantile(work, 0.025), Hi: quantile(work, 0.975)}
		}
	})
}
