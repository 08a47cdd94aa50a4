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
	return lerp(sorted[lo], sorted[lo+1], frac)
}

// lerp is quantile's interpolation, one function for the sorted and the
// selected order statistics so that both round the same way.
func lerp(a, b, frac float64) float64 { return a + frac*(b-a) }

// Interval is a two-sided confidence interval.
type Interval struct {
	Lo float64 `json:"lo"`
	Hi float64 `json:"hi"`
}

// percentileCI is the 2.5% and 97.5% quantiles of reps, which it may
// reorder: quantile of the sorted replicates. It needs only four order
// statistics, the two on either side of each quantile, and finds them in
// one pass per tail with a small heap (selectQuantile) instead of sorting
// every replicate; it sorts when the values are not totally ordered by <
// (a NaN, or a -0 that sorts anywhere among the zeros) or a tail is too
// long for a heap to pay. TestPercentileCIIsSorted.
func percentileCI(reps []float64) *Interval {
	if len(reps) == 0 {
		return nil
	}
	if canSelect(reps) {
		lo, ok1 := selectQuantile(reps, 0.025)
		hi, ok2 := selectQuantile(reps, 0.975)
		if ok1 && ok2 {
			return &Interval{Lo: lo, Hi: hi}
		}
	}
	slices.Sort(reps)
	return &Interval{Lo: quantile(reps, 0.025), Hi: quantile(reps, 0.975)}
}

// canSelect reports whether xs has no NaN and no negative zero: then equal
// values are the same bits, and the k-th smallest value does not depend on
// how a sort orders ties.
func canSelect(xs []float64) bool {
	for _, x := range xs {
		if x != x || (x == 0 && math.Signbit(x)) {
			return false
		}
	}
	return true
}

// selectQuantile is quantile(q) of xs as if sorted, for xs that canSelect,
// found with a heap of the k smallest (or largest) values, where k is two
// more than the order statistics below (above) the quantile; false when k
// is over an eighth of xs (then a sort is as good).
func selectQuantile(xs []float64, q float64) (float64, bool) {
	n := len(xs)
	if n == 1 {
		return xs[0], true
	}
	pos := q * float64(n-1)
	lo := int(math.Floor(pos))
	if lo >= n-1 {
		return slices.Max(xs), true
	}
	frac := pos - float64(lo)
	var a, b float64 // the order statistics lo and lo+1
	switch {
	case (lo+2)*8 <= n:
		b, a = smallest(xs, lo+2, 1)
	case (n-lo)*8 <= n:
		a, b = smallest(xs, n-lo, -1)
		a, b = -a, -b
	default:
		return 0, false
	}
	return lerp(a, b, frac), true
}

// smallest returns the k-th and (k-1)-th smallest of sign*x for x in xs
// (2 <= k <= len(xs); sign 1 or -1, by which a multiplication is exact):
// it keeps the k smallest in a max-heap and replaces the root by any value
// below it.
func smallest(xs []float64, k int, sign float64) (kth, prev float64) {
	h := make([]float64, k)
	for i, x := range xs[:k] {
		h[i] = sign * x
	}
	for i := k/2 - 1; i >= 0; i-- {
		siftDown(h, i)
	}
	for _, x := range xs[k:] {
		if x *= sign; x < h[0] {
			h[0] = x
			siftDown(h, 0)
		}
	}
	prev = h[1]
	if k > 2 && h[2] > prev {
		prev = h[2]
	}
	return h[0], prev
}

// siftDown restores the max-heap h below i.
func siftDown(h []float64, i int) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if c+1 < len(h) && h[c] < h[c+1] {
			c++
		}
		if h[i] >= h[c] {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
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
