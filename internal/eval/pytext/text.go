// Package pytext reproduces the Python string, regex and random-number
// semantics that the original PostTrainBench scorers depend on: str.strip,
// casefold, isnumeric, re.split on \s, format(x, ".5g"), inspect's <think>
// stripping and numeric match, limit_repetitions and random.Random(seed).shuffle.
// Indices are in code points, as in Python.
package pytext

import (
	"regexp"
	"strings"
	"sync"
	"unicode"

	"golang.org/x/text/cases"
)

// IsSpace reports whether r is whitespace for Python's str.isspace / str.strip()
// (and the Unicode \s class of the re module).
func IsSpace(r rune) bool {
	switch {
	case r == ' ', r >= '\t' && r <= '\r', r >= 0x1c && r <= 0x1f, r == 0x85, r == 0xa0:
		return true
	case r < 0x80:
		return false
	}
	return unicode.Is(unicode.Z, r)
}

// Strip is Python's str.strip() with no argument.
func Strip(s string) string { return strings.TrimFunc(s, IsSpace) }

// Casefold is Python's str.casefold().
func Casefold(s string) string { return cases.Fold().String(s) }

// IsDecimal reports whether r is a Unicode decimal digit (Python \d, str.isdecimal).
func IsDecimal(r rune) bool { return unicode.Is(unicode.Nd, r) }

// IsNumericRune reports whether r has a Unicode Numeric_Type (Python's
// str.isnumeric per character): the N categories plus the CJK ideographs that
// carry a numeric value in Unihan.
func IsNumericRune(r rune) bool {
	if unicode.IsNumber(r) {
		return true
	}
	_, ok := hanValue[r]
	return ok
}

// IsNumeric is Python's str.isnumeric(): non-empty and every rune numeric.
func IsNumeric(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !IsNumericRune(r) {
			return false
		}
	}
	return true
}

// SplitWS is Python's re.split(r"\s+", s): empty strings at the ends are kept.
func SplitWS(s string) []string {
	var out []string
	start := 0
	inSpace := false
	spaceStart := 0
	for i, r := range s {
		sp := IsSpace(r)
		if sp && !inSpace {
			inSpace, spaceStart = true, i
		} else if !sp && inSpace {
			out = append(out, s[start:spaceStart])
			start, inSpace = i, false
		}
	}
	if inSpace {
		out = append(out, s[start:spaceStart], "")
	} else {
		out = append(out, s[start:])
	}
	return out
}

// thinkRE is inspect's reasoning-block pattern (DOTALL, non-greedy, first match).
var thinkRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?s)<think(?:[\t\n\v\f\r \x1c-\x1f\x85\xa0\p{Z}]+signature="([^"]*)")?(?:[\t\n\v\f\r \x1c-\x1f\x85\xa0\p{Z}]+redacted="(true)")?[\t\n\v\f\r \x1c-\x1f\x85\xa0\p{Z}]*>(.*?)</think>`)
})

// StripThinkInspect is inspect's treatment of reasoning: remove the first
// complete <think>…</think> block and strip the rest; without a complete
// block the text is returned unchanged.
func StripThinkInspect(s string) string {
	loc := thinkRE().FindStringIndex(s)
	if loc == nil {
		return s
	}
	return Strip(s[:loc[0]] + s[loc[1]:])
}

// StripThinkScript is the ArenaHard/HealthBench rule: strip; if the text
// starts with <think>, keep what follows the first </think> (all of it when
// there is none), stripped.
func StripThinkScript(s string) string {
	a := Strip(s)
	if strings.HasPrefix(a, "<think>") {
		if _, after, ok := strings.Cut(a, "</think>"); ok {
			return Strip(after)
		}
	}
	return a
}

// Python's string.whitespace + string.punctuation.
const asciiWSPunct = " \t\n\r\v\f" + "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// StripPunctuation is s.strip(string.whitespace + string.punctuation).
func StripPunctuation(s string) string { return strings.Trim(s, asciiWSPunct) }
