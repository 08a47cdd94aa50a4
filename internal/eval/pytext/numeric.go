package pytext

import (
	"math"
	"strconv"
	"strings"
	"unicode"
)

// MatchEnd is inspect's match_str(value, target, location="end",
// ignore_case=True, ignore_punctuation=True, numeric=True). It returns the
// extracted answer as inspect reports it and whether it counts as correct
// (a suffix test, quirks included: "118" matches "18").
func MatchEnd(value, target string) (extracted string, correct bool) {
	v := Casefold(Strip(value))
	t := Casefold(Strip(target))
	if IsNumeric(t) {
		v = stripNumericPunctuation(v)
		t = NormalizeNumber(stripNumericPunctuation(t))
		words := SplitWS(v)
		chosen := words[len(words)-1]
		for i := len(words) - 1; i >= 0; i-- {
			if IsNumeric(strings.ReplaceAll(words[i], ".", "")) {
				chosen = words[i]
				break
			}
		}
		v = NormalizeNumber(chosen)
		return v, strings.HasSuffix(v, t)
	}
	v = StripPunctuation(v)
	t = StripPunctuation(t)
	return value, strings.HasSuffix(v, t)
}

// stripNumericPunctuation deletes $ , £ € * _ and every "." not followed by a
// decimal digit.
func stripNumericPunctuation(s string) string {
	rs := []rune(s)
	var b strings.Builder
	for i, r := range rs {
		switch r {
		case '$', ',', '£', '€', '*', '_':
			continue
		case '.':
			if i+1 >= len(rs) || !IsDecimal(rs[i+1]) {
				continue
			}
		}
		b.WriteRune(r)
	}
	return b.String()
}

// NormalizeNumber is inspect's normalize_number(x, precision=5): if x without
// dots is numeric, parse it and format with ".5g"; otherwise x unchanged (also
// when the parse fails).
func NormalizeNumber(x string) string {
	if !IsNumeric(strings.ReplaceAll(x, ".", "")) {
		return x
	}
	f, ok := StrToFloat(x)
	if !ok {
		return x
	}
	return FormatG5(f)
}

// FormatG5 is Python's format(f, ".5g").
func FormatG5(f float64) string {
	if math.IsInf(f, 0) {
		if f > 0 {
			return "inf"
		}
		return "-inf"
	}
	if math.IsNaN(f) {
		return "nan"
	}
	return strconv.FormatFloat(f, 'g', 5, 64)
}

var superscripts = map[rune]int{'⁰': 0, '¹': 1, '²': 2, '³': 3, '⁴': 4, '⁵': 5, '⁶': 6, '⁷': 7, '⁸': 8, '⁹': 9}

var vulgar = map[rune]float64{
	'¼': 0.25, '½': 0.5, '¾': 0.75, '⅐': 1.0 / 7, '⅑': 1.0 / 9, '⅒': 0.1, '⅓': 1.0 / 3, '⅔': 2.0 / 3,
	'⅕': 0.2, '⅖': 0.4, '⅗': 0.6, '⅘': 0.8, '⅙': 1.0 / 6, '⅚': 5.0 / 6, '⅛': 0.125, '⅜': 0.375,
	'⅝': 0.625, '⅞': 0.875, '↉': 0,
}

// StrToFloat is inspect's str_to_float: superscript exponents and vulgar
// fractions are separated, then the leading [+-]?\d+(\.\d+)? (Unicode digits)
// is parsed; failing that, Unicode numerals (CJK, Roman, circled) are read.
func StrToFloat(s string) (float64, bool) {
	rs := []rune(s)
	// superscript exponent suffix
	exp, n := 0, len(rs)
	for n > 0 {
		d, ok := superscripts[rs[n-1]]
		if !ok {
			break
		}
		n--
		exp = exp + d*int(math.Pow10(len(rs)-1-n))
	}
	if n < len(rs) && n > 0 {
		base, ok := StrToFloat(string(rs[:n]))
		if !ok {
			return 0, false
		}
		return math.Pow(base, float64(exp)), true
	}
	// vulgar fraction
	for i, r := range rs {
		if fr, ok := vulgar[r]; ok {
			whole := 0.0
			if i > 0 {
				w, ok := StrToFloat(string(rs[:i]))
				if !ok {
					return 0, false
				}
				whole = w
			}
			return whole + fr, true
		}
	}
	if f, ok := leadingDecimal(rs); ok {
		return f, true
	}
	return unicodeNumber(rs)
}

func leadingDecimal(rs []rune) (float64, bool) {
	var b strings.Builder
	i := 0
	if i < len(rs) && (rs[i] == '+' || rs[i] == '-') {
		b.WriteRune(rs[i])
		i++
	}
	digits := func() int {
		n := 0
		for i < len(rs) && IsDecimal(rs[i]) {
			b.WriteRune(rune('0' + digitValue(rs[i])))
			i++
			n++
		}
		return n
	}
	if digits() == 0 {
		return 0, false
	}
	if i+1 < len(rs) && rs[i] == '.' && IsDecimal(rs[i+1]) {
		b.WriteByte('.')
		i++
		digits()
	}
	f, err := strconv.ParseFloat(b.String(), 64)
	return f, err == nil
}

// digitValue returns the value of a Unicode decimal digit (Nd ranges are
// contiguous runs of ten).
func digitValue(r rune) int {
	if r >= '0' && r <= '9' {
		return int(r - '0')
	}
	for _, rg := range unicode.Nd.R16 {
		if uint16(r) >= rg.Lo && uint16(r) <= rg.Hi && r <= 0xffff {
			return int(r-rune(rg.Lo)) % 10
		}
	}
	for _, rg := range unicode.Nd.R32 {
		if uint32(r) >= rg.Lo && uint32(r) <= rg.Hi {
			return int(uint32(r)-rg.Lo) % 10
		}
	}
	return 0
}

var roman = map[rune]float64{
	'Ⅰ': 1, 'Ⅱ': 2, 'Ⅲ': 3, 'Ⅳ': 4, 'Ⅴ': 5, 'Ⅵ': 6, 'Ⅶ': 7, 'Ⅷ': 8, 'Ⅸ': 9, 'Ⅹ': 10, 'Ⅺ': 11, 'Ⅻ': 12,
	'Ⅼ': 50, 'Ⅽ': 100, 'Ⅾ': 500, 'Ⅿ': 1000,
	'ⅰ': 1, 'ⅱ': 2, 'ⅲ': 3, 'ⅳ': 4, 'ⅴ': 5, 'ⅵ': 6, 'ⅶ': 7, 'ⅷ': 8, 'ⅸ': 9, 'ⅹ': 10, 'ⅺ': 11, 'ⅻ': 12,
	'ⅼ': 50, 'ⅽ': 100, 'ⅾ': 500, 'ⅿ': 1000,
}

// hanValue holds CJK ideographs with a Unihan numeric value.
var hanValue = map[rune]float64{
	'〇': 0, '零': 0, '一': 1, '壹': 1, '壱': 1, '弌': 1, '幺': 1, '二': 2, '贰': 2, '貳': 2, '貮': 2, '弍': 2, '弐': 2, '兩': 2, '两': 2,
	'三': 3, '叁': 3, '参': 3, '參': 3, '叄': 3, '弎': 3, '四': 4, '肆': 4, '亖': 4, '五': 5, '伍': 5, '六': 6, '陆': 6, '陸': 6,
	'七': 7, '柒': 7, '漆': 7, '八': 8, '捌': 8, '九': 9, '玖': 9, '十': 10, '拾': 10, '什': 10, '廿': 20, '卄': 20, '卅': 30, '卌': 40,
	'百': 100, '佰': 100, '陌': 100, '千': 1000, '仟': 1000, '阡': 1000, '万': 1e4, '萬': 1e4, '亿': 1e8, '億': 1e8, '兆': 1e12,
}

// unicodeNumber reads a string of Unicode numerals: a single character with
// a numeric value, Roman numerals (additive/subtractive) or CJK numerals
// (十八 = 18, 三百五十 = 350).
func unicodeNumber(rs []rune) (float64, bool) {
	if len(rs) == 0 {
		return 0, false
	}
	if _, ok := roman[rs[0]]; ok {
		total := 0.0
		for i, r := range rs {
			v, ok := roman[r]
			if !ok {
				return 0, false
			}
			if i+1 < len(rs) && roman[rs[i+1]] > v {
				total -= v
			} else {
				total += v
			}
		}
		return total, true
	}
	if _, ok := hanValue[rs[0]]; ok {
		total, section, digit := 0.0, 0.0, 0.0
		for _, r := range rs {
			v, ok := hanValue[r]
			if !ok {
				return 0, false
			}
			switch {
			case v >= 1e4:
				total += (section + digit) * v
				section, digit = 0, 0
			case v == 10 || v == 100 || v == 1000:
				if digit == 0 {
					digit = 1
				}
				section += digit * v
				digit = 0
			case v >= 10: // 廿 卅 卌
				section += v
			default:
				digit = v
			}
		}
		return total + section + digit, true
	}
	if len(rs) == 1 {
		if v, ok := circled(rs[0]); ok {
			return v, true
		}
	}
	return 0, false
}

// circled reads the common enclosed/other-number characters (①, ⑴, ⒈, ❶ …).
func circled(r rune) (float64, bool) {
	switch {
	case r >= '①' && r <= '⑳':
		return float64(r-'①') + 1, true
	case r >= '⑴' && r <= '⒇':
		return float64(r-'⑴') + 1, true
	case r >= '⒈' && r <= '⒛':
		return float64(r-'⒈') + 1, true
	case r >= '❶' && r <= '❿':
		return float64(r-'❶') + 1, true
	case r >= '➀' && r <= '➉':
		return float64(r-'➀') + 1, true
	case r >= '➊' && r <= '➓':
		return float64(r-'➊') + 1, true
	}
	return 0, false
}
