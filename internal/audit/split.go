package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
)

// One large plain file is scanned by several cores at once: it is split
// into parts cut just after a space byte, and each part is scanned on a
// goroutine with a matcher of its own, in one pass over its bytes as a
// single pass scans a file: tokenised, and its base64 runs found and
// decoded. The parts' base64 runs are then numbered as a single pass
// numbers them (see adopt).
//
// A cut after a space loses nothing. After a space the tokenizer is in the
// same state whatever came before (no token open, no escape sequence
// pending: a space ends both), so the part after the cut gives the tokens
// a single pass gives there. The n-grams that span the cut (those ending
// at the next part's first n-1 tokens) come from the part before it: its
// tokenizer reads on past the cut until it has emitted them, or the file
// ends; the bytes of a token it was still in are then dropped, not ended
// (that token is the next part's). The matched n-grams are a set, so
// n-grams both parts emit count once. A space also ends a base64 run
// (it is not in either alphabet, nor one of the bytes a run skips), so
// every run lies within one part, and the run search holds no state
// across a cut.

// splitMin is the smallest part worth a goroutine of its own.
const splitMin = 16 << 20

// splitParts returns how many parts a plain file of size bytes is scanned
// in with procs cores (1: not split).
func splitParts(size int64, procs int) int {
	return int(max(1, min(int64(procs), size/splitMin)))
}

// splitRaw scans f (size bytes, read at random) in parts parts, if its
// first bytes say it is plain (raw) data; false when it is not, and
// nothing was read past its head.
func (d *fileDecode) splitRaw(ctx context.Context, m *matcher, f io.ReaderAt, size int64, name string, parts int) bool {
	head := make([]byte, 512)
	n, _ := f.ReadAt(head, 0)
	head = head[:n]
	if sniffFormat(head) != fmtRaw || isGitObjectHeader(head[:min(len(head), 32)]) {
		return false
	}
	cuts := spaceCuts(f, size, parts)
	if len(cuts) == 0 {
		return false
	}
	bounds := append(append([]int64{0}, cuts...), size)
	var wg sync.WaitGroup
	subs := make([]*matcher, len(bounds)-1)
	kids := make([]*fileDecode, len(subs))
	scanners := make([]*rawScanner, len(subs))
	for k := range subs {
		subs[k] = m.ix.newMatcher()
		kids[k] = d.child()
		rs := kids[k].newRawScanner(subs[k], 0, name)
		rs.tagRuns = true
		scanners[k] = rs
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := scanPart(ctx, rs, rs.fd, f, bounds[k], bounds[k+1], size); err != nil {
				kids[k].issue("%s: bytes %d-%d: %v", name, bounds[k], bounds[k+1], err)
			}
			rs.end()
		}()
	}
	wg.Wait()
	runs := 0
	for k, s := range subs {
		d.adopt(kids[k], name, runs)
		runs += scanners[k].runs
		m.absorb(s)
	}
	return true
}

// b64Tag marks a base64 run's number in the names a part's scanner gives
// its runs (rawScanner.tagRuns): "NAME > base64 run \x00N\x00", N counted
// from 1 in the part. No path holds a NUL byte.
const b64Tag = " > base64 run \x00"

// adopt takes in the decoded layers and issues that c, a part of the file
// name, recorded; its base64 runs follow off runs of the parts before it,
// and are renamed with their number in the whole file.
func (d *fileDecode) adopt(c *fileDecode, name string, off int) {
	rename := func(s string) string {
		rest, ok := strings.CutPrefix(s, name+b64Tag)
		if !ok {
			return s
		}
		num, tail, ok := strings.Cut(rest, "\x00")
		k, err := strconv.Atoi(num)
		if !ok || err != nil {
			return s
		}
		return name + " > base64 run " + strconv.Itoa(off+k) + tail
	}
	for l := range c.layers {
		d.layer(rename(l))
	}
	for _, is := range c.issues {
		d.issue("%s", rename(is))
	}
}

// spaceCuts returns up to parts-1 increasing offsets of f, each just after
// a space byte, near equal shares of size.
func spaceCuts(f io.ReaderAt, size int64, parts int) []int64 {
	var cuts []int64
	win := make([]byte, 64<<10)
	last := int64(0)
	for k := 1; k < parts; k++ {
		at := max(size*int64(k)/int64(parts), last)
		n, _ := f.ReadAt(win, at)
		i := bytes.IndexByte(win[:n], ' ')
		if i < 0 || at+int64(i)+1 >= size {
			continue // no space near here: this part joins the next
		}
		c := at + int64(i) + 1
		if c > last {
			cuts = append(cuts, c)
			last = c
		}
	}
	return cuts
}

// countSink counts the n-grams it passes on.
type countSink struct {
	next gramSink
	n    int
}

func (c *countSink) grams(hs []uint64) {
	c.n += len(hs)
	c.next.grams(hs)
}

// scanPart scans f's bytes [from, to) with in (a raw scanner, or the
// feeder fd alone), then reads on from to with fd's tokenizers alone until
// each has emitted the n-grams that span the cut (see above) or the file
// (size bytes) ends.
func scanPart(ctx context.Context, in interface{ feed([]byte) }, fd *feeder, f io.ReaderAt, from, to, size int64) error {
	bp := rawBufs.Get().(*[]byte)
	defer rawBufs.Put(bp)
	buf := *bp
	r := &ctxReader{ctx: ctx, r: io.NewSectionReader(f, from, to-from)}
	for {
		n, err := r.Read(buf)
		in.feed(buf[:n])
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	if to >= size {
		return nil // the last part: fd ends its tokens when it is reset
	}
	for _, t := range []*tokenizer{fd.text, fd.code} {
		if t == nil {
			continue
		}
		// n-grams ending at the next part's first n-1 tokens, of which
		// there are as many as the tokens already in t's window.
		need := min(t.count, t.n-1)
		cs := &countSink{next: t.sink}
		t.sink = cs
		off := to
		for cs.n < need {
			n, err := f.ReadAt(buf[:4<<10], off)
			t.Feed(buf[:n])
			off += int64(n)
			if errors.Is(err, io.EOF) || n == 0 {
				break // the file ends: its last token ends here too
			}
			if err != nil {
				t.sink = cs.next
				return fmt.Errorf("read past the cut at %d: %w", to, err)
			}
			if err := ctx.Err(); err != nil {
				t.sink = cs.next
				return err
			}
		}
		t.sink = cs.next
		if cs.n >= need {
			t.inTok, t.esc = false, 0 // that token is the next part's
		}
	}
	return nil
}
