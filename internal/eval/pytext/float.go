package pytext

import (
	"math"
	"strconv"
	"strings"
)

// FloatRepr is Python's repr(float) as json.dump writes it: the shortest
// round-trip form, always with a dot or an exponent; NaN and infinities as
// NaN, Infinity, -Infinity.
func FloatRepr(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	abs := math.Abs(f)
	if abs != 0 && (abs < 1e-4 || abs >= 1e16) {
		s := strconv.FormatFloat(f, 'e', -1, 64)
		// Python writes 1e+16 as 1e+16, Go as 1e+16: same; two-digit exponents pad.
		return s
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}
