package pinned

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Literal names a string constant in a Python module: the value of the
// module-level assignment `Var = ...`, descending into dict displays by
// Keys. The value must be string literals (implicit concatenation and
// parentheses allowed), optionally followed by `.strip()`, which is applied
// as Python applies it. Nothing is executed: the source is tokenized and
// only these forms are understood; anything else is an error.
type Literal struct {
	Var  string
	Keys []string
}

func (l Literal) String() string {
	var b strings.Builder
	b.WriteString(l.Var)
	for _, k := range l.Keys {
		b.WriteString("[" + strconv.Quote(k) + "]")
	}
	return b.String()
}

// maxSource bounds the Python source the extractor reads.
const maxSource = 4 << 20

// Extract returns the value of l in the Python source src.
func (l Literal) Extract(src []byte) (string, error) {
	if len(src) > maxSource {
		return "", fmt.Errorf("extract %s: source is %d bytes, more than %d", l, len(src), maxSource)
	}
	if !utf8.Valid(src) {
		return "", fmt.Errorf("extract %s: source is not UTF-8", l)
	}
	s := string(src)
	start := -1
	for off := 0; off < len(s); {
		line := s[off:]
		if i := strings.IndexByte(line, '\n'); i >= 0 {
			line = line[:i]
		}
		if rest, ok := strings.CutPrefix(line, l.Var); ok {
			if t := strings.TrimLeft(rest, " \t"); strings.HasPrefix(t, "=") && !strings.HasPrefix(t, "==") {
				if start >= 0 {
					return "", fmt.Errorf("extract %s: %s is assigned more than once (lines %d and %d)", l, l.Var, lineOf(s, start), lineOf(s, off))
				}
				start = off + len(line) - len(t) + 1
			}
		}
		off += len(line) + 1
	}
	if start < 0 {
		return "", fmt.Errorf("extract %s: no module-level assignment to %s", l, l.Var)
	}
	p := &pyParser{src: s, pos: start}
	v, err := p.value(l.Keys)
	if err == nil {
		var t pyToken
		if t, err = p.next(); err == nil && t.kind != tkEOF {
			err = fmt.Errorf("%q after the value: an expression would need the code to run", t.text)
		}
	}
	if err != nil {
		return "", fmt.Errorf("extract %s: line %d: %w", l, lineOf(s, p.pos), err)
	}
	return v, nil
}

func lineOf(s string, off int) int { return strings.Count(s[:min(off, len(s))], "\n") + 1 }

// token kinds
const (
	tkEOF = iota
	tkString
	tkName
	tkNumber
	tkOp
)

type pyToken struct {
	kind int
	text string // the raw token
	val  string // decoded value of a string token
	pos  int
}

// pyParser reads Python tokens from pos. Newlines are insignificant inside
// brackets; the assignment's value ends at a newline at depth 0.
type pyParser struct {
	src   string
	pos   int
	depth int
	peek  *pyToken
}

var errEnd = errors.New("end of statement")

func (p *pyParser) next() (pyToken, error) {
	if p.peek != nil {
		t := *p.peek
		p.peek = nil
		return t, nil
	}
	return p.scan()
}

func (p *pyParser) unread(t pyToken) { p.peek = &t }

func (p *pyParser) scan() (pyToken, error) {
	s := p.src
	for p.pos < len(s) {
		c := s[p.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\f' || c == '\r':
			p.pos++
		case c == '\\' && p.pos+1 < len(s) && s[p.pos+1] == '\n':
			p.pos += 2
		case c == '#':
			for p.pos < len(s) && s[p.pos] != '\n' {
				p.pos++
			}
		case c == '\n':
			if p.depth == 0 {
				return pyToken{kind: tkEOF, pos: p.pos}, nil
			}
			p.pos++
		default:
			return p.token()
		}
	}
	return pyToken{kind: tkEOF, pos: p.pos}, nil
}

func isNameStart(r rune) bool { return r == '_' || unicode.IsLetter(r) }
func isNameChar(r rune) bool  { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

func (p *pyParser) token() (pyToken, error) {
	s, start := p.src, p.pos
	r, _ := utf8.DecodeRuneInString(s[start:])
	if isNameStart(r) {
		end := start
		for end < len(s) {
			r, n := utf8.DecodeRuneInString(s[end:])
			if !isNameChar(r) {
				break
			}
			end += n
		}
		name := s[start:end]
		if end < len(s) && (s[end] == '"' || s[end] == '\'') && len(name) <= 2 {
			return p.stringToken(strings.ToLower(name), end)
		}
		p.pos = end
		return pyToken{kind: tkName, text: name, pos: start}, nil
	}
	switch c := s[start]; {
	case c == '"' || c == '\'':
		return p.stringToken("", start)
	case c >= '0' && c <= '9':
		end := start
		for end < len(s) && (isNameChar(rune(s[end])) || s[end] == '.') {
			end++
		}
		p.pos = end
		return pyToken{kind: tkNumber, text: s[start:end], pos: start}, nil
	case strings.IndexByte("([{", c) >= 0:
		p.depth++
	case strings.IndexByte(")]}", c) >= 0:
		p.depth--
	}
	p.pos = start + 1
	return pyToken{kind: tkOp, text: s[start : start+1], pos: start}, nil
}

// stringToken reads a string literal whose quote starts at q, with prefix.
func (p *pyParser) stringToken(prefix string, q int) (pyToken, error) {
	raw := false
	for _, c := range prefix {
		switch c {
		case 'r':
			raw = true
		case 'u':
		case 'b':
			return pyToken{}, fmt.Errorf("a bytes literal, not a string")
		case 'f':
			return pyToken{}, fmt.Errorf("an f-string, whose value depends on running code")
		default:
			return pyToken{}, fmt.Errorf("unknown string prefix %q", prefix)
		}
	}
	s := p.src
	quote := s[q : q+1]
	if strings.HasPrefix(s[q:], strings.Repeat(quote, 3)) {
		quote = strings.Repeat(quote, 3)
	}
	body := q + len(quote)
	i := body
	for {
		if i >= len(s) {
			return pyToken{}, fmt.Errorf("unterminated string literal")
		}
		c := s[i]
		if c == '\\' {
			i += 2
			continue
		}
		if c == '\n' && len(quote) == 1 {
			return pyToken{}, fmt.Errorf("unterminated string literal (newline in a single-quoted string)")
		}
		if strings.HasPrefix(s[i:], quote) {
			break
		}
		i++
	}
	text := s[body:i]
	p.pos = i + len(quote)
	val := text
	if !raw {
		var err error
		if val, err = unescape(text); err != nil {
			return pyToken{}, err
		}
	}
	return pyToken{kind: tkString, text: s[q-len(prefix) : p.pos], val: val, pos: q}, nil
}

// unescape applies Python's escape sequences to a non-raw str literal body.
// Unknown escapes keep their backslash, as Python does.
func unescape(s string) (string, error) {
	if strings.IndexByte(s, '\\') < 0 {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch e := s[i]; e {
		case '\n':
		case '\\', '\'', '"':
			b.WriteByte(e)
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'v':
			b.WriteByte('\v')
		case '0', '1', '2', '3', '4', '5', '6', '7':
			j := i
			for j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7' {
				j++
			}
			n, _ := strconv.ParseUint(s[i:j], 8, 32)
			b.WriteRune(rune(n))
			i = j - 1
		case 'x', 'u', 'U':
			width := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
			if i+1+width > len(s) {
				return "", fmt.Errorf("truncated \\%c escape", e)
			}
			n, err := strconv.ParseUint(s[i+1:i+1+width], 16, 32)
			if err != nil || n > unicode.MaxRune {
				return "", fmt.Errorf("invalid \\%c escape %q", e, s[i-1:min(len(s), i+1+width)])
			}
			b.WriteRune(rune(n))
			i += width
		case 'N':
			return "", fmt.Errorf("\\N{...} escapes are not supported")
		default:
			b.WriteByte('\\')
			b.WriteByte(e)
		}
	}
	return b.String(), nil
}

// value parses the expression at the current position and, for a dict,
// descends by keys. It returns the string it denotes.
func (p *pyParser) value(keys []string) (string, error) {
	t, err := p.next()
	if err != nil {
		return "", err
	}
	switch {
	case t.kind == tkOp && t.text == "{":
		if len(keys) == 0 {
			return "", fmt.Errorf("a dict where a string was expected")
		}
		return p.dict(keys)
	case t.kind == tkString, t.kind == tkOp && t.text == "(":
		if len(keys) > 0 {
			return "", fmt.Errorf("a string where a dict with key %q was expected", keys[0])
		}
		p.unread(t)
		return p.stringExpr()
	case t.kind == tkEOF:
		return "", fmt.Errorf("no value")
	}
	return "", fmt.Errorf("%q is not a literal (a name or an expression would need the code to run)", t.text)
}

// stringExpr: atom ('.strip()')*, where atom is adjacent string literals or
// a parenthesized stringExpr.
func (p *pyParser) stringExpr() (string, error) {
	t, err := p.next()
	if err != nil {
		return "", err
	}
	var v string
	switch {
	case t.kind == tkOp && t.text == "(":
		if v, err = p.stringExpr(); err != nil {
			return "", err
		}
		if err := p.expect(")"); err != nil {
			return "", err
		}
	case t.kind == tkString:
		var b strings.Builder
		b.WriteString(t.val)
		for {
			t, err = p.next()
			if err != nil {
				return "", err
			}
			if t.kind != tkString {
				p.unread(t)
				break
			}
			b.WriteString(t.val)
		}
		v = b.String()
	default:
		return "", fmt.Errorf("%q where a string literal was expected", t.text)
	}
	for {
		t, err := p.next()
		if err != nil {
			return "", err
		}
		if t.kind != tkOp || t.text != "." {
			p.unread(t)
			return v, nil
		}
		m, err := p.next()
		if err != nil {
			return "", err
		}
		if m.kind != tkName || m.text != "strip" {
			return "", fmt.Errorf("method %q on a string literal (only .strip() is understood)", m.text)
		}
		if err := p.expect("("); err != nil {
			return "", err
		}
		if err := p.expect(")"); err != nil {
			return "", fmt.Errorf("strip with arguments: %w", err)
		}
		v = pyStrip(v)
	}
}

func (p *pyParser) expect(op string) error {
	t, err := p.next()
	if err != nil {
		return err
	}
	if t.kind != tkOp || t.text != op {
		return fmt.Errorf("%q where %q was expected", t.text, op)
	}
	return nil
}

// dict parses a dict display after its "{" and returns the value at keys.
func (p *pyParser) dict(keys []string) (string, error) {
	found, seen := "", false
	for {
		t, err := p.next()
		if err != nil {
			return "", err
		}
		if t.kind == tkOp && t.text == "}" {
			break
		}
		if t.kind != tkString {
			return "", fmt.Errorf("dict key %q is not a string literal", t.text)
		}
		p.unread(t)
		k, err := p.stringExpr()
		if err != nil {
			return "", err
		}
		if err := p.expect(":"); err != nil {
			return "", err
		}
		if k == keys[0] {
			// Python keeps the last value of a repeated key.
			v, err := p.value(keys[1:])
			if err != nil {
				return "", fmt.Errorf("key %q: %w", k, err)
			}
			found, seen = v, true
		} else if err := p.skip(); err != nil {
			return "", err
		}
		t, err = p.next()
		if err != nil {
			return "", err
		}
		if t.kind == tkOp && t.text == "}" {
			break
		}
		if t.kind != tkOp || t.text != "," {
			return "", fmt.Errorf("%q where \",\" or \"}\" was expected in a dict", t.text)
		}
	}
	if !seen {
		return "", fmt.Errorf("dict has no key %q", keys[0])
	}
	return found, nil
}

// skip passes over one expression: up to a "," or closing bracket at the
// current bracket depth.
func (p *pyParser) skip() error {
	depth := 0
	for {
		t, err := p.next()
		if err != nil {
			return err
		}
		switch {
		case t.kind == tkEOF:
			return fmt.Errorf("unexpected end of the statement")
		case t.kind == tkOp && strings.Contains("([{", t.text):
			depth++
		case t.kind == tkOp && strings.Contains(")]}", t.text):
			if depth == 0 {
				p.unread(t)
				return nil
			}
			depth--
		case t.kind == tkOp && t.text == "," && depth == 0:
			p.unread(t)
			return nil
		}
	}
}

// pyStrip is Python's str.strip() without arguments: it removes the
// characters for which str.isspace() is true (Go's unicode.IsSpace plus the
// information separators U+001C..U+001F).
func pyStrip(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) })
}
