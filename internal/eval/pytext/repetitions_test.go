package pytext

import (
	"strings"
	"testing"
)

// TestLimitRepetitionsTrailingRemainder covers the partial-repeat check of
// the block step. Expected values: the outputs of limit_repetitions as
// defined in PostTrainBench@9082063 src/eval/tasks/arenahardwriting/
// evaluate.py (the function run unmodified under CPython 3.11), and by hand
// for the first: "x\ny\n"*6+"\ny" splits into [x y]*6 + ["" "y"]; block
// size 2 repeats 6 times, so 5 copies are kept; the remainder's first line
// "" differs from "x", its strip() is empty and "".startswith("x") is
// false, so the remainder is not a partial repeat and is kept: the
// original's check is rem == blk, or (rem.strip() != "" and
// blk.startswith(rem.strip())), or (blk.strip() != "" and
// rem.startswith(blk.strip())), not a prefix test between two stripped lines.
func TestLimitRepetitionsTrailingRemainder(t *testing.T) {
	r := NewRepeater()
	cases := []struct{ in, want string }{
		{strings.Repeat("x\ny\n", 6) + "\ny", strings.Repeat("x\ny\n", 5) + "\ny"},
		{strings.Repeat("x\ny\n", 6) + "x", strings.TrimSuffix(strings.Repeat("x\ny\n", 5), "\n")},
		{strings.Repeat("x\ny\n", 6), strings.Repeat("x\ny\n", 5)},
		{strings.Repeat("ab\ncd\n", 6) + "a", strings.TrimSuffix(strings.Repeat("ab\ncd\n", 5), "\n")},
		{strings.Repeat("ab\ncd\n", 6) + "abc", strings.TrimSuffix(strings.Repeat("ab\ncd\n", 5), "\n")},
		{strings.Repeat("ab\ncd\n", 6) + "  a", strings.TrimSuffix(strings.Repeat("ab\ncd\n", 5), "\n")},
		{strings.Repeat("ab\ncd\n", 6) + "zz", strings.Repeat("ab\ncd\n", 5) + "zz"},
		{strings.Repeat("ab\n \n", 6) + "ab\n", strings.Repeat("ab\n \n", 5) + "ab\n"},
		{strings.Repeat("ab\ncd\n", 6) + "ab\ncd\nab", strings.TrimSuffix(strings.Repeat("ab\ncd\n", 5), "\n")},
		{strings.Repeat("line\n", 8) + "end", strings.Repeat("line\n", 5) + "end"},
		{strings.Repeat("A\nB\n", 7) + "C", strings.Repeat("A\nB\n", 5) + "C"},
	}
	for _, c := range cases {
		if got := r.Limit(c.in); got != c.want {
			t.Errorf("Limit(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}
