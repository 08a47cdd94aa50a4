package pipeline

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"path"
	"sync"
	"time"

	"github.com/ptb-dev/ptb/internal/rundir"
)

// lineLog writes output.log: every line of the agent's stdout and stderr,
// prefixed with the time its first byte arrived and the stream name:
//
//	2026-11-27T08:01:02.123456789Z stdout <the line's raw bytes>
//
// Bytes are kept as they came (invalid UTF-8 included). A last line
// without a newline at exit is tagged "stdout~". A line longer than
// maxLine keeps its head (maxLine/2 bytes, tagged "stdout+": continued on
// the next record of that stream) and its tail (the last maxLine/2 bytes),
// with a "ptb" record between them giving its length and sha256. Past
// maxBytes of output.log, records are dropped and counted; finish writes
// the count.
type lineLog struct {
	mu       sync.Mutex
	w        io.Writer
	now      func() time.Time
	maxLine  int64 // 0: DefaultTraceMaxLine
	maxBytes int64 // 0: no cap
	written  int64
	dropped  int64 // records dropped over maxBytes
	dropB    int64
	cuts     []Truncation
}

func (l *lineLog) stream(name string) *streamWriter {
	max := l.maxLine
	if max <= 0 {
		max = defaultMaxLine
	}
	return &streamWriter{log: l, name: name, half: max / 2, hash: sha256.New(), tail: ring{size: int(max / 2)}}
}

// defaultMaxLine is the line cap when none is set (job.DefaultTraceMaxLine).
const defaultMaxLine = 64 << 20

func (l *lineLog) write(ts time.Time, tag string, line []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var hdr [64]byte
	h := ts.UTC().AppendFormat(hdr[:0], "2006-01-02T15:04:05.000000000Z")
	h = append(h, ' ')
	h = append(h, tag...)
	h = append(h, ' ')
	n := int64(len(h) + len(line) + 1)
	if l.maxBytes > 0 && l.written+n > l.maxBytes {
		l.dropped++
		l.dropB += n
		return
	}
	l.written += n
	l.w.Write(h)
	l.w.Write(line)
	l.w.Write([]byte{'\n'})
}

// finish records, as a last "ptb" record, how much was dropped over the
// cap (written even past the cap, so the log says it was cut).
func (l *lineLog) finish() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dropped == 0 {
		return
	}
	msg := fmt.Sprintf("%s ptb output.log truncated: %d records (%d bytes) dropped after the cap of %d bytes (job bounds.trace_max_bytes)\n",
		l.now().UTC().Format("2006-01-02T15:04:05.000000000Z"), l.dropped, l.dropB, l.maxBytes)
	l.w.Write([]byte(msg))
	l.cuts = append(l.cuts, Truncation{Kind: "trace", File: path.Base(rundir.TraceLog), Bytes: l.written + l.dropB, KeptHead: l.written})
	l.dropped, l.dropB = 0, 0
}

type streamWriter struct {
	log     *lineLog
	name    string
	half    int64
	buf     []byte // the line's head, up to half bytes
	n       int64  // the line's length so far
	hash    hash.Hash
	tail    ring // the bytes after the head
	started time.Time
}

func (s *streamWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if s.n == 0 {
			s.started = s.log.now()
		}
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		s.add(chunk)
		if i < 0 {
			break
		}
		s.end(s.name)
		p = p[i+1:]
	}
	return n, nil
}

func (s *streamWriter) add(b []byte) {
	s.hash.Write(b)
	if k := min(s.half-int64(len(s.buf)), int64(len(b))); k > 0 {
		s.buf = append(s.buf, b[:k]...)
		b = b[k:]
		s.n += k
	}
	if len(b) > 0 {
		s.tail.Write(b)
		s.n += int64(len(b))
	}
}

// end writes the line: whole when it fits in maxLine, else head, a "ptb"
// record and tail.
func (s *streamWriter) end(tag string) {
	if !s.tail.wrapped() {
		s.log.write(s.started, tag, append(s.buf, s.tail.Bytes()...))
	} else {
		t := s.tail.Bytes()
		sum := hex.EncodeToString(s.hash.Sum(nil))
		s.log.write(s.started, s.name+"+", s.buf)
		s.log.write(s.started, "ptb", fmt.Appendf(nil, "%s line truncated: %d bytes, sha256 %s; kept the first %d and the last %d (job bounds.trace_max_line)", s.name, s.n, sum, len(s.buf), len(t)))
		s.log.write(s.started, tag, t)
		s.log.mu.Lock()
		s.log.cuts = append(s.log.cuts, Truncation{Kind: "line", File: path.Base(rundir.TraceLog), Stream: s.name, Bytes: s.n, KeptHead: int64(len(s.buf)), KeptTail: int64(len(t)), SHA256: sum})
		s.log.mu.Unlock()
	}
	s.buf = s.buf[:0]
	s.n = 0
	s.hash.Reset()
	s.tail.reset()
}

// Close flushes a last line that had no newline.
func (s *streamWriter) Close() error {
	if s.n > 0 {
		s.end(s.name + "~")
	}
	return nil
}

// ring keeps the last size bytes written to it.
type ring struct {
	size int
	buf  []byte
	pos  int
	full bool
}

func (r *ring) Write(p []byte) {
	if r.size <= 0 {
		r.full = r.full || len(p) > 0
		return
	}
	if !r.full {
		k := min(r.size-len(r.buf), len(p))
		r.buf = append(r.buf, p[:k]...)
		p = p[k:]
		if len(p) == 0 {
			return
		}
		r.full = true
	}
	if len(p) >= r.size {
		copy(r.buf, p[len(p)-r.size:])
		r.pos = 0
		return
	}
	k := copy(r.buf[r.pos:], p)
	if k < len(p) {
		copy(r.buf, p[k:])
	}
	r.pos = (r.pos + len(p)) % r.size
}

// wrapped reports whether bytes were lost: more than size were written.
func (r *ring) wrapped() bool { return r.full }

// Bytes returns the kept bytes in order (a copy when wrapped).
func (r *ring) Bytes() []byte {
	if !r.full {
		return r.buf
	}
	out := make([]byte, 0, len(r.buf))
	out = append(out, r.buf[r.pos:]...)
	return append(out, r.buf[:r.pos]...)
}

func (r *ring) reset() { r.buf, r.pos, r.full = r.buf[:0], 0, false }

// Truncation is one cut made in the trace (trace/truncation.json).
type Truncation struct {
	Segment int    `json:"segment"`
	File    string `json:"file"`             // agent.jsonl | output.log
	Kind    string `json:"kind"`             // line | trace
	Stream  string `json:"stream,omitempty"` // stdout | stderr (output.log lines)
	// Line is the 1-based number of the cut line in the segment's stdout.
	Line int64 `json:"line,omitempty"`
	// Bytes is the length of the line, or of everything the segment
	// produced; KeptHead and KeptTail how much of it was written.
	Bytes    int64 `json:"bytes"`
	KeptHead int64 `json:"kept_head"`
	KeptTail int64 `json:"kept_tail"`
	// SHA256 is of everything after the kept head: the cut middle and the
	// kept tail (hashing only there keeps the common case, no cut, free).
	SHA256 string `json:"sha256,omitempty"`
}

// rawTrace writes the raw trace (agent.jsonl): the agent's stdout byte for
// byte while under the job's bounds. A line longer than maxLine keeps its
// first and last maxLine/2 bytes, followed by a ptb.truncated marker line
// with its length and the sha256 of everything after the kept head. Past
// maxBytes (counting what earlier segments wrote), only the last tailKeep
// bytes are kept, written at Close after a ptb.truncated marker with the
// sha256 of everything after the head. Every cut is listed in cuts.
type rawTrace struct {
	w        *bufio.Writer
	seg      int
	half     int64
	budget   int64 // head bytes this segment may still write
	tailMode bool
	midLine  bool // tail mode began inside a line
	tail     ring
	last     byte
	headOut  int64
	all      hash.Hash
	in       int64
	// the current line
	line  int64
	n     int64
	head  int64
	lhash hash.Hash
	ltail ring
	cuts  []Truncation
}

// newRawTrace caps w for segment seg; already is what the file holds.
func newRawTrace(w io.Writer, seg int, maxLine, maxBytes, already int64) *rawTrace {
	if maxLine <= 0 {
		maxLine = defaultMaxLine
	}
	keep := min(maxBytes/4, 16<<20)
	budget := int64(1<<62) - already
	if maxBytes > 0 {
		budget = maxBytes - keep - 4096 - already
	}
	return &rawTrace{w: bufio.NewWriterSize(w, 64<<10), seg: seg, half: maxLine / 2, budget: budget, tail: ring{size: int(keep)},
		all: sha256.New(), lhash: sha256.New(), ltail: ring{size: int(maxLine / 2)}, last: '\n'}
}

func (r *rawTrace) Write(p []byte) (int, error) {
	n := len(p)
	r.in += int64(n)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i >= 0 && r.n == r.head && r.head+int64(i) <= r.half {
			// Fast path: a line that ends here within the cap goes out
			// whole, newline included.
			r.emit(p[:i+1])
			r.line++
			r.n, r.head = 0, 0
			p = p[i+1:]
			continue
		}
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		r.add(chunk)
		if i < 0 {
			break
		}
		r.endLine(true)
		p = p[i+1:]
	}
	return n, r.w.Flush()
}

func (r *rawTrace) add(b []byte) {
	if k := min(r.half-r.head, int64(len(b))); k > 0 {
		r.emit(b[:k])
		r.head += k
		r.n += k
		b = b[k:]
	}
	if len(b) > 0 {
		r.lhash.Write(b)
		r.ltail.Write(b)
		r.n += int64(len(b))
	}
}

func (r *rawTrace) endLine(newline bool) {
	r.line++
	t := r.ltail.Bytes()
	r.emit(t)
	if newline {
		r.emit([]byte{'\n'})
	}
	if r.ltail.wrapped() {
		c := Truncation{Segment: r.seg, File: path.Base(rundir.TraceRaw), Kind: "line", Line: r.line, Bytes: r.n, KeptHead: r.head, KeptTail: int64(len(t)), SHA256: hex.EncodeToString(r.lhash.Sum(nil))}
		r.cuts = append(r.cuts, c)
		if !newline {
			r.emit([]byte{'\n'})
		}
		r.emit(marker(c))
	}
	r.n, r.head = 0, 0
	r.lhash.Reset()
	r.ltail.reset()
}

func marker(c Truncation) []byte {
	b, _ := json.Marshal(map[string]any{"type": "ptb.truncated", "kind": c.Kind, "line": c.Line, "bytes": c.Bytes,
		"kept_head": c.KeptHead, "kept_tail": c.KeptTail, "sha256": c.SHA256})
	return append(b, '\n')
}

func (r *rawTrace) emit(b []byte) {
	if len(b) == 0 {
		return
	}
	if !r.tailMode && int64(len(b)) <= r.budget {
		r.w.Write(b)
		r.budget -= int64(len(b))
		r.headOut += int64(len(b))
		r.last = b[len(b)-1]
		return
	}
	if !r.tailMode {
		r.tailMode, r.midLine = true, r.last != '\n'
	}
	r.all.Write(b)
	r.tail.Write(b)
}

// Close writes the last line (without the newline it lacked) and, when the
// trace went over its size cap, the marker and the kept tail.
func (r *rawTrace) Close() error {
	if r.n > 0 {
		r.endLine(false)
	}
	if r.tailMode {
		t := r.tail.Bytes()
		if r.tail.wrapped() || r.midLine {
			if i := bytes.IndexByte(t, '\n'); i >= 0 {
				t = t[i+1:]
			} else {
				t = nil
			}
		}
		c := Truncation{Segment: r.seg, File: path.Base(rundir.TraceRaw), Kind: "trace", Bytes: r.in, KeptHead: r.headOut, KeptTail: int64(len(t)), SHA256: hex.EncodeToString(r.all.Sum(nil))}
		r.cuts = append(r.cuts, c)
		if r.last != '\n' {
			r.w.Write([]byte{'\n'})
		}
		r.w.Write(marker(c))
		r.w.Write(t)
		r.tailMode = false
	}
	return r.w.Flush()
}

// recordTruncation appends a segment's cuts to rundir.TruncationFile.
func (x *run) recordTruncation(seg int, raw, log []Truncation) {
	if len(raw)+len(log) == 0 {
		return
	}
	var all []Truncation
	x.dir.ReadJSON(rundir.TruncationFile, &all)
	for _, c := range append(append([]Truncation{}, raw...), log...) {
		c.Segment = seg
		all = append(all, c)
	}
	if err := x.dir.WriteJSON(rundir.TruncationFile, all); err != nil {
		x.log.Warn("record trace truncation", "err", err)
	}
}
