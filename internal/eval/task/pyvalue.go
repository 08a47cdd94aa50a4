package task

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ptb-dev/ptb/internal/eval/pytext"
)

// Python values, enough to compare tool-call arguments with Python's ==:
// nil, bool, *big.Int (int), float64, string, []any, map[string]any.

// pyEqual is Python equality on JSON-like values: 1 == 1.0, True == 1,
// ints compared exactly with floats, NaN never equal. With strict, bools
// only equal bools.
func pyEqual(a, b any, strict bool) bool {
	if an, ok := pyNum(a, strict); ok {
		bn, ok := pyNum(b, strict)
		if !ok {
			return false
		}
		if strict {
			_, ab := a.(bool)
			_, bb := b.(bool)
			if ab != bb {
				return false
			}
		}
		return numEqual(an, bn)
	}
	switch av := a.(type) {
	case nil:
		return b == nil
	case string:
		bv, ok := b.(string)
		return ok && av == bv
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			return false
		}
		for i := range av {
			if !pyEqual(av[i], bv[i], strict) {
				return false
			}
		}
		return true
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok || len(av) != len(bv) {
			return false
		}
		for k, x := range av {
			y, ok := bv[k]
			if !ok || !pyEqual(x, y, strict) {
				return false
			}
		}
		return true
	}
	return false
}

// pyNum returns a numeric value: *big.Int or float64.
func pyNum(v any, strict bool) (any, bool) {
	switch x := v.(type) {
	case bool:
		if x {
			return big.NewInt(1), true
		}
		return big.NewInt(0), true
	case *big.Int:
		return x, true
	case float64:
		return x, true
	}
	return nil, false
}

func numEqual(a, b any) bool {
	ai, aInt := a.(*big.Int)
	bi, bInt := b.(*big.Int)
	switch {
	case aInt && bInt:
		return ai.Cmp(bi) == 0
	case aInt:
		return intFloatEqual(ai, b.(float64))
	case bInt:
		return intFloatEqual(bi, a.(float64))
	}
	return a.(float64) == b.(float64)
}

func intFloatEqual(i *big.Int, f float64) bool {
	if math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) {
		return false
	}
	bf := new(big.Float).SetFloat64(f)
	return new(big.Float).SetInt(i).Cmp(bf) == 0
}

// decodeJSONPy decodes JSON as Python's json.loads would (ints stay ints).
func decodeJSONPy(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("extra data after JSON value")
	}
	return fromJSON(v), nil
}

func fromJSON(v any) any {
	switch x := v.(type) {
	case json.Number:
		s := string(x)
		if strings.ContainsAny(s, ".eE") {
			f, _ := strconv.ParseFloat(s, 64)
			return f
		}
		i, _ := new(big.Int).SetString(s, 10)
		return i
	case []any:
		for i := range x {
			x[i] = fromJSON(x[i])
		}
		return x
	case map[string]any:
		for k := range x {
			x[k] = fromJSON(x[k])
		}
		return x
	}
	return v
}

// fromYAML converts a YAML-decoded value to the Python-value representation.
func fromYAML(v any) any {
	switch x := v.(type) {
	case int:
		return big.NewInt(int64(x))
	case int64:
		return big.NewInt(x)
	case uint64:
		return new(big.Int).SetUint64(x)
	case float64:
		return x
	case []any:
		for i := range x {
			x[i] = fromYAML(x[i])
		}
		return x
	case map[string]any:
		for k := range x {
			x[k] = fromYAML(x[k])
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = fromYAML(e)
		}
		return m
	}
	return v
}

// pyJSON encodes a Python value as json.dumps would (sorted keys here, for
// display only).
func pyJSON(v any) string {
	var b bytes.Buffer
	writePyJSON(&b, v)
	return b.String()
}

func writePyJSON(b *bytes.Buffer, v any) {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case *big.Int:
		b.WriteString(x.String())
	case float64:
		b.WriteString(pytext.FloatRepr(x))
	case string:
		e, _ := json.Marshal(x)
		b.Write(e)
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			writePyJSON(b, e)
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			e, _ := json.Marshal(k)
			b.Write(e)
			b.WriteString(": ")
			writePyJSON(b, x[k])
		}
		b.WriteByte('}')
	}
}

// parsePyCall parses a Python call "f(k=v, ...)" whose values are literals
// (ast.literal_eval), returning the function name and keyword arguments.
// Tuples become lists, as after a JSON round trip.
func parsePyCall(s string) (string, map[string]any, error) {
	p := &pyParser{s: s}
	p.ws()
	name := p.ident()
	for p.peek() == '.' {
		p.i++
		name += "." + p.ident()
	}
	if name == "" {
		return "", nil, fmt.Errorf("parse %q: no function name", s)
	}
	p.ws()
	if !p.eat('(') {
		return "", nil, fmt.Errorf("parse %q: want (", s)
	}
	args := map[string]any{}
	for {
		p.ws()
		if p.eat(')') {
			break
		}
		k := p.ident()
		p.ws()
		if k == "" || !p.eat('=') {
			return "", nil, fmt.Errorf("parse %q: want keyword argument at %d", s, p.i)
		}
		v, err := p.value()
		if err != nil {
			return "", nil, fmt.Errorf("parse %q: %w", s, err)
		}
		args[k] = v
		p.ws()
		if p.eat(',') {
			continue
		}
		if p.eat(')') {
			break
		}
		return "", nil, fmt.Errorf("parse %q: want , or ) at %d", s, p.i)
	}
	return name, args, nil
}

type pyParser struct {
	s string
	i int
}

func (p *pyParser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *pyParser) eat(c byte) bool {
	if p.peek() == c {
		p.i++
		return true
	}
	return false
}

func (p *pyParser) ws() {
	for p.i < len(p.s) && strings.IndexByte(" \t\n\r", p.s[p.i]) >= 0 {
		p.i++
	}
}

func (p *pyParser) ident() string {
	st := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || p.i > st && c >= '0' && c <= '9' {
			p.i++
			continue
		}
		break
	}
	return p.s[st:p.i]
}

func (p *pyParser) value() (any, error) {
	p.ws()
	switch c := p.peek(); {
	case c == '[' || c == '(':
		p.i++
		closer := byte(']')
		if c == '(' {
			closer = ')'
		}
		out := []any{}
		for {
			p.ws()
			if p.eat(closer) {
				return out, nil
			}
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			p.ws()
			if p.eat(',') {
				continue
			}
			if p.eat(closer) {
				return out, nil
			}
			return nil, fmt.Errorf("want , or %c at %d", closer, p.i)
		}
	case c == '{':
		p.i++
		out := map[string]any{}
		for {
			p.ws()
			if p.eat('}') {
				return out, nil
			}
			k, err := p.value()
			if err != nil {
				return nil, err
			}
			p.ws()
			if !p.eat(':') {
				return nil, fmt.Errorf("want : at %d", p.i)
			}
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			out[fmt.Sprint(k)] = v
			p.ws()
			if p.eat(',') {
				continue
			}
			if p.eat('}') {
				return out, nil
			}
			return nil, fmt.Errorf("want , or } at %d", p.i)
		}
	case c == '\'' || c == '"':
		return p.str()
	case c == '-' || c == '+' || c == '.' || c >= '0' && c <= '9':
		st := p.i
		p.i++
		for p.i < len(p.s) && strings.IndexByte("0123456789.eE+-_xXabcdefABCDEF", p.s[p.i]) >= 0 {
			if (p.s[p.i] == '+' || p.s[p.i] == '-') && !(p.s[p.i-1] == 'e' || p.s[p.i-1] == 'E') {
				break
			}
			p.i++
		}
		lit := strings.ReplaceAll(p.s[st:p.i], "_", "")
		if i, ok := new(big.Int).SetString(lit, 0); ok && !strings.ContainsAny(lit, ".eE") || (ok && strings.HasPrefix(strings.TrimLeft(lit, "+-"), "0x")) {
			return i, nil
		}
		f, err := strconv.ParseFloat(lit, 64)
		if err != nil {
			return nil, fmt.Errorf("bad number %q", lit)
		}
		return f, nil
	default:
		id := p.ident()
		switch id {
		case "True":
			return true, nil
		case "False":
			return false, nil
		case "None":
			return nil, nil
		}
		return nil, fmt.Errorf("not a literal at %d", p.i)
	}
}

func (p *pyParser) str() (string, error) {
	q := p.s[p.i]
	p.i++
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == q {
			p.i++
			return b.String(), nil
		}
		if c == '\\' && p.i+1 < len(p.s) {
			p.i++
			e := p.s[p.i]
			p.i++
			switch e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case '\\', '\'', '"':
				b.WriteByte(e)
			case 'u':
				if p.i+4 <= len(p.s) {
					if r, err := strconv.ParseUint(p.s[p.i:p.i+4], 16, 32); err == nil {
						b.WriteRune(rune(r))
						p.i += 4
						continue
					}
				}
				b.WriteString("\\u")
			default:
				b.WriteByte('\\')
				b.WriteByte(e)
			}
			continue
		}
		r, n := utf8.DecodeRuneInString(p.s[p.i:])
		b.WriteRune(r)
		p.i += n
	}
	return "", fmt.Errorf("unterminated string")
}
