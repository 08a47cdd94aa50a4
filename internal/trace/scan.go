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

// jval is a value the scanner recorded, as offsets into the line (no
// pointers: recording one costs no write barrier): [start, end) is the whole
// value as written; a string's contents are [start+1, end-1), escapes not
// undone.
type jval struct {
	kind       byte
	start, end int
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
	line    []byte
	vals    []jval
	escKeys bool   // an object on a read path has a key with a backslash
	own     []jval // scan's storage for vals (vals may alias a block's records: pipeline.go)
}

// raw returns the recorded value at slot: a string's contents, else the
// value as written (nil when absent).
func (s *scanner) raw(slot int) []byte {
	v := s.vals[slot]
	if v.kind == jString {
		return s.line[v.start+1 : v.end-1]
	}
	return s.line[v.start:v.end]
}

// span returns the recorded value at slot as written.
func (s *scanner) span(slot int) []byte {
	v := s.vals[slot]
	return s.line[v.start:v.end]
}

// scan reads line, a JSON object, recording the values root asks for. It
// returns false when the line is not an object that fastjson would accept
// or when the recorded values might not be those fastjson's Get returns;
// the caller then decodes the line with fastjson.
func (s *scanner) scan(line []byte, root *scanNode, nslots int) bool {
	if cap(s.own) < nslots {
		s.own = make([]jval, nslots)
	}
	s.vals = s.own[:nslots]
	clear(s.vals)
	s.escKeys = false
	s.line = line
	i := skipWS(line, 0)
	if i >= len(line) || line[i] != '{' {
		return false
	}
	_, i, ok := s.value(i, 0, root)
	if !ok || skipWS(line, i) != len(line) {
		return false
	}
	return !s.escKeys
}

// skipWS returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipWS(b []byte, i int) int {
	for i < len(b) {
		if c := b[i]; c > ' ' || c != ' ' && c != '\n' && c != '\t' && c != '\r' {
			return i
		}
		i++
	}
	return i
}

// value skips the value at line[i:] and returns its kind and where it
// ends; objects are read with node (nil: skipped).
func (s *scanner) value(i, depth int, node *scanNode) (byte, int, bool) {
	b := s.line
	if i >= len(b) {
		return jNone, i, false
	}
	depth++
	if depth > scanDepth {
		return jNone, i, false
	}
	switch b[i] {
	case '"':
		end, ok := rawString(b, i+1)
		return jString, end, ok
	case '{':
		end, ok := s.object(i+1, depth, node)
		return jObject, end, ok
	case '[':
		end, ok := s.array(i+1, depth)
		return jArray, end, ok
	case 't':
		if !bytes.HasPrefix(b[i:], []byte("true")) {
			return jNone, i, false
		}
		return jTrue, i + 4, true
	case 'f':
		if !bytes.HasPrefix(b[i:], []byte("false")) {
			return jNone, i, false
		}
		return jFalse, i + 5, true
	case 'n':
		if bytes.HasPrefix(b[i:], []byte("null")) {
			return jNull, i + 4, true
		}
		if len(b)-i >= 3 && bytes.EqualFold(b[i:i+3], []byte("nan")) {
			return jNumber, i + 3, true
		}
		return jNone, i, false
	}
	end, ok := rawNumber(b, i)
	return jNumber, end, ok
}

func (s *scanner) array(i, depth int) (int, bool) {
	b := s.line
	i = skipWS(b, i)
	if i >= len(b) {
		return i, false
	}
	if b[i] == ']' {
		return i + 1, true
	}
	for {
		var ok bool
		_, i, ok = s.value(skipWS(b, i), depth, nil)
		if !ok {
			return i, false
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return i, false
		}
		switch b[i] {
		case ',':
			i++
		case ']':
			return i + 1, true
		default:
			return i, false
		}
	}
}

func (s *scanner) object(i, depth int, node *scanNode) (int, bool) {
	b := s.line
	i = skipWS(b, i)
	if i >= len(b) {
		return i, false
	}
	if b[i] == '}' {
		return i + 1, true
	}
	for {
		i = skipWS(b, i)
		if i >= len(b) || b[i] != '"' {
			return i, false
		}
		ks := i + 1
		ke, esc, ok := rawKey(b, ks)
		if !ok {
			return ke, false
		}
		i = skipWS(b, ke)
		if i >= len(b) || b[i] != ':' {
			return i, false
		}
		i = skipWS(b, i+1)
		slot, sub := -1, (*scanNode)(nil)
		if node != nil {
			if esc {
				s.escKeys = true
			}
			key := bytesView(b[ks : ke-1])
			for j, k := range node.keys {
				// the first and last bytes first: most keys of a line
				// differ from a same-length node key in one of them, and
				// a compare of whole strings is a call
				if len(k) == len(key) && k[0] == key[0] && k[len(k)-1] == key[len(key)-1] && k == key {
					if s.vals[node.slots[j]].kind == jNone {
						slot, sub = node.slots[j], node.subs[j]
					}
					break
				}
			}
		}
		start := i
		kind, end, ok := s.value(i, depth, sub)
		if !ok {
			return end, false
		}
		if slot >= 0 {
			s.vals[slot] = jval{kind: kind, start: start, end: end}
		}
		i = skipWS(b, end)
		if i >= len(b) {
			return i, false
		}
		switch b[i] {
		case ',':
			i++
		case '}':
			return i + 1, true
		default:
			return i, false
		}
	}
}

// rawKey is fastjson's parseRawKey for the key starting at b[i] (after its
// opening quote): where it ends (after the closing quote) and whether it
// has a backslash.
func rawKey(b []byte, i int) (end int, esc, ok bool) {
	for j := i; j < len(b); j++ {
		switch b[j] {
		case '"':
			return j + 1, false, true
		case '\\':
			end, ok := rawString(b, i)
			return end, true, ok
		}
	}
	return len(b), false, false
}

// rawString is fastjson's parseRawString for the string starting at b[i]
// (after its opening quote): it ends at the first quote preceded by an
// even number of backslashes. end is the index after the closing quote.
func rawString(b []byte, i int) (end int, ok bool) {
	for {
		n := bytes.IndexByte(b[i:], '"')
		if n < 0 {
			return len(b), false
		}
		q := i + n
		j := q
		for j > i && b[j-1] == '\\' {
			j--
		}
		if (q-j)%2 == 0 {
			return q + 1, true
		}
		i = q + 1
	}
}

// rawNumber is fastjson's parseRawNumber for the number at b[i] (i <
// len(b)): where it ends.
func rawNumber(b []byte, i int) (int, bool) {
	for j := i; j < len(b); j++ {
		c := b[j]
		if (c >= '0' && c <= '9') || c == '.' || c == '-' || c == 'e' || c == 'E' || c == '+' {
			continue
		}
		if j == i || j == i+1 && (b[i] == '-' || b[i] == '+') {
			if len(b)-j >= 3 {
				x := b[j : j+3]
				if bytes.EqualFold(x, []byte("inf")) || bytes.EqualFold(x, []byte("nan")) {
					return j + 3, true
				}
			}
			return i, false
		}
		return j, true
	}
	return len(b), true
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
		end, ok := rawString(v, 1)
		if !ok { // not reached for a scanned value
			return append(dst, v...)
		}
		dst = append(dst, v[:end]...)
		v = v[end:]
	}
	return dst
}

// Reading recorded values; each mirrors its fastjson helper in stream.go.

// sstr returns the string at slot, unescaped and copied into the arena.
func (d *Decoder) sstr(slot int) string {
	if d.sc.vals[slot].kind != jString {
		return ""
	}
	raw := d.sc.raw(slot)
	if bytes.IndexByte(raw, '\\') < 0 {
		return d.a.str(raw)
	}
	d.unesc = unescape(d.unesc[:0], raw)
	return d.a.str(d.unesc)
}

// sview returns the string at slot unescaped, without copying when it has
// no escapes: valid until the next line.
func (d *Decoder) sview(slot int) string {
	if d.sc.vals[slot].kind != jString {
		return ""
	}
	raw := d.sc.raw(slot)
	if bytes.IndexByte(raw, '\\') < 0 {
		return bytesView(raw)
	}
	return string(unescape(nil, raw))
}

func (d *Decoder) sfloat(slot int) (float64, bool) {
	if d.sc.vals[slot].kind != jNumber {
		return 0, false
	}
	f, _ := fastfloat.Parse(bytesView(d.sc.raw(slot)))
	return f, true
}

func (d *Decoder) snum(slot int) int64 {
	if d.sc.vals[slot].kind != jNumber {
		return 0
	}
	if n, ok := smallInt(d.sc.raw(slot)); ok {
		return n
	}
	f, _ := d.sfloat(slot)
	return int64(f)
}

// smallInt parses a number of one to 15 digits without a leading zero:
// under 2^53, so exactly what int64(fastfloat.Parse(b)) gives, without the
// float parse (timestamps and token counts are all such numbers).
func smallInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 || len(b) > 1 && b[0] == '0' {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
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
	if d.sc.vals[slot].kind == jNone {
		return nil
	}
	b, n := d.a.begin()
	return d.a.end(compactJSON(b, d.sc.span(slot)), n)
}

// smsTime is msTime for the number at slot.
func (d *Decoder) smsTime(slot int) time.Time {
	ms := d.snum(slot)
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
