package trace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
)

// StreamPipelined is Stream in two stages on two goroutines, for a caller
// that has a second core to spare (`ptb trace render`): a reading stage
// reads r in large blocks, splits them into lines and, for the formats
// with a scanner (gemini, opencode), scans each line ahead of the decoder;
// the calling goroutine decodes the lines in order and calls h, exactly as
// Stream does: the same events in the same order, the same NonJSON calls,
// the same errors (TestPipelinedMatchesStream). Blocks pass through a small
// ring (pipeBlocks of about pipeBlock bytes), so memory stays bounded at any
// trace size; a line longer than a block grows its block.
//
// h runs on the calling goroutine. r is read by the reading stage, which
// has stopped when StreamPipelined returns.
func StreamPipelined(ctx context.Context, r io.Reader, agent string, h Handler) (string, error) {
	return streamPipelined(ctx, r, agent, h, scanAdaptive, pipeBlock, pipeLines)
}

// streamPipelined is StreamPipelined with a scan policy and blocks of about
// blockSize bytes and at most maxLines lines (tests make them small).
func streamPipelined(ctx context.Context, r io.Reader, agent string, h Handler, policy, blockSize, maxLines int) (string, error) {
	src := r
	var pending [][]byte
	if agent == "" {
		lr := NewLineReader(r)
		var err error
		if agent, pending, err = detectStream(lr, agent); err != nil {
			return "", err
		}
		// the rest of the trace: what lr buffered past the lines it
		// returned, then r
		src = lr.br
	}
	d, err := startDecoder(agent, h, pending)
	if d == nil {
		return "", err
	}
	if err != nil {
		return agent, err
	}
	if ctx.Err() != nil {
		return agent, ctx.Err()
	}

	p := &pipe{
		src:    src,
		root:   d.scanRoot,
		slots:  d.nslots,
		policy: policy,
		block:  blockSize,
		lines:  maxLines,
		free:   make(chan *block, pipeBlocks),
		full:   make(chan *block, pipeBlocks),
		done:   make(chan struct{}),
	}
	if d.fast == nil {
		p.root = nil
	}
	for range pipeBlocks {
		p.free <- new(block)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.read()
	}()
	defer func() {
		close(p.done)
		wg.Wait()
	}()

	n := 0
	for b := range p.full {
		for i := range b.lines {
			if n++; n&1023 == 0 && ctx.Err() != nil {
				return agent, ctx.Err()
			}
			l := &b.lines[i]
			if l.scanned {
				d.preSet, d.preOK = true, l.ok
				if l.ok {
					d.preVals = p.expand(d.preVals, b.vals[l.vals:l.valsEnd])
				}
			}
			err := d.feed(h, b.buf[l.start:l.end])
			d.preSet = false
			if err != nil {
				return agent, err
			}
		}
		if b.err != nil {
			return agent, fmt.Errorf("read trace: %w", b.err)
		}
		p.free <- b // never blocks: the ring holds pipeBlocks
	}
	return agent, nil
}

const (
	// pipeBlock is how many bytes the reading stage reads into a block.
	pipeBlock = 256 << 10
	// pipeBlocks is how many blocks are in flight.
	pipeBlocks = 4
	// pipeLines is the most lines in a block: short lines would
	// otherwise make a block's scan records many times its bytes.
	pipeLines = 2048
)

// When the reading stage scans a block's lines.
const (
	scanAdaptive = iota // when the decoding stage has blocks waiting
	scanAlways
	scanNever
)

// block is a run of whole lines read by the reading stage.
type block struct {
	buf   []byte
	lines []blockLine
	vals  []pval // the values the scan recorded
	err   error  // a read error after the lines (never io.EOF)
}

// blockLine is a non-blank line of a block, without its "\n" or "\r\n".
type blockLine struct {
	start, end    int
	vals, valsEnd int  // with ok: its recorded values, block.vals[vals:valsEnd]
	scanned       bool // the reading stage scanned it
	ok            bool // the scan accepted the line
}

// pval is a value the scan of a line recorded (jval) and its slot, in 12
// bytes instead of a slot array: a line records a few of its slots.
type pval struct {
	slot       uint16
	kind       byte
	start, end uint32
}

// expand returns the slot array of a line's recorded values, in dst.
func (p *pipe) expand(dst []jval, vals []pval) []jval {
	if cap(dst) < p.slots {
		dst = make([]jval, p.slots)
	}
	dst = dst[:p.slots]
	clear(dst)
	for _, v := range vals {
		dst[v.slot] = jval{kind: v.kind, start: int(v.start), end: int(v.end)}
	}
	return dst
}

// pipe is the reading stage: it takes blocks from free, fills them and
// sends them on full, which it closes when the trace or a read error
// ends, or when done is closed.
type pipe struct {
	src    io.Reader
	root   *scanNode // nil: no scan
	slots  int
	policy int // when to scan: scanAdaptive, scanAlways, scanNever
	block  int // bytes read into a block
	lines  int // the most lines in a block
	sc     scanner

	free chan *block
	full chan *block
	done chan struct{}
}

func (p *pipe) read() {
	defer close(p.full)
	var carry []byte // the start of the next line, in the last block sent
	var rerr error   // sticky: the read that ended the trace
	for {
		var b *block
		select {
		case b = <-p.free:
		case <-p.done:
			return
		}
		if cap(b.buf) > 4*p.block || cap(b.buf) < p.block {
			// none yet, or one grown by a long line: let it go
			b.buf = make([]byte, 0, max(p.block, len(carry)))
		}
		b.buf = append(b.buf[:0], carry...)
		b.lines, b.vals, b.err = b.lines[:0], b.vals[:0], nil
		// read while the block is less than full: a carry longer than a
		// block (lines left by the line limit) is only split
		if rerr == nil && len(b.buf) < p.block {
			rerr = p.fill(b, p.block)
		}
		// a line longer than the block: read on a block at a time, so
		// that what follows the line is less than a block
		for from := 0; rerr == nil && bytes.IndexByte(b.buf[from:], '\n') < 0; {
			from = len(b.buf)
			b.buf = slices.Grow(b.buf, p.block)
			rerr = p.fill(b, len(b.buf)+p.block)
		}
		// scan the block's lines here only while the decoding stage has
		// blocks waiting: when it waits for this stage instead, it scans
		// them itself (scanLine), so the two stages share the scanning
		// and neither waits long for the other
		scan := p.root != nil && (p.policy == scanAlways || p.policy == scanAdaptive && len(p.full) > 0)
		pos := 0
		for len(b.lines) < p.lines {
			i := bytes.IndexByte(b.buf[pos:], '\n')
			if i < 0 {
				break
			}
			p.line(b, pos, pos+i, scan)
			pos += i + 1
		}
		last := len(b.lines) < p.lines && rerr != nil
		if last {
			if errors.Is(rerr, io.EOF) {
				// a final line without a newline is a line
				p.line(b, pos, len(b.buf), scan)
			} else {
				b.err = rerr // the partial line is dropped, as LineReader does
			}
			carry = nil
		} else {
			carry = b.buf[pos:]
		}
		select {
		case p.full <- b:
		case <-p.done:
			return
		}
		if last {
			return
		}
	}
}

// fill reads into b.buf until it holds limit bytes (at most its capacity)
// or the reader fails.
func (p *pipe) fill(b *block, limit int) error {
	limit = min(limit, cap(b.buf))
	empty := 0
	for len(b.buf) < limit {
		n, err := p.src.Read(b.buf[len(b.buf):limit])
		b.buf = b.buf[:len(b.buf)+n]
		if err != nil {
			return err
		}
		if n > 0 {
			empty = 0
		} else if empty++; empty >= 100 {
			return io.ErrNoProgress // as bufio.Reader
		}
	}
	return nil
}

// line adds b.buf[start:end], a line with its "\n" cut, unless blank.
func (p *pipe) line(b *block, start, end int, scan bool) {
	line := b.buf[start:end]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		end--
		line = line[:len(line)-1]
	}
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	l := blockLine{start: start, end: end}
	if scan && uint64(len(line)) <= math.MaxUint32 {
		l.scanned = true
		if p.sc.scan(line, p.root, p.slots) {
			l.ok, l.vals = true, len(b.vals)
			for i, v := range p.sc.vals {
				if v.kind != jNone {
					b.vals = append(b.vals, pval{slot: uint16(i), kind: v.kind, start: uint32(v.start), end: uint32(v.end)})
				}
			}
			l.valsEnd = len(b.vals)
		}
	}
	b.lines = append(b.lines, l)
}
