package audit

// refTokenizer is the byte-at-a-time tokenizer the scan used before the
// whole-buffer one (ngram.go), kept verbatim as the reference of the
// differential tests: both must emit the same n-gram hashes in the same
// order for any input. One change: the reference gathers a token's bytes
// and hashes them with tokHash when the token ends (it hashed them with
// FNV-1a a byte at a time); the tokens themselves, the n-gram definition
// and all normalisation are as they were.

// refTokenizer turns a byte stream into n-gram hashes; it keeps its state
// across Feed calls so a file can be fed in chunks.
type refTokenizer struct {
	code  bool
	n     int
	emit  func(uint64)
	tok   []byte // current token's bytes
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

func newRefTokenizer(code bool, emit func(uint64)) *refTokenizer {
	t := &refTokenizer{code: code, n: TextN, emit: emit}
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
func (t *refTokenizer) reset() {
	t.endTok()
	t.esc, t.count, t.pos, t.roll = 0, 0, 0, 0
	t.ring = [16]uint64{}
}

func (t *refTokenizer) push(tok uint64) {
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

func (t *refTokenizer) endTok() {
	if !t.inTok {
		return
	}
	t.inTok = false
	h := mix(tokHash(string(t.tok)))
	if t.code && t.ident && (codeKeepFilter[h>>58]&(1<<(h&63)) == 0 || !codeKeep[h]) {
		h = idToken
	}
	t.push(h)
}

// Feed tokenises b.
func (t *refTokenizer) Feed(b []byte) {
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
				t.inTok, t.tok, t.ident = true, t.tok[:0], true
			}
			t.tok = append(t.tok, c)
		case clDigit:
			if !t.inTok {
				t.inTok, t.tok, t.ident = true, t.tok[:0], false
			}
			t.tok = append(t.tok, c)
		case clUnder:
			if code {
				if !t.inTok {
					t.inTok, t.tok, t.ident = true, t.tok[:0], true
				}
				t.tok = append(t.tok, c)
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
