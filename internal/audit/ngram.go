package audit

import (
	"encoding/json"
	"math/bits"
)

// Normalisation for the contamination scan (docs/AUDIT.md):
//   - text mode: tokens are runs of ASCII letters and digits, lower-cased;
//     everything else (whitespace, punctuation, underscores, non-ASCII bytes)
//     separates tokens.
//   - code mode: identifiers ([A-Za-z_][A-Za-z0-9_]*) that are not Python
//     keywords or builtins become one placeholder token; numbers and keywords
//     are kept; each punctuation byte is a token; quotes separate.
//   - both: NUL bytes are skipped (they neither end a token nor start one),
//     so ASCII text in UTF-16 or UTF-32, either byte order, at any
//     alignment, tokenises as it does in UTF-8.
//   - both: escape sequences (\n, \t, \", \\, \uXXXX, ...) are decoded as a
//     JSON or Python reader would, so text inside JSON strings matches plain
//     text. Test text is JSON-encoded before it is tokenised.
const (
	TextN = 8  // words per n-gram in text mode
	CodeN = 12 // tokens per n-gram in code mode
)

const (
	clSep = iota
	clAlpha
	clDigit
	clUnder
	clPunct
	clBack
	clSkip
)

var byteClass = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-32] = clAlpha, clAlpha
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = clDigit
	}
	t['_'] = clUnder
	for _, c := range "()[]{}:,.=<>+-*/%!&|^~@;?" {
		t[c] = clPunct
	}
	t['\\'] = clBack
	t[0] = clSkip
	return t
}()

const (
	fnvOff   = 14695981039346656037
	fnvPrime = 1099511628211
	rollP    = 0x9E3779B97F4A7C15
)

func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h | 1
}

var (
	idToken = mix(0x1d1d1d1d)
	// codeKeep holds the hashes of Python keywords and common builtins,
	// which code mode keeps instead of replacing them by the placeholder.
	codeKeep = func() map[uint64]bool {
		m := map[uint64]bool{}
		for _, w := range []string{"false", "none", "true", "and", "as", "assert", "async", "await", "break", "class", "continue",
			"def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda",
			"nonlocal", "not", "or", "pass", "raise", "return", "try", "while", "with", "yield",
			"abs", "all", "any", "bool", "chr", "dict", "enumerate", "filter", "float", "int", "isinstance", "len", "list",
			"map", "max", "min", "ord", "print", "range", "reversed", "round", "set", "sorted", "str", "sum", "tuple", "zip",
			"append", "join", "split", "sort", "pop", "keys", "values", "items", "lower", "upper", "strip", "replace", "count", "index"} {
			h := uint64(fnvOff)
			for i := 0; i < len(w); i++ {
				h = (h ^ uint64(w[i])) * fnvPrime
			}
			m[mix(h)] = true
		}
		return m
	}()
	// codeKeepFilter is a 4096-bit prefilter of codeKeep: most identifiers
	// are rejected without a map lookup.
	codeKeepFilter = func() (f [64]uint64) {
		for h := range codeKeep {
			f[h>>58] |= 1 << (h & 63)
		}
		return f
	}()
)

// tokenizer turns a byte stream into n-gram hashes; it keeps its state
// across Feed calls so a file can be fed in chunks.
type tokenizer struct {
	code  bool
	n     int
	emit  func(uint64)
	h     uint64 // current token hash
	inTok bool
	ident bool // current token started with a letter or underscore
	// escape state: 0 none, 1 after backslash, 2..5 reading \u hex digits
	esc   int
	uval  int
	ring  [16]uint64
	pos   int
	count int
	roll  uint64
	pn1   uint64 // rollP^(n-1)
}

func newTokenizer(code bool, emit func(uint64)) *tokenizer {
	t := &tokenizer{code: code, n: TextN, emit: emit}
	if code {
		t.n = CodeN
	}
	t.pn1 = 1
	for i := 0; i < t.n-1; i++ {
		t.pn1 *= rollP
	}
	return t
}

// reset starts a new document (n-grams never span two documents).
func (t *tokenizer) reset() {
	t.endTok()
	t.esc, t.count, t.pos, t.roll = 0, 0, 0, 0
	t.ring = [16]uint64{}
}

func (t *tokenizer) push(tok uint64) {
	old := t.ring[t.pos]
	t.ring[t.pos] = tok
	t.pos++
	if t.pos == t.n {
		t.pos = 0
	}
	t.roll = (t.roll-old*t.pn1)*rollP + tok
	if t.count < t.n {
		t.count++
		if t.count < t.n {
			return
		}
	}
	t.emit(t.roll | 1)
}

func (t *tokenizer) endTok() {
	if !t.inTok {
		return
	}
	t.inTok = false
	h := mix(t.h)
	if t.code && t.ident && (codeKeepFilter[h>>58]&(1<<(h&63)) == 0 || !codeKeep[h]) {
		h = idToken
	}
	t.push(h)
}

// Feed tokenises b.
func (t *tokenizer) Feed(b []byte) {
	code := t.code
	for i := 0; i < len(b); i++ {
		c := b[i]
		if t.esc != 0 && c != 0 {
			if t.esc == 1 {
				switch c {
				case 'u':
					t.esc, t.uval = 2, 0
					continue
				case 'n', 't', 'r', 'b', 'f', '\\', '/', '"', '\'':
					t.esc = 0
					t.endTok()
					continue
				}
				t.esc = 0
				t.endTok()
			} else {
				v := hexVal(c)
				if v < 0 {
					t.esc = 0
					t.endTok()
				} else {
					t.uval = t.uval<<4 | v
					t.esc++
					if t.esc < 6 {
						continue
					}
					t.esc = 0
					if t.uval >= 0x80 {
						t.endTok()
						continue
					}
					c = byte(t.uval)
				}
			}
		}
		switch byteClass[c] {
		case clAlpha:
			if c < 'a' {
				c += 32
			}
			if !t.inTok {
				t.inTok, t.h, t.ident = true, fnvOff, true
			}
			t.h = (t.h ^ uint64(c)) * fnvPrime
		case clDigit:
			if !t.inTok {
				t.inTok, t.h, t.ident = true, fnvOff, false
			}
			t.h = (t.h ^ uint64(c)) * fnvPrime
		case clUnder:
			if code {
				if !t.inTok {
					t.inTok, t.h, t.ident = true, fnvOff, true
				}
				t.h = (t.h ^ uint64(c)) * fnvPrime
			} else {
				t.endTok()
			}
		case clPunct:
			t.endTok()
			if code {
				t.push(mix(uint64(c) * 0x100000001b3))
			}
		case clBack:
			t.endTok()
			t.esc = 1
		case clSkip:
			// NUL bytes are dropped, not separators: UTF-16 and UTF-32
			// text of either byte order then reads as its ASCII.
		default:
			t.endTok()
		}
	}
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// gramsOf returns the distinct n-gram hashes of text, JSON-encoded first.
func gramsOf(text string, code bool) []uint64 {
	enc, _ := json.Marshal(text)
	seen := map[uint64]bool{}
	var out []uint64
	t := newTokenizer(code, func(h uint64) {
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	})
	t.Feed(enc)
	t.reset()
	return out
}

// gramTable maps n-gram hashes to dense ids: open addressing behind a
// bitset prefilter, sized for fast negative lookups during the scan.
type gramTable struct {
	filter []uint64 // 1 bit per slot of h>>filterShift
	keys   []uint64
	ids    []int32
	mask   uint64
}

const filterBits = 23

func newGramTable(hashes []uint64) *gramTable {
	size := uint64(1) << bits.Len64(uint64(len(hashes))*2+16)
	g := &gramTable{filter: make([]uint64, (1<<filterBits)/64), keys: make([]uint64, size), ids: make([]int32, size), mask: size - 1}
	for i, h := range hashes {
		f := h >> (64 - filterBits)
		g.filter[f/64] |= 1 << (f % 64)
		s := (h * rollP) >> 20 & g.mask
		for g.keys[s] != 0 {
			s = (s + 1) & g.mask
		}
		g.keys[s], g.ids[s] = h, int32(i)
	}
	return g
}

func (g *gramTable) lookup(h uint64) int32 {
	f := h >> (64 - filterBits)
	if g.filter[f/64]&(1<<(f%64)) == 0 {
		return -1
	}
	for s := (h * rollP) >> 20 & g.mask; g.keys[s] != 0; s = (s + 1) & g.mask {
		if g.keys[s] == h {
			return g.ids[s]
		}
	}
	return -1
}
