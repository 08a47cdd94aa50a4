package report

import (
	"hash/fnv"
	"math"
	"math/bits"
	"slices"
)

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// sampleStd is the standard deviation with n-1 in the denominator, or nil
// when there are fewer than two values.
func sampleStd(xs []float64) *float64 {
	if len(xs) < 2 {
		return nil
	}
	m := mean(xs)
	s := 0.0
	for _, x := range xs {
		s += (x - m) * (x - m)
	}
	v := math.Sqrt(s / float64(len(xs)-1))
	return &v
}

// quantile is numpy's default (linear interpolation between order
// statistics); sorted must be sorted and non-empty.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 1 {
		return sorted[0]
	}
	pos := q * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	if lo >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	frac := pos - float64(lo)
	return sorted[lo] + frac*(sorted[lo+1]-sorted[lo])
}

// Interval is a two-sided confidence interval.
type Interval struct {
	Lo float64 `json:"lo"`
	Hi float64 `json:"hi"`
}

func percentileCI(reps []float64) *Interval {
	if len(reps) == 0 {
		return nil
	}
	slices.Sort(reps)
	return &Interval{Lo: quantile(reps, 0.025), Hi: quantile(reps, 0.975)}
}

// newRNG returns a generator that depends only on the report seed and the
// names given, so that adding a method to a report does not move the
// intervals of the others: the PCG of rand.NewPCG(seed, fnv64a(names)).
func newRNG(seed uint64, names ...string) *pcg {
	h := fnv.New64a()
	for _, n := range names {
		h.Write([]byte(n))
		h.Write([]byte{0})
	}
	return &pcg{hi: seed, lo: h.Sum64()}
}

// pcg is math/rand/v2's PCG (a 128-bit LCG with the DXSM output function)
// as a small value the compiler inlines into the bootstrap loop: the same
// state after NewPCG(hi, lo) and the same outputs (TestPCGIsRandPCG).
type pcg struct{ hi, lo uint64 }

func (p *pcg) Uint64() uint64 {
	const (
		mulHi = 2549297995355413924
		mulLo = 4865540595714422341
		incHi = 6364136223846793005
		incLo = 1442695040888963407
	)
	hi, lo := bits.Mul64(p.lo, mulLo)
	hi += p.hi*mulLo + p.lo*mulHi
	lo, c := bits.Add64(lo, incLo, 0)
	hi, _ = bits.Add64(hi, incHi, c)
	p.lo, p.hi = lo, hi
	const cheapMul = 0xda942042e4dd58b5
	hi ^= hi >> 32
	hi *= cheapMul
	hi ^= hi >> 48
	hi *= lo | 1
	return hi
}

// intN is rand.Rand.IntN(n) drawn from p: the same multiply-and-reject
// (Lemire) steps, so that it returns exactly the numbers IntN returns for
// the same source. thresh is -n % n; IntN tests lo < thresh only once
// lo < n, and as thresh < n, testing lo < thresh directly takes the same
// branches.
func (p *pcg) intN(n, thresh uint64) uint64 {
	if n&(n-1) == 0 {
		return p.Uint64() & (n - 1)
	}
	hi, lo := bits.Mul64(p.Uint64(), n)
	for lo < thresh {
		hi, lo = bits.Mul64(p.Uint64(), n)
	}
	return hi
}

// cellMatrix holds one method's cell values in one flat slice:
// v[(b*nm+m)*ns+s] is the score (in percent) of benchmark b on base model m
// for the method's s-th seed.
type cellMatrix struct {
	nb, nm, ns int
	v          []float64
}

func newCellMatrix(nb, nm, ns int) cellMatrix {
	return cellMatrix{nb: nb, nm: nm, ns: ns, v: make([]float64, nb*nm*ns)}
}

// at is the cell (b, m): one value per seed.
func (c cellMatrix) at(b, m int) []float64 {
	i := (b*c.nm + m) * c.ns
	return c.v[i : i+c.ns : i+c.ns]
}

// resample draws one stratified bootstrap replicate: within every
// (benchmark, base model) cell it resamples the seeds with replacement and
// returns per benchmark the mean over base models of the resampled means.
// The draws, and the order of the sums, are those of rand.Rand.IntN over
// the cells in order, so that the intervals stay what they have been.
func (c cellMatrix) resample(src *pcg, cols []float64) {
	if c.ns == 0 { // no seeds: every mean is 0/0, as in the nested loops
		for b := range c.nb {
			cols[b] = math.NaN()
		}
		return
	}
	p := *src // a local copy the compiler keeps in registers
	n := uint64(c.ns)
	mask, thresh, pow2 := n-1, -n%n, n&(n-1) == 0
	fn := float64(c.ns)
	for b := range c.nb {
		sum := 0.0
		row := c.v[b*c.nm*c.ns : (b+1)*c.nm*c.ns]
		for m := range c.nm {
			vals := row[m*c.ns : (m+1)*c.ns]
			s := 0.0
			for range c.ns {
				// p.intN(n, thresh), by hand: a loop does not inline.
				var i uint64
				if pow2 {
					i = p.Uint64() & mask
				} else {
					hi, lo := bits.Mul64(p.Uint64(), n)
					for lo < thresh {
						hi, lo = bits.Mul64(p.Uint64(), n)
					}
					i = hi
				}
				s += vals[i]
			}
			sum += s / fn
		}
		cols[b] = sum / float64(c.nm)
	}
	*src = p
}

func weighted(cols, weights []float64) float64 {
	s := 0.0
	for i, c := range cols {
		s += weights[i] * c
	}
	return s
}
