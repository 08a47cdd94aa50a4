package report

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sort"
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
	sort.Float64s(reps)
	return &Interval{Lo: quantile(reps, 0.025), Hi: quantile(reps, 0.975)}
}

// newRNG returns a generator that depends only on the report seed and the
// names given, so that adding a method to a report does not move the
// intervals of the others.
func newRNG(seed uint64, names ...string) *rand.Rand {
	h := fnv.New64a()
	for _, n := range names {
		h.Write([]byte(n))
		h.Write([]byte{0})
	}
	return rand.New(rand.NewPCG(seed, h.Sum64()))
}

// cellMatrix holds one method's cell values: v[b][m][s] is the score (in
// percent) of benchmark b on base model m for the method's s-th seed.
type cellMatrix [][][]float64

// resample draws one stratified bootstrap replicate: within every
// (benchmark, base model) cell it resamples the seeds with replacement and
// returns per benchmark the mean over base models of the resampled means.
func (c cellMatrix) resample(rng *rand.Rand, cols []float64) {
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

func weighted(cols, weights []float64) float64 {
	s := 0.0
	for i, c := range cols {
		s += weights[i] * c
	}
	return s
}
