package trace

import (
	"bytes"
	"strconv"
	"time"
	"unicode/utf16"

	"github.com/valyala/fastjson/fastfloat"
)

// The gemini and opencode decoders read their lines with a scanner instead
// of fastjson's tree: one pass over the line validates it as fastjson would
// and records only the values at the key paths the decoder reads (a
// scanNode tree); every other value is skipped without being built.
//
// The scanner mirrors fastjson's parser (v1.6) token for token: the same
// whitespace, the same string ends (backslash parity, no validation of
// escapes or control characters), the same numbers (including NaN and Inf),
// the same depth limit. Where fastjson's semantics would depend on more than
// the recorded values, the scanner gives up and the decoder falls back to
// fastjson: a line the scanner rejects for any reason, and an object on a
// read path with a key that has a backslash (fastjson's Get then depends
// on which lookups ran before). TestScanMatchesFastJSON checks the two on
// the fixtures and on mutated lines.

// JSON value kinds the scanner records; jNone: the path is absent.
const (
	jNone byte = iota
	jObject
	jArray
	jString
	jNumber
	jTrue
	jFalse
	jNull
)

// jval is a value the scanner recorded. raw aliases the line: for a string
// its contents between the quotes with escapes not undone, for a number its
// text, for anything else the whole value.
type jval struct {
	kind byte
	raw  []byte
	span []byte // the whole value as written
}

// scanNode lists the keys whose values to record in an object: keys[i]'s
// first occurrence goes to slot slots[i], and, when it is an object, its own
// keys are read with subs[i] (nil: none).
type scanNode struct {
	keys  []string
	slots []int
	subs  []*scanNode
}

// scanDepth is fastjson's MaxDepth.
const scanDepth = 300

// scanner records the values of one line. vals is indexed by slot.
type scanner struct {
	vals    []jval
	escKeys bool // an object on a read path has a key with a backslash
}

// scan reads line, a JSON object, recording the values root asks for. It
// returns false when the line is not an object that fastjson would accept
// or when the recorded values might not be those fastjson's Get returns;
// the caller then decodes the line with fastjson.
func (s *scanner) scan(line []byte, root *scanNode, nslots int) bool {
	if cap(s.vals) < nslots {
		s.vals = make([]jval, nslots)
	}
	s.vals = s.vals[:nslots]
	clear(s.vals)
	s.escKeys = false
	b := skipWS(line)
	if len(b) == 0 || b[0] != '{' {
		return false
	}
	rest, ok := s.value(b, 0, root)
	if !ok || len(skipWS(rest)) != 0 {
		return false
	}
	return !s.escKeys
}

func skipWS(b []byte) []byte {
	for i := 0; i < len(b); i++ {
		if c := b[i]; c != ' ' && c != '\n' && c != '\t' && c != '\r' {
			return b[i:]
		}
	}
	return b[len(b):]
}

// value skips the value at the start of b and returns what follows and its
// kind; objects are read with node (nil: skipped).
func (s *scanner) value(b []byte, depth int, node *scanNode) ([]byte, bool) {
	_, rest, ok := s.valueKind(b, depth, node)
	return rest, ok
}

func (s *scanner) valueKind(b []byte, depth int, node *scanNode) (byte, []byte, bool) {
	if len(b) == 0 {
		return jNone, b, false
	}
	depth++
	if depth > scanDepth {
		return jNone, b, false
	}
	switch b[0] {
	case '{':
		rest, ok := s.object(b[1:], depth, node)
		return jObject, rest, ok
	case '[':
		rest, ok := s.array(b[1:], depth)
		return jArray, rest, ok
	case '"':
		_, rest, ok := rawString(b[1:])
		return jString, rest, ok
	case 't':
		if !bytes.HasPrefix(b, []byte("true")) {
			return jNone, b, false
		}
		return jTrue, b[4:], true
	case 'f':
		if !bytes.HasPrefix(b, []byte("false")) {
			return jNone, b, false
		}
		return jFalse, b[5:], true
	case 'n':
		if bytes.HasPrefix(b, []byte("null")) {
			return jNull, b[4:], true
		}
		if len(b) >= 3 && bytes.EqualFold(b[:3], []byte("nan")) {
			return jNumber, b[3:], true
		}
		return jNone, b, false
	}
	_, rest, ok := rawNumber(b)
	return jNumber, rest, ok
}

func (s *scanner) array(b []byte, depth int) ([]byte, bool) {
	b = skipWS(b)
	if len(b) == 0 {
		return b, false
	}
	if b[0] == ']' {
		return b[1:], true
	}
	for {
		var ok bool
		b, ok = s.value(skipWS(b), depth, nil)
		if !ok {
			return b, false
		}
		b = skipWS(b)
		if len(b) == 0 {
			return b, false
		}
		switch b[0] {
		case ',':
			b = b[1:]
		case ']':
			return b[1:], true
		default:
			return b, false
		}
	}
}

func (s *scanner) object(b []byte, depth int, node *scanNode) ([]byte, bool) {
	b = skipWS(b)
	if len(b) == 0 {
		return b, false
	}
	if b[0] == '}' {
		return b[1:], true
	}
	for {
		b = skipWS(b)
		if len(b) == 0 || b[0] != '"' {
			return b, false
		}
		key, rest, esc, ok := rawKey(b[1:])
		if !ok {
			return rest, false
		}
		b = skipWS(rest)
		if len(b) == 0 || b[0] != ':' {
			return b, false
		}
		b = skipWS(b[1:])
		slot, sub := -1, (*scanNode)(nil)
		if node != nil {
			if esc {
				s.escKeys = true
			}
			for i, k := range node.keys {
				if k == bytesView(key) {
					if s.vals[node.slots[i]].kind == jNone {
						slot, sub = node.slots[i], node.subs[i]
					}
					break
				}
			}
		}
		start := b
		kind, rest, ok := s.valueKind(b, depth, sub)
		if !ok {
			return rest, false
		}
		if slot >= 0 {
			span := start[:len(start)-len(rest)]
			raw := span
			if kind == jString {
				raw = span[1 : len(span)-1]
			}
			s.vals[slot] = jval{kind: kind, raw: raw, span: span}
		}
		b = skipWS(rest)
		if len(b) == 0 {
			return b, false
		}
		switch b[0] {
		case ',':
			b = b[1:]
		case '}':
			return b[1:], true
		default:
			return b, false
		}
	}
}

// rawKey is fastjson's parseRawKey: the key's raw bytes, what follows the
// closing quote, and whether the key has a backslash.
func rawKey(b []byte) (key, rest []byte, esc, ok bool) {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			return b[:i], b[i+1:], false, true
		case '\\':
			key, rest, ok := rawString(b)
			return key, rest, true, ok
		}
	}
	return b, nil, false, false
}

// rawString is fastjson's parseRawString: the string's raw contents up to
// the first quote preceded by an even number of backslashes.
func rawString(b []byte) (str, rest []byte, ok bool) {
	n := bytes.IndexByte(b, '"')
	if n < 0 {
		return b, nil, false
	}
	if n == 0 || b[n-1] != '\\' {
		return b[:n], b[n+1:], true
	}
	all := b
	for {
		i := n - 1
		for i > 0 && b[i-1] == '\\' {
			i--
		}
		if uint(n-i)%2 == 0 {
			return all[:len(all)-len(b)+n], b[n+1:], true
		}
		b = b[n+1:]
		n = bytes.IndexByte(b, '"')
		if n < 0 {
			return all, nil, false
		}
		if n == 0 || b[n-1] != '\\' {
			return all[:len(all)-len(b)+n], b[n+1:], true
		}
	}
}

// rawNumber is fastjson's parseRawNumber (len(b) > 0).
func rawNumber(b []byte) (num, rest []byte, ok bool) {
	for i := 0; i < len(b); i++ {
		c := b[i]
		if (c >= '0' && c <= '9') || c == '.' || c == '-' || c == 'e' || c == 'E' || c == '+' {
			continue
		}
		if i == 0 || i == 1 && (b[0] == '-' || b[0] == '+') {
			if len(b[i:]) >= 3 {
				x := b[i : i+3]
				if bytes.EqualFold(x, []byte("inf")) || bytes.EqualFold(x, []byte("nan")) {
					return b[:i+3], b[i+3:], true
				}
			}
			return nil, b, false
		}
		return b[:i], b[i:], true
	}
	return b, nil, true
}

// unescape appends the string s (raw contents) to dst with its escapes
// undone as fastjson's unescapeStringBestEffort does: unknown or invalid
// escapes are kept as they are.
func unescape(dst, s []byte) []byte {
	n := bytes.IndexByte(s, '\\')
	if n < 0 {
		return append(dst, s...)
	}
	dst = append(dst, s[:n]...)
	s = s[n+1:]
	for len(s) > 0 {
		ch := s[0]
		s = s[1:]
		switch ch {
		case '"', '\\', '/':
			dst = append(dst, ch)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			if len(s) < 4 {
				dst = append(dst, `\u`...)
				break
			}
			xs := s[:4]
			x, err := strconv.ParseUint(bytesView(xs), 16, 16)
			if err != nil {
				dst = append(dst, `\u`...)
				break
			}
			s = s[4:]
			if !utf16.IsSurrogate(rune(x)) {
				dst = append(dst, string(rune(x))...)
				break
			}
			if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
				dst = append(dst, `\u`...)
				dst = append(dst, xs...)
				break
			}
			x1, err := strconv.ParseUint(bytesView(s[2:6]), 16, 16)
			if err != nil {
				dst = append(dst, `\u`...)
				dst = append(dst, xs...)
				break
			}
			dst = append(dst, string(utf16.DecodeRune(rune(x), rune(x1)))...)
			s = s[6:]
		default:
			dst = append(dst, '\\', ch)
		}
		n = bytes.IndexByte(s, '\\')
		if n < 0 {
			return append(dst, s...)
		}
		dst = append(dst, s[:n]...)
		s = s[n+1:]
	}
	return dst
}

// compactJSON appends the valid JSON value v to dst as fastjson's MarshalTo
// writes a value no lookup has touched: the same bytes with the whitespace
// between tokens left out (strings, keys and numbers stay as written).
func compactJSON(dst, v []byte) []byte {
	for len(v) > 0 {
		i := 0
		for i < len(v) && v[i] != '"' && v[i] != ' ' && v[i] != '\n' && v[i] != '\t' && v[i] != '\r' {
			i++
		}
		dst = append(dst, v[:i]...)
		v = v[i:]
		if len(v) == 0 {
			break
		}
		if v[0] != '"' {
			v = v[1:]
			continue
		}
		str, rest, ok := rawString(v[1:])
		if !ok { // not reached for a scanned value
			return append(dst, v...)
		}
		dst = append(dst, '"')
		dst = append(dst, str...)
		dst = append(dst, '"')
		v = rest
	}
	return dst
}

// Reading recorded values; each mirrors its fastjson helper in stream.go.

// sstr returns the string at slot, unescaped and copied into the arena.
func (d *Decoder) sstr(slot int) string {
	v := d.sc.vals[slot]
	if v.kind != jString {
		return ""
	}
	if bytes.IndexByte(v.raw, '\\') < 0 {
		return d.a.str(v.raw)
	}
	d.unesc = unescape(d.unesc[:0], v.raw)
	return d.a.str(d.unesc)
}

// sview returns the string at slot unescaped, without copying when it has
// no escapes: valid until the next line.
func (d *Decoder) sview(slot int) string {
	v := d.sc.vals[slot]
	if v.kind != jString {
		return ""
	}
	if bytes.IndexByte(v.raw, '\\') < 0 {
		return bytesView(v.raw)
	}
	return string(unescape(nil, v.raw))
}

func (d *Decoder) sfloat(slot int) (float64, bool) {
	v := d.sc.vals[slot]
	if v.kind != jNumber {
		return 0, false
	}
	f, _ := fastfloat.Parse(bytesView(v.raw))
	return f, true
}

func (d *Decoder) snum(slot int) int64 {
	f, _ := d.sfloat(slot)
	return int64(f)
}

func (d *Decoder) snumPtr(slot int) *float64 {
	f, ok := d.sfloat(slot)
	if !ok {
		return nil
	}
	p := d.floats.new()
	*p = f
	return p
}

func (d *Decoder) sintPtr(slot int) *int {
	f, ok := d.sfloat(slot)
	if !ok {
		return nil
	}
	n := d.ints.new()
	*n = int(f)
	return n
}

func (d *Decoder) sbool(slot int) bool { return d.sc.vals[slot].kind == jTrue }

func (d *Decoder) shas(slot int) bool { return d.sc.vals[slot].kind != jNone }

// sjson returns the value at slot as compact JSON in the arena (nil when
// absent), as arena.json does for fastjson's value.
func (d *Decoder) sjson(slot int) []byte {
	v := d.sc.vals[slot]
	if v.kind == jNone {
		return nil
	}
	b, n := d.a.begin()
	return d.a.end(compactJSON(b, v.span), n)
}

// smsTime is msTime for the number at slot.
func (d *Decoder) smsTime(slot int) time.Time {
	ms := d.snum(slot)
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
