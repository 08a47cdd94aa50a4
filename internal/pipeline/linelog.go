package pipeline

import (
	"bytes"
	"io"
	"sync"
	"time"
)

// lineLog writes output.log: every line of the agent's stdout and stderr,
// prefixed with the time its first byte arrived and the stream name:
//
//	2026-11-27T08:01:02.123456789Z stdout <the line's raw bytes>
//
// Bytes are kept as they came (invalid UTF-8 included). A line longer than
// maxLine is written in pieces; every piece but the last is tagged
// "stdout+" (continued on the next record of that stream). A last line
// without a newline at exit is tagged "stdout~".
type lineLog struct {
	mu  sync.Mutex
	w   io.Writer
	now func() time.Time
}

const maxLine = 64 << 20

func (l *lineLog) stream(name string) *streamWriter {
	return &streamWriter{log: l, name: name}
}

func (l *lineLog) write(ts time.Time, tag string, line []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var hdr [64]byte
	h := ts.UTC().AppendFormat(hdr[:0], "2006-01-02T15:04:05.000000000Z")
	h = append(h, ' ')
	h = append(h, tag...)
	h = append(h, ' ')
	l.w.Write(h)
	l.w.Write(line)
	l.w.Write([]byte{'\n'})
}

type streamWriter struct {
	log     *lineLog
	name    string
	buf     []byte
	started time.Time
}

func (s *streamWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if len(s.buf) == 0 {
			s.started = s.log.now()
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.buf = append(s.buf, p...)
			if len(s.buf) >= maxLine {
				s.log.write(s.started, s.name+"+", s.buf)
				s.buf = s.buf[:0]
			}
			break
		}
		s.buf = append(s.buf, p[:i]...)
		s.log.write(s.started, s.name, s.buf)
		s.buf = s.buf[:0]
		p = p[i+1:]
	}
	return n, nil
}

// Close flushes a last line that had no newline.
func (s *streamWriter) Close() error {
	if len(s.buf) > 0 {
		s.log.write(s.started, s.name+"~", s.buf)
		s.buf = nil
	}
	return nil
}
