package audit

import (
	"bytes"
	"fmt"
	"io"
)

// Base64 runs: the raw scanner decodes every run of at least minB64Run
// base64 characters (standard or URL alphabet; newlines, carriage returns
// and NUL bytes inside a run are skipped; '=' ends it). A run may start
// anywhere in a base64 string (glued to a word, cut mid-quantum), so it is
// decoded at all four alignments; the wrong three give noise that matches
// nothing. Each decoded run is scanned as a stream of its own: raw (with its
// own base64 runs) or, when its first bytes say so, as a compressed or
// archive format.

const (
	b64Skip = 0xfe // \n, \r, NUL: inside a run, ignored
	b64Pad  = 0xfd // '=': ends a run
	b64None = 0xff
)

var b64Val = func() (t [256]byte) {
	for i := range t {
		t[i] = b64None
	}
	for i, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/" {
		t[c] = byte(i)
	}
	t['-'], t['_'] = 62, 63
	t['\n'], t['\r'], t[0] = b64Skip, b64Skip, b64Skip
	t['='] = b64Pad
	return t
}()

// rawScanner tokenises a stream's bytes and decodes its base64 runs.
type rawScanner struct {
	d     *fileDecode
	m     *matcher
	fd    *feeder
	depth int
	where string
	runs  int // base64 runs decoded so far (names them in messages)
	// tagRuns: name runs with b64Tag (a part of a split file: adopt
	// renumbers them).
	tagRuns bool

	run   int // base64 characters in the current run
	pre   [minB64Run]byte
	sinks [4]*b64Sink // set while the current run is being decoded
}

func (d *fileDecode) newRawScanner(m *matcher, depth int, where string) *rawScanner {
	return &rawScanner{d: d, m: m, fd: m.newFeeder(), depth: depth, where: where}
}

// b64Break marks the bytes that end a base64 run ('=' and every byte
// outside the alphabet, newlines and NUL excepted).
var b64Break = func() (t [256]bool) {
	for c, v := range b64Val {
		t[c] = v == b64Pad || v == b64None
	}
	return t
}()

func (rs *rawScanner) feed(p []byte) {
	rs.fd.feed(p)
	for i := 0; i < len(p); {
		if rs.run > 0 || i+minB64Run > len(p) {
			i = rs.slow(p, i)
			continue
		}
		// No run in progress: a run long enough to decode needs
		// minB64Run bytes without a break. Look at the last byte of that
		// window, then back from it: ordinary text breaks every few bytes,
		// so most bytes are never looked at.
		j := i + minB64Run - 1
		if b64Break[p[j]] {
			i = j + 1
			continue
		}
		k := j - 1
		for k >= i && !b64Break[p[k]] {
			k--
		}
		if k >= i {
			i = k + 1
			continue
		}
		i = rs.slow(p, i)
	}
}

// slow follows a run byte by byte from p[i] until it ends (or p does) and
// returns where it stopped.
func (rs *rawScanner) slow(p []byte, i int) int {
	for ; i < len(p); i++ {
		v := b64Val[p[i]]
		if v < 64 {
			if rs.run < minB64Run {
				rs.pre[rs.run] = v
				rs.run++
				if rs.run == minB64Run {
					rs.activate()
				}
				continue
			}
			for _, s := range rs.sinks {
				s.char(v)
			}
			continue
		}
		if v == b64Skip {
			continue
		}
		if rs.run == 0 {
			return i + 1
		}
		if v == b64Pad && rs.run >= minB64Run {
			for _, s := range rs.sinks {
				s.pad()
			}
		}
		rs.endRun()
		return i + 1
	}
	return i
}

func (rs *rawScanner) activate() {
	rs.runs++
	for k := range rs.sinks {
		s := &b64Sink{rs: rs, align: k, where: fmt.Sprintf("%s > base64 run %d", rs.where, rs.runs)}
		if rs.tagRuns {
			s.where = fmt.Sprintf("%s%s%d\x00", rs.where, b64Tag, rs.runs)
		}
		if k > 0 {
			s.where += fmt.Sprintf(" (offset %d)", k)
		}
		for _, v := range rs.pre[k:] {
			s.char(v)
		}
		rs.sinks[k] = s
	}
}

func (rs *rawScanner) endRun() {
	active := rs.run >= minB64Run
	rs.run = 0
	if !active {
		return
	}
	for k, s := range rs.sinks {
		s.end()
		rs.sinks[k] = nil
	}
}

// end finishes the stream.
func (rs *rawScanner) end() {
	rs.endRun()
	rs.fd.reset()
	if rs.fd.hits > 0 && rs.depth > 0 {
		rs.d.layer(rs.where)
	}
}

// b64Sink decodes one alignment of a base64 run and scans its bytes.
type b64Sink struct {
	rs    *rawScanner
	align int
	where string
	q     uint32 // pending 6-bit values
	nq    int
	buf   []byte // decoded, not yet handed on
	mode  int
	raw   *rawScanner
	pw    *io.PipeWriter
	done  chan *matcher
	spent int // bytes of buf already counted against the budget
}

const (
	sinkHead = iota
	sinkRaw
	sinkPipe
	sinkBuffer
	sinkDrop
)

func (s *b64Sink) char(v byte) {
	s.q = s.q<<6 | uint32(v)
	s.nq++
	if s.nq < 4 {
		return
	}
	s.buf = append(s.buf, byte(s.q>>16), byte(s.q>>8), byte(s.q))
	s.q, s.nq = 0, 0
	switch s.mode {
	case sinkHead:
		if len(s.buf) >= 512 {
			s.flush()
		}
	case sinkRaw, sinkPipe:
		if len(s.buf) >= 32<<10 {
			s.flush()
		}
	case sinkBuffer:
		if int64(len(s.buf)) > s.rs.d.lim.Buffer {
			s.rs.d.issue("%s: base64 run holding a zip or parquet file larger than %d bytes: not decoded", s.where, s.rs.d.lim.Buffer)
			s.mode, s.buf = sinkDrop, nil
		}
	case sinkDrop:
		s.buf = s.buf[:0]
	}
}

// pad ends the run's last, short quantum ("xx==", "xxx=").
func (s *b64Sink) pad() {
	switch s.nq {
	case 2:
		s.buf = append(s.buf, byte(s.q>>4))
	case 3:
		s.buf = append(s.buf, byte(s.q>>10), byte(s.q>>2))
	}
	s.q, s.nq = 0, 0
}

// spend counts n decoded bytes against the file's budget; false when the
// budget is spent (the run is then dropped).
func (s *b64Sink) spend(n int) bool {
	d := s.rs.d
	if d.used.Add(int64(n)) > d.budget {
		d.issue("%s: decoding stopped at %d decoded bytes (bound %d bytes for this file)", s.where, d.used.Load(), d.budget)
		s.mode, s.buf = sinkDrop, nil
		return false
	}
	return true
}

// flush hands the decoded bytes on, deciding at the first call what the
// run holds.
func (s *b64Sink) flush() {
	d := s.rs.d
	if s.mode == sinkDrop || s.mode == sinkBuffer || len(s.buf) == 0 {
		return
	}
	if !s.spend(len(s.buf)) {
		return
	}
	if s.mode == sinkHead {
		s.spent = len(s.buf)
		f := sniffFormat(s.buf)
		switch {
		case s.rs.depth+1 >= d.lim.Depth:
			d.issue("%s: base64 nested deeper than %d decoders, not decoded", s.where, d.lim.Depth)
			s.mode, s.buf = sinkDrop, nil
			return
		case f == fmtRaw:
			s.mode, s.raw = sinkRaw, d.newRawScanner(s.rs.m, s.rs.depth+1, s.where)
		case f == fmtZip || f == fmtParquet || len(s.buf) < 512:
			s.mode = sinkBuffer // decoded at the end of the run
			return
		default:
			// A streaming format: decode it on a goroutine fed by a
			// pipe, with a matcher of its own.
			pr, pw := io.Pipe()
			s.mode, s.pw, s.done = sinkPipe, pw, make(chan *matcher, 1)
			sub := s.rs.m.ix.newMatcher()
			go func() {
				d.decode(sub, source{r: pr, where: s.where}, s.rs.depth+1)
				io.Copy(io.Discard, pr)
				s.done <- sub
			}()
		}
	}
	switch s.mode {
	case sinkRaw:
		s.raw.feed(s.buf)
	case sinkPipe:
		s.pw.Write(s.buf)
	}
	s.buf = s.buf[:0]
}

func (s *b64Sink) end() {
	s.flush()
	switch s.mode {
	case sinkRaw:
		s.raw.end()
	case sinkPipe:
		s.pw.Close()
		s.rs.m.absorb(<-s.done)
	case sinkBuffer:
		if !s.spend(len(s.buf) - s.spent) {
			return
		}
		d := s.rs.d
		d.decode(s.rs.m, source{r: bytes.NewReader(s.buf), ra: bytes.NewReader(s.buf), size: int64(len(s.buf)), where: s.where}, s.rs.depth+1)
	}
	s.buf = nil
}
