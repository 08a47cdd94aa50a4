package pytext

import (
	"strings"

	"github.com/dlclark/regexp2/v2"
)

// Repeater applies limit_repetitions (ArenaHard and HealthBench answers). It
// holds compiled patterns and is safe for concurrent use.
type Repeater struct {
	res []*regexp2.Regexp
}

// NewRepeater compiles the patterns of limit_repetitions(max_reps=5).
func NewRepeater() *Repeater {
	ranges := [][2]int{{3, 30}, {30, 60}, {60, 120}, {120, 250}, {250, 500}}
	r := &Repeater{}
	for _, rg := range ranges {
		pat := "(.{" + itoa(rg[0]) + "," + itoa(rg[1]) + "}?)\\1{5,}"
		re := regexp2.MustCompile(pat, regexp2.Singleline)
		re.MatchTimeout = -1
		r.res = append(r.res, re)
	}
	return r
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

const maxReps = 5

// Limit is limit_repetitions(text, max_reps=5): up to 10 passes of (1) runs of
// identical lines cut to 5, (2) one repeated line block cut to 5 copies,
// (3) repeated substrings cut to 5 copies, stopping when a pass changes nothing.
func (r *Repeater) Limit(text string) string {
	for range 10 {
		prev := text
		text = limitLines(text)
		text = limitBlocks(text)
		text = r.limitSubstrings(text)
		if text == prev {
			break
		}
	}
	return text
}

func limitLines(text string) string {
	lines := strings.Split(text, "\n")
	out := make([]string, 0, len(lines))
	run := 0
	for i, l := range lines {
		if i > 0 && l == lines[i-1] {
			run++
		} else {
			run = 1
		}
		if run <= maxReps {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func equalLines(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func limitBlocks(text string) string {
	lines := strings.Split(text, "\n")
	n := len(lines)
	hi := min(30, n/5+1)
	for bs := 2; bs < hi; bs++ {
		for i := 0; i+bs <= n; i++ {
			block := lines[i : i+bs]
			count := 1
			for i+(count+1)*bs <= n && equalLines(lines[i+count*bs:i+(count+1)*bs], block) {
				count++
			}
			if count <= maxReps {
				continue
			}
			out := append([]string{}, lines[:i]...)
			for range maxReps {
				out = append(out, block...)
			}
			rest := lines[i+count*bs:]
			if !partialRepeat(rest, block) {
				out = append(out, rest...)
			}
			return strings.Join(out, "\n")
		}
	}
	return text
}

// partialRepeat is the original's check of what follows the kept copies:
// each line equals the block's line, or its strip() is non-empty and the
// block's line starts with it, or the block line's strip() is non-empty and
// the line starts with that.
func partialRepeat(rest, block []string) bool {
	if len(rest) > len(block) {
		return false
	}
	for k, rem := range rest {
		blk := block[k]
		if rem == blk {
			continue
		}
		if rs := Strip(rem); rs != "" && strings.HasPrefix(blk, rs) {
			continue
		}
		if bs := Strip(blk); bs != "" && strings.HasPrefix(rem, bs) {
			continue
		}
		return false
	}
	return true
}

func (r *Repeater) limitSubstrings(text string) string {
	for {
		changed := false
		for _, re := range r.res {
			out, err := re.ReplaceFunc(text, func(m regexp2.Match) string {
				return strings.Repeat(m.GroupByNumber(1).String(), maxReps)
			}, -1, -1)
			if err == nil && out != text {
				text, changed = out, true
			}
		}
		if !changed {
			return text
		}
	}
}
