package pytext

import (
	"math"
	"testing"
)

// Values and Python 3.11's repr() of them.
func TestFloatRepr(t *testing.T) {
	tenth := 0.1 // a variable: constant arithmetic would be exact
	for _, c := range []struct {
		f    float64
		want string
	}{
		{0.5, "0.5"}, {1, "1.0"}, {-3, "-3.0"}, {0, "0.0"}, {0.0001, "0.0001"}, {0.00001, "1e-05"},
		{1.5e-7, "1.5e-07"}, {1e16, "1e+16"}, {123456789, "123456789.0"}, {tenth + 2*tenth, "0.30000000000000004"},
		{math.NaN(), "NaN"}, {math.Inf(1), "Infinity"}, {math.Inf(-1), "-Infinity"},
	} {
		if got := FloatRepr(c.f); got != c.want {
			t.Errorf("FloatRepr(%v) = %q, want %q", c.f, got, c.want)
		}
	}
}
