package audit

import (
	"encoding/binary"
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
	tokSeed = 14695981039346656037
	tokMul  = 0x9fb21c651e98df25
	rollP   = 0x9E3779B97F4A7C15
)

// tokHash is a token's hash before mix: its (lower-cased, NUL-free) bytes
// taken as little-endian 64-bit words, the last one zero-padded, each
// folded in as h = (h ^ word) * tokMul. Tokens hold no NUL byte, so the
// padding is unambiguous. The tokenizer computes the same value a word at
// a time.
func tokHash(s string) uint64 {
	h := uint64(tokSeed)
	for len(s) > 0 {
		var w uint64
		for i := 0; i < 8 && i < len(s); i++ {
			w |= uint64(s[i]) << (8 * i)
		}
		h = (h ^ w) * tokMul
		s = s[min(8, len(s)):]
	}
	return h
}

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
			m[mix(tokHash(w))] = true
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

// Fast classes: what the whole-buffer loop of Feed does with a byte
// outside an escape sequence. textCls and codeCls differ in '_' (a token
// byte in code, a separator in text) and punctuation (a token of its own in
// code, a separator in text).
const (
	kSep   = iota // ends the current token
	kTok          // continues or starts a token (lowerTab gives the byte hashed)
	kSkip         // NUL: dropped
	kBack         // backslash: starts an escape sequence
	kPunct        // code mode: a one-byte token
)

var textCls, codeCls = func() (tx, cd [256]uint8) {
	for c := range 256 {
		switch byteClass[c] {
		case clAlpha, clDigit:
			tx[c], cd[c] = kTok, kTok
		case clUnder:
			tx[c], cd[c] = kSep, kTok
		case clPunct:
			tx[c], cd[c] = kSep, kPunct
		case clBack:
			tx[c], cd[c] = kBack, kBack
		case clSkip:
			tx[c], cd[c] = kSkip, kSkip
		}
	}
	return
}()

// lowerTab lower-cases ASCII letters and leaves every other byte as it is.
var lowerTab = func() (t [256]byte) {
	for c := range 256 {
		t[c] = byte(c)
		if c >= 'A' && c <= 'Z' {
			t[c] = byte(c + 32)
		}
	}
	return
}()

// punctTok holds the token hash of each punctuation byte in code mode.
var punctTok = func() (t [256]uint64) {
	for c := range 256 {
		t[c] = mix(uint64(c) * 0x100000001b3)
	}
	return
}()

// gramSink receives n-gram hashes in batches (one call per batch, not one
// per n-gram).
type gramSink interface{ grams(hs []uint64) }

// emitFunc adapts a per-n-gram function to a gramSink (index building and
// tests; the scan's sink is the feeder).
type emitFunc func(uint64)

func (f emitFunc) grams(hs []uint64) {
	for _, h := range hs {
		f(h)
	}
}

// gramBatch is how many n-grams the tokenizer gathers before handing them
// to its sink: enough for the lookups to overlap their cache misses.
const gramBatch = 256

// tokenizer turns a byte stream into n-gram hashes; it keeps its state
// across Feed calls so a file can be fed in chunks. Every n-gram of a Feed
// call reaches the sink before Feed returns.
type tokenizer struct {
	code  bool
	n     int
	cls   *[256]uint8
	sink  gramSink
	inTok bool
	ident bool // current token started with a letter or underscore
	// The current token's hash (tokHash): h over its whole words, acc
	// holding its last nacc (< 8) bytes.
	h    uint64
	acc  uint64
	nacc uint
	// escape state: 0 none, 1 after backslash, 2..5 reading \u hex digits
	esc   int
	uval  int
	ring  [16]uint64
	pos   int
	count int
	roll  uint64
	pn1   uint64 // rollP^(n-1)
	out   []uint64
	// noBlock turns block off: the word-at-a-time loop alone (what
	// BenchmarkTokenizerBlock and the tests compare block with).
	noBlock bool
}

func newTokenizer(code bool, sink gramSink) *tokenizer {
	t := &tokenizer{code: code, n: TextN, cls: &textCls, sink: sink, out: make([]uint64, 0, gramBatch)}
	if code {
		t.n, t.cls = CodeN, &codeCls
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
	t.flush()
	t.esc, t.count, t.pos, t.roll = 0, 0, 0, 0
	t.ring = [16]uint64{}
}

// flush hands the pending n-grams to the sink.
func (t *tokenizer) flush() {
	if len(t.out) > 0 {
		t.sink.grams(t.out)
		t.out = t.out[:0]
	}
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
	t.out = append(t.out, t.roll|1)
	if len(t.out) == gramBatch {
		t.flush()
	}
}

func (t *tokenizer) endTok() {
	if !t.inTok {
		return
	}
	t.inTok = false
	t.pushTok(t.h, t.acc, t.nacc)
}

// startTok starts a token whose first byte is c.
func (t *tokenizer) startTok(c byte) {
	t.inTok, t.h, t.acc, t.nacc, t.ident = true, tokSeed, 0, 0, c > '9' // letters and '_' sort after digits
}

// addByte appends a (lower-cased) byte to the current token.
func (t *tokenizer) addByte(c byte) {
	t.acc |= uint64(c) << (8 * t.nacc)
	t.nacc++
	if t.nacc == 8 {
		t.h, t.acc, t.nacc = (t.h^t.acc)*tokMul, 0, 0
	}
}

// pushTok ends a token: h over its whole words, acc its nacc last bytes.
func (t *tokenizer) pushTok(h, acc uint64, nacc uint) {
	if nacc > 0 {
		h = (h ^ acc) * tokMul
	}
	h = mix(h)
	if t.code && t.ident && (codeKeepFilter[h>>58]&(1<<(h&63)) == 0 || !codeKeep[h]) {
		h = idToken
	}
	t.push(h)
}

const (
	lo7  = 0x7f7f7f7f7f7f7f7f
	hi8  = 0x8080808080808080
	ones = 0x0101010101010101
)

// tokenBytes classifies 8 bytes at once (SWAR): it returns 0x80 in each
// byte of w that is a token byte (an ASCII letter or digit; '_' too in code
// mode), and 0x80 in each byte that is a letter.
func tokenBytes(w uint64, code bool) (tok, alpha uint64) {
	y := w & lo7
	z := y | 0x20*ones // letters lower-cased; no other byte lands in a..z
	alpha = (z + (0x80-'a')*ones) &^ (z + (0x7f-'z')*ones) & hi8 &^ w
	digit := (y + (0x80-'0')*ones) &^ (y + (0x7f-'9')*ones) & hi8
	tok = alpha | digit
	if code {
		tok |= ^((y ^ '_'*ones) + lo7) & hi8
	}
	return tok &^ w, alpha // bytes >= 0x80 are never token bytes
}

// Feed tokenises b. Outside escape sequences it reads tokens a 64-bit word
// at a time (tokenBytes finds where a token ends, one multiply folds in
// eight of its bytes); near a buffer's end and after a NUL inside a token
// it goes a byte at a time. The bytes of an escape sequence go through
// step, the byte-at-a-time state machine, which gives the same tokens.
func (t *tokenizer) Feed(b []byte) {
	cls, code := t.cls, t.code
	h, acc, nacc, inTok := t.h, t.acc, t.nacc, t.inTok
	i := 0
	for i < len(b) {
		if !inTok && !code && t.esc == 0 && i+blockSlack <= len(b) && !t.noBlock {
			if j := t.block(b, i); j > i {
				i = j
				continue
			}
		}
		if t.esc != 0 {
			t.h, t.acc, t.nacc, t.inTok = h, acc, nacc, inTok
			for i < len(b) && t.esc != 0 {
				t.step(b[i])
				i++
			}
			h, acc, nacc, inTok = t.h, t.acc, t.nacc, t.inTok
			continue
		}
		c := b[i]
		switch cls[c] {
		case kTok:
			if !inTok {
				inTok, h, acc, nacc, t.ident = true, tokSeed, 0, 0, c > '9'
			}
			for nacc == 0 && i+8 <= len(b) {
				w := uint64(b[i]) | uint64(b[i+1])<<8 | uint64(b[i+2])<<16 | uint64(b[i+3])<<24 |
					uint64(b[i+4])<<32 | uint64(b[i+5])<<40 | uint64(b[i+6])<<48 | uint64(b[i+7])<<56
				tok, alpha := tokenBytes(w, code)
				w |= alpha >> 2 // lower-case
				if tok == hi8 {
					h = (h ^ w) * tokMul
					i += 8
					continue
				}
				k := uint(bits.TrailingZeros64(^tok&hi8)) &^ 7 // bits of the token's bytes in w
				acc, nacc = w&(1<<k-1), k/8
				i += int(k / 8)
				break
			}
			for i < len(b) {
				c = b[i]
				k := cls[c]
				if k == kTok {
					acc |= uint64(lowerTab[c]) << (8 * nacc)
					nacc++
					if nacc == 8 {
						h, acc, nacc = (h^acc)*tokMul, 0, 0
					}
				} else if k != kSkip {
					break
				}
				i++
			}
		case kSep:
			if inTok {
				// pushTok and push, inlined: the commonest end of a token.
				inTok = false
				if nacc > 0 {
					h = (h ^ acc) * tokMul
				}
				h = mix(h)
				if t.code && t.ident && (codeKeepFilter[h>>58]&(1<<(h&63)) == 0 || !codeKeep[h]) {
					h = idToken
				}
				pos := t.pos
				old := t.ring[pos&15]
				t.ring[pos&15] = h
				if pos++; pos == t.n {
					pos = 0
				}
				t.pos = pos
				t.roll = (t.roll-old*t.pn1)*rollP + h
				if t.count < t.n {
					t.count++
				}
				if t.count == t.n {
					t.out = append(t.out, t.roll|1)
					if len(t.out) == gramBatch {
						t.flush()
					}
				}
			}
			i++
		case kSkip:
			// NUL bytes are dropped, not separators: UTF-16 and UTF-32
			// text of either byte order then reads as its ASCII.
			i++
		case kPunct:
			if inTok {
				inTok = false
				t.pushTok(h, acc, nacc)
			}
			t.push(punctTok[c])
			i++
		case kBack:
			if inTok {
				inTok = false
				t.pushTok(h, acc, nacc)
			}
			t.esc = 1
			i++
		}
	}
	t.h, t.acc, t.nacc, t.inTok = h, acc, nacc, inTok
	t.flush()
}

// blockSlack is how many bytes block needs from where it starts: its 64
// bytes and the 8 that a word load at its last byte reads.
const blockSlack = 72

// gather packs the high bits of m's bytes (m & hi8) into 8 bits, byte k
// to bit k.
func gather(m uint64) uint64 { return (m >> 7 & ones) * 0x0102040810204080 >> 56 }

// zeroBytes returns 0x80 in each byte of w that is 0 (exactly: no borrow
// between bytes).
func zeroBytes(w uint64) uint64 { return ^((w&lo7 + lo7) | w) & hi8 }

// block tokenises text (text mode, no token open, no escape pending) in
// the 64 bytes at b[i:] with bit masks: one bit per byte for the token
// bytes and for the bytes the whole-buffer loop must see (a backslash
// starts an escape, a NUL inside a token is skipped). It emits the tokens
// that end, before the first such byte, at a separator, and returns where
// it stopped: past the block, at that byte, or at the start of a token
// that runs on to it or past the block (the caller goes on from there).
// It returns i when it emitted nothing.
func (t *tokenizer) block(b []byte, i int) int {
	var tok, mark uint64
	for k := 0; k < 8; k++ {
		w := binary.LittleEndian.Uint64(b[i+8*k:])
		tb, _ := tokenBytes(w, false)
		tok |= gather(tb) << (8 * k)
		// Whether w holds a NUL or a backslash: (v - ones) &^ v has the
		// high bit set in v's lowest zero byte (maybe above it too, never
		// without one).
		x := w ^ '\\'*ones
		mark |= (w-ones)&^w | (x-ones)&^x
	}
	lim := 64
	if mark&hi8 != 0 { // where exactly: rare enough to look again
		var spec uint64
		for k := 0; k < 8; k++ {
			w := binary.LittleEndian.Uint64(b[i+8*k:])
			spec |= gather(zeroBytes(w)|zeroBytes(w^'\\'*ones)) << (8 * k)
		}
		lim = 64
		for spec != 0 {
			q := bits.TrailingZeros64(spec)
			if b[i+q] != '\\' || q == 63 {
				lim = q // a NUL, or an escape whose next byte lies past the block
				break
			}
			// An escape outside a token's run of bytes: the backslash
			// ends the token before it, as the loop's kBack does, and
			// step then consumes a simple escape's letter; any other
			// byte after it is read as usual. \u and a NUL after the
			// backslash (skipped: the escape stays pending) go to the loop.
			switch b[i+q+1] {
			case 'u', 0:
				lim = q
			case 'n', 't', 'r', 'b', 'f':
				tok &^= 1 << (q + 1)
			case '\\':
				spec &^= 1 << (q + 1)
			}
			if lim == q {
				break
			}
			spec &^= 1 << q
		}
	}
	starts := tok &^ (tok << 1) // no token is open before b[i]
	ends := tok &^ (tok >> 1)   // bit 63: the token may go on past the block
	next := lim
	pos, roll, count := t.pos, t.roll, t.count
	for starts != 0 {
		s := bits.TrailingZeros64(starts)
		if s >= lim {
			break
		}
		e := s + bits.TrailingZeros64(ends>>s) // the token's last byte
		if e+1 >= lim {
			next = s // it may go on (past a NUL, past the block)
			break
		}
		starts &= starts - 1
		// tokHash of b[i+s : i+e+1]: whole words, then the rest
		// zero-padded; |0x20 lower-cases letters and leaves digits.
		h := uint64(tokSeed)
		p, n := i+s, e+1-s
		for ; n >= 8; p, n = p+8, n-8 {
			h = (h ^ (binary.LittleEndian.Uint64(b[p:]) | 0x20*ones)) * tokMul
		}
		if n > 0 {
			h = (h ^ (binary.LittleEndian.Uint64(b[p:])|0x20*ones)&(1<<(8*n)-1)) * tokMul
		}
		h = mix(h)
		old := t.ring[pos&15]
		t.ring[pos&15] = h
		if pos++; pos == t.n {
			pos = 0
		}
		roll = (roll-old*t.pn1)*rollP + h
		if count < t.n {
			count++
		}
		if count == t.n {
			t.out = append(t.out, roll|1)
			if len(t.out) == gramBatch {
				t.flush()
			}
		}
	}
	t.pos, t.roll, t.count = pos, roll, count
	return i + next
}

// step tokenises one byte with the full state machine (escape state
// included).
func (t *tokenizer) step(c byte) {
	if t.esc != 0 && c != 0 {
		if t.esc == 1 {
			switch c {
			case 'u':
				t.esc, t.uval = 2, 0
				return
			case 'n', 't', 'r', 'b', 'f', '\\', '/', '"', '\'':
				t.esc = 0
				t.endTok()
				return
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
					return
				}
				t.esc = 0
				if t.uval >= 0x80 {
					t.endTok()
					return
				}
				c = byte(t.uval)
			}
		}
	}
	switch byteClass[c] {
	case clAlpha, clDigit:
		if !t.inTok {
			t.startTok(c)
		}
		t.addByte(lowerTab[c])
	case clUnder:
		if t.code {
			if !t.inTok {
				t.startTok(c)
			}
			t.addByte(c)
		} else {
			t.endTok()
		}
	case clPunct:
		t.endTok()
		if t.code {
			t.push(punctTok[c])
		}
	case clBack:
		t.endTok()
		t.esc = 1
	case clSkip:
	default:
		t.endTok()
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

// gramTable maps n-gram hashes to dense ids. A lookup first tests a
// register-blocked Bloom filter (one 64-bit word per n-gram, bloomK bits
// set in it) sized to stay in L2: most n-grams of a scanned file are not in
// the test set and end there after one cache-resident load. The rest probe
// an open-addressing table whose slots hold key and id side by side.
type gramTable struct {
	bloom      []uint64
	bloomShift uint // word index: (h*rollP) >> bloomShift
	slots      []gramSlot
	shift      uint // home slot: (h*slotMul) >> shift
	mask       uint64
}

type gramSlot struct {
	key uint64 // 0: empty (n-gram hashes are odd)
	id  int32
}

const (
	// bloomBitsPerGram and bloomMaxBytes size the filter: 16 bits per
	// n-gram (about 0.3% false positives with bloomK = 4), at most 512 KiB
	// so that it stays in a core's L2 next to the scan's buffers.
	bloomBitsPerGram = 16
	bloomMaxBytes    = 512 << 10
	slotMul          = 0xff51afd7ed558ccd
)

// bloomMask returns the bloomK = 4 bits n-gram h sets in its filter word:
// four 6-bit fields of h (bits 8..31; its low bit is always 1).
func bloomMask(h uint64) uint64 {
	return 1<<(h>>8&63) | 1<<(h>>14&63) | 1<<(h>>20&63) | 1<<(h>>26&63)
}

func newGramTable(hashes []uint64) *gramTable {
	words := uint64(64)
	for words*64 < uint64(len(hashes))*bloomBitsPerGram && words*8 < bloomMaxBytes {
		words *= 2
	}
	tbits := uint(bits.Len64(uint64(len(hashes))*2 + 16))
	g := &gramTable{
		bloom:      make([]uint64, words),
		bloomShift: uint(64 - bits.TrailingZeros64(words)),
		slots:      make([]gramSlot, 1<<tbits),
		shift:      64 - tbits,
		mask:       1<<tbits - 1,
	}
	for i, h := range hashes {
		g.bloom[(h*rollP)>>g.bloomShift] |= bloomMask(h)
		s := (h * slotMul) >> g.shift
		for g.slots[s].key != 0 {
			s = (s + 1) & g.mask
		}
		g.slots[s] = gramSlot{key: h, id: int32(i)}
	}
	return g
}

// mayHave is the filter test: false means h is not in the table.
func (g *gramTable) mayHave(h uint64) bool {
	m := bloomMask(h)
	return g.bloom[(h*rollP)>>g.bloomShift]&m == m
}

// find probes the table: h's id, or -1.
func (g *gramTable) find(h uint64) int32 {
	for s := (h * slotMul) >> g.shift; ; s = (s + 1) & g.mask {
		k := g.slots[s].key
		if k == h {
			return g.slots[s].id
		}
		if k == 0 {
			return -1
		}
	}
}

func (g *gramTable) lookup(h uint64) int32 {
	if !g.mayHave(h) {
		return -1
	}
	return g.find(h)
}
