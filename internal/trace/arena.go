package trace

import (
	"unsafe"

	"github.com/valyala/fastjson"
)

// arena hands out strings and JSON copies carved from append-only chunks, so
// that decoding a line costs about one allocation per arenaChunk bytes of
// decoded text instead of one per field. Nothing is ever written below a
// chunk's length, so every string it returns is immutable and may be kept
// as long as wanted (it keeps its chunk alive, which the GC frees once no
// string refers to it) -- unless recycle is called: see Decoder.transient.
type arena struct{ buf []byte }

// recycle makes the current chunk's bytes available again: every value
// handed out so far may be overwritten. Only for a decoder whose handler
// keeps nothing past its call (Decoder.transient).
func (a *arena) recycle() { a.buf = a.buf[:0] }

// arenaChunk is the size of a chunk; values over a quarter of it get their
// own allocation.
const arenaChunk = 32 << 10

// str returns a copy of b as a string.
func (a *arena) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > arenaChunk/4 {
		return string(b)
	}
	if cap(a.buf)-len(a.buf) < len(b) {
		a.buf = make([]byte, 0, arenaChunk)
	}
	n := len(a.buf)
	a.buf = append(a.buf, b...)
	return unsafe.String(&a.buf[n], len(b))
}

// json returns x marshalled compactly (nil for nil). The slice's capacity is
// its length: appending to it never touches the arena.
func (a *arena) json(x *fastjson.Value) []byte {
	if x == nil {
		return nil
	}
	b, n := a.begin()
	return a.end(x.MarshalTo(b), n)
}

// begin returns the chunk to append a value of unknown size to, and where
// the value starts. Pass what was appended to end.
func (a *arena) begin() ([]byte, int) {
	if cap(a.buf)-len(a.buf) < arenaChunk/8 {
		a.buf = make([]byte, 0, arenaChunk)
	}
	return a.buf, len(a.buf)
}

// end takes back the chunk b (begin's, appended to from n on) and returns
// the value, with its capacity cut to its length.
func (a *arena) end(b []byte, n int) []byte {
	a.buf = b
	out := b[n:len(b):len(b)]
	if len(b) > arenaChunk {
		// the value outgrew the chunk and got an array of its own: keep
		// that array to it alone
		a.buf = nil
	}
	return out
}

// slab hands out pointers to zeroed T from shared backing arrays, never
// reusing an element (unless recycle is called): one allocation per
// slabSize values.
type slab[T any] struct{ s []T }

// recycle zeroes the elements of the current backing array handed out so
// far and hands them out again. Only for a decoder whose handler keeps
// nothing past its call (Decoder.transient).
func (p *slab[T]) recycle() {
	clear(p.s)
	p.s = p.s[:0]
}

const slabSize = 64

func (p *slab[T]) new() *T {
	if len(p.s) == cap(p.s) {
		p.s = make([]T, 0, slabSize)
	}
	p.s = p.s[:len(p.s)+1]
	return &p.s[len(p.s)-1]
}

// bytesView returns b as a string without copying, for writing or scanning
// it; the string must not outlive b's contents.
func bytesView(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// view returns the string field at keys without copying: it aliases the
// parser's buffer and is valid only until the next parse. Use it for
// comparisons and parsing, never for a value handed to a Handler.
func view(v *fastjson.Value, keys ...string) string {
	x := v.Get(keys...)
	if x == nil || x.Type() != fastjson.TypeString {
		return ""
	}
	b, _ := x.StringBytes()
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
