package audit

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"compress/zlib"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// ScanLimits bound what the contamination scan decodes from one file
// (docs/AUDIT.md). Reaching a bound makes the file's result unverified,
// never clean.
type ScanLimits struct {
	// Depth is how many decoders may be nested (a base64 run in a gzip
	// stream in a tar member is depth 3).
	Depth int
	// Ratio, MinBudget and MaxBudget bound the bytes all decoders together
	// may produce from one file: Ratio times its size, at least MinBudget,
	// at most MaxBudget.
	Ratio                int64
	MinBudget, MaxBudget int64
	// Buffer is the largest nested zip or parquet member read into memory
	// (both need random access; a top-level file is read in place).
	Buffer int64
	// DictCap is the largest xz/lzma dictionary or zstd window accepted.
	DictCap int64
}

// DefaultScanLimits are the bounds Scan uses.
var DefaultScanLimits = ScanLimits{Depth: 8, Ratio: 100, MinBudget: 256 << 20, MaxBudget: 16 << 30, Buffer: 256 << 20, DictCap: 256 << 20}

// minB64Run is the shortest run of base64 characters the scan decodes: 48
// bytes, about one n-gram of text. Newlines inside a run do not end it.
const minB64Run = 64

// errBudget ends a file's decoding when its expansion budget is spent.
var errBudget = errors.New("expansion bound reached")

// fileDecode is the decoding state of one scanned file.
type fileDecode struct {
	ctx    context.Context // ends the decoding (the audit's stage deadline)
	ix     *Index
	lim    ScanLimits
	budget int64
	used   *atomic.Int64 // bytes decoded from the file, shared with child()ren
	mu     sync.Mutex
	layers map[string]bool // decoded streams that matched test n-grams
	issues []string        // why the file's result is unverified
	note   string          // how the file was read, when it matters
}

func newFileDecode(ctx context.Context, ix *Index, lim ScanLimits, size int64) *fileDecode {
	b := size * lim.Ratio
	if size > 0 && b/size != lim.Ratio { // overflow
		b = lim.MaxBudget
	}
	b = max(b, lim.MinBudget)
	b = min(b, lim.MaxBudget)
	return &fileDecode{ctx: ctx, ix: ix, lim: lim, budget: b, used: new(atomic.Int64), layers: map[string]bool{}}
}

// child returns a decoding state for a part of d's file (splitRaw) with
// layers and issues of its own (adopt takes them in) and d's budget.
func (d *fileDecode) child() *fileDecode {
	return &fileDecode{ctx: d.ctx, ix: d.ix, lim: d.lim, budget: d.budget, used: d.used, layers: map[string]bool{}}
}

func (d *fileDecode) layer(name string) {
	d.mu.Lock()
	d.layers[name] = true
	d.mu.Unlock()
}

func (d *fileDecode) issue(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.issues) < 8 {
		d.issues = append(d.issues, fmt.Sprintf(format, args...))
	}
}

// layerList returns the decoded streams that matched, sorted.
func (d *fileDecode) layerList() []string {
	var out []string
	for l := range d.layers {
		out = append(out, l)
	}
	slices.Sort(out)
	return out
}

// budgeted counts the bytes a decoder produces against the file's budget.
type budgeted struct {
	r io.Reader
	d *fileDecode
	n int64 // bytes produced by this decoder
}

func (b *budgeted) Read(p []byte) (int, error) {
	if err := b.d.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.d.used.Add(int64(n)) > b.d.budget {
		return n, errBudget
	}
	return n, err
}

// format is what a stream holds, judged by its first bytes.
type format int

const (
	fmtRaw format = iota
	fmtGzip
	fmtZlib
	fmtBzip2
	fmtXZ
	fmtLZMA
	fmtZstd
	fmtLZ4
	fmtTar
	fmtZip
	fmtParquet
	fmtGitPack
	fmtUnsupported // 7z, rar: detected, not decoded
)

var formatNames = [...]string{"raw", "gzip", "zlib", "bzip2", "xz", "lzma", "zstd", "lz4", "tar", "zip", "parquet", "git-pack", "unsupported"}

func (f format) String() string { return formatNames[f] }

// sniffFormat classifies a stream by its first bytes (up to 512), whatever
// its name.
func sniffFormat(h []byte) format {
	has := func(p string) bool { return bytes.HasPrefix(h, []byte(p)) }
	switch {
	case has("\x1f\x8b\x08"):
		return fmtGzip
	case has("\xfd7zXZ\x00"):
		return fmtXZ
	case has("BZh") && len(h) >= 10 && h[3] >= '1' && h[3] <= '9' && (string(h[4:10]) == "\x31\x41\x59\x26\x53\x59" || string(h[4:10]) == "\x17\x72\x45\x38\x50\x90"):
		return fmtBzip2
	case has("\x28\xb5\x2f\xfd"):
		return fmtZstd
	case has("\x04\x22\x4d\x18"):
		return fmtLZ4
	case has("PK\x03\x04") || has("PK\x05\x06"):
		return fmtZip
	case has("PAR1"):
		return fmtParquet
	case has("PACK\x00\x00\x00\x02") || has("PACK\x00\x00\x00\x03"):
		return fmtGitPack
	case has("7z\xbc\xaf\x27\x1c") || has("Rar!\x1a\x07"):
		return fmtUnsupported
	case len(h) >= 512 && string(h[257:262]) == "ustar":
		return fmtTar
	case len(h) >= 2 && h[0]&0x0f == 8 && h[0]>>4 <= 7 && (uint16(h[0])<<8|uint16(h[1]))%31 == 0 && h[1]&0x20 == 0:
		return fmtZlib // deflate, window <= 32 KiB, header checksum, no preset dictionary
	case len(h) >= 13 && h[0] == 0x5d && h[1] == 0 && binary.LittleEndian.Uint32(h[1:5]) >= 1<<12 &&
		(binary.LittleEndian.Uint64(h[5:13]) == 1<<64-1 || binary.LittleEndian.Uint64(h[5:13]) < 1<<40):
		return fmtLZMA // .lzma: lc=3 lp=0 pb=2, a dictionary size, a length or "unknown"
	}
	return fmtRaw
}

// source is a stream to decode; ra and size are set when it can be read
// at random (a file on disk, a member held in memory).
type source struct {
	r     io.Reader
	ra    io.ReaderAt
	size  int64
	where string // for messages: the file, then each decoder and member
}

// decode scans src with m: a recognised format is decoded (nested up to
// the depth bound), anything else is scanned as raw bytes, with the base64
// runs in it decoded too. Whatever follows a finished format (trailing
// bytes) is scanned raw.
func (d *fileDecode) decode(m *matcher, src source, depth int) {
	br := bufio.NewReaderSize(src.r, 64<<10)
	head, _ := br.Peek(512)
	f := sniffFormat(head)
	if f != fmtRaw && depth >= d.lim.Depth {
		d.issue("%s: %s nested deeper than %d decoders, not decoded", src.where, f, d.lim.Depth)
		return
	}
	var err error
	switch f {
	case fmtRaw:
		err = d.raw(m, br, depth, src.where)
	case fmtUnsupported:
		d.issue("%s: 7z or rar archive: not decoded (unpack it to scan it)", src.where)
		return
	case fmtTar:
		err = d.tar(m, br, depth, src.where)
	case fmtZip, fmtParquet:
		ra, size := src.ra, src.size
		if ra == nil {
			var buf []byte
			buf, err = io.ReadAll(io.LimitReader(br, d.lim.Buffer+1))
			if err != nil {
				break
			}
			if int64(len(buf)) > d.lim.Buffer {
				d.issue("%s: %s member larger than %d bytes inside another container: not decoded", src.where, f, d.lim.Buffer)
				return
			}
			ra, size = bytes.NewReader(buf), int64(len(buf))
		}
		if f == fmtZip {
			err = d.zip(m, ra, size, depth, src.where)
		} else {
			err = d.parquet(m, ra, size, src.where)
		}
		if err == nil && src.ra != nil {
			return // read in place: the rest of the file was not consumed
		}
	case fmtGitPack:
		err = d.gitPack(m, br, depth, src.where)
	default:
		err = d.stream(m, br, f, depth, src.where)
	}
	if errors.Is(err, errBudget) {
		d.issue("%s: decoding stopped at %d decoded bytes (bound %d bytes for this file: %dx its size, at least %d, at most %d)",
			src.where, d.used.Load(), d.budget, d.lim.Ratio, d.lim.MinBudget, d.lim.MaxBudget)
		return
	}
	if err != nil {
		d.issue("%s: %v", src.where, err)
	}
	// Trailing bytes after a finished format.
	if f != fmtRaw {
		if _, perr := br.Peek(1); perr == nil {
			if err := d.raw(m, br, depth, src.where+" (trailing bytes)"); err != nil && !errors.Is(err, errBudget) {
				d.issue("%s (trailing bytes): %v", src.where, err)
			}
		}
	}
}

// stream decodes one compressed stream (gzip members back to back, xz,
// bzip2, zstd, lz4 or zlib) and decodes what it holds. When the decoder
// fails within the first recordMax bytes of input, the stream is also
// scanned raw from its first byte (the bytes the decoder consumed are
// replayed): data that merely starts like a format is read all the same.
// The failure is reported unless the format's magic bytes are weak (zlib's
// two, lzma's header), where text can start that way by chance.
func (d *fileDecode) stream(m *matcher, br *bufio.Reader, f format, depth int, where string) error {
	rec := &recorder{br: br}
	_, err := d.streamFrom(m, rec, f, depth, where)
	if err == nil || errors.Is(err, errBudget) || rec.over {
		return err
	}
	if rerr := d.raw(m, bufio.NewReaderSize(io.MultiReader(bytes.NewReader(rec.buf), br), 64<<10), depth, where); rerr != nil {
		return rerr
	}
	if f == fmtZlib || f == fmtLZMA {
		return nil
	}
	return fmt.Errorf("%s header, but not decodable (scanned as raw bytes): %w", f, err)
}

func (d *fileDecode) streamFrom(m *matcher, rec *recorder, f format, depth int, where string) (int64, error) {
	var r io.Reader
	var closer func()
	switch f {
	case fmtGzip:
		zr, err := gzip.NewReader(rec)
		if err != nil {
			return 0, err
		}
		var total int64
		for i := 0; ; i++ {
			zr.Multistream(false)
			name := where + " > gzip"
			if i > 0 {
				name = fmt.Sprintf("%s > gzip member %d", where, i+1)
			}
			n, err := d.sub(m, zr, f, depth, name)
			total += n
			if err != nil {
				return total, err
			}
			if h, _ := rec.br.Peek(3); !bytes.Equal(h, []byte("\x1f\x8b\x08")) {
				return total, nil
			}
			if err := zr.Reset(rec); err != nil {
				return total, fmt.Errorf("gzip member %d: %w", i+2, err)
			}
		}
	case fmtZlib:
		zr, err := zlib.NewReader(rec)
		if err != nil {
			return 0, err
		}
		r, closer = zr, func() { zr.Close() }
	case fmtBzip2:
		r = bzip2.NewReader(rec)
	case fmtXZ:
		xr, err := xz.ReaderConfig{DictCap: 1 << 20}.NewReader(rec)
		if err != nil {
			return 0, err
		}
		r = xr
	case fmtLZMA:
		if dc := binary.LittleEndian.Uint32(mustPeek(rec.br, 5)[1:5]); int64(dc) > d.lim.DictCap {
			return 0, fmt.Errorf("lzma dictionary of %d bytes exceeds the bound of %d", dc, d.lim.DictCap)
		}
		lr, err := lzma.ReaderConfig{DictCap: int(d.lim.DictCap)}.NewReader(rec)
		if err != nil {
			return 0, err
		}
		r = lr
	case fmtZstd:
		zr, err := zstd.NewReader(rec, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(uint64(d.lim.DictCap)), zstd.WithDecoderMaxMemory(uint64(d.budget)))
		if err != nil {
			return 0, err
		}
		r, closer = zr, zr.Close
	case fmtLZ4:
		r = lz4.NewReader(rec)
	}
	if closer != nil {
		defer closer()
	}
	return d.sub(m, r, f, depth, where+" > "+f.String())
}

// sub decodes the output of decoder f read from r, counted against the
// budget, and returns how many bytes the decoder produced.
func (d *fileDecode) sub(m *matcher, r io.Reader, f format, depth int, where string) (int64, error) {
	b := &budgeted{r: r, d: d}
	er := &errReader{r: b}
	d.decode(m, source{r: er, where: where}, depth+1)
	io.Copy(io.Discard, er) // what decode left (it stops at a bound)
	if er.err != nil && !errors.Is(er.err, io.EOF) {
		if errors.Is(er.err, errBudget) {
			return b.n, errBudget
		}
		if b.n == 0 {
			return 0, er.err
		}
		return b.n, fmt.Errorf("%s: corrupt after %d decoded bytes: %w", f, b.n, er.err)
	}
	return b.n, nil
}

// recordMax is how many bytes of a stream's start are kept to replay it
// as raw bytes if its decoder fails at once.
const recordMax = 64 << 10

// recorder reads through br (as an io.ByteReader too, so decoders do not
// read ahead of their stream's end) and keeps the first recordMax bytes.
type recorder struct {
	br   *bufio.Reader
	buf  []byte
	over bool
}

func (r *recorder) keep(p []byte) {
	if r.over {
		return
	}
	if len(r.buf)+len(p) > recordMax {
		r.over, r.buf = true, nil
		return
	}
	r.buf = append(r.buf, p...)
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.br.Read(p)
	r.keep(p[:n])
	return n, err
}

func (r *recorder) ReadByte() (byte, error) {
	c, err := r.br.ReadByte()
	if err == nil {
		r.keep([]byte{c})
	}
	return c, err
}

func mustPeek(br *bufio.Reader, n int) []byte {
	h, _ := br.Peek(n)
	if len(h) < n {
		h = append(h, make([]byte, n-len(h))...)
	}
	return h
}

// errReader remembers the first error other than io.EOF that its reader
// returned, so a decoder error is not mistaken for the end of the stream
// by whoever reads it.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, io.EOF
	}
	n, err := e.r.Read(p)
	if err != nil {
		e.err = err
		if !errors.Is(err, io.EOF) {
			// Present it as the end of the stream to the consumer; the
			// caller reports e.err.
			return n, io.EOF
		}
	}
	return n, err
}

func (d *fileDecode) tar(m *matcher, br *bufio.Reader, depth int, where string) error {
	tr := tar.NewReader(br)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tar: %w", err)
		}
		if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeRegA {
			continue
		}
		er := &errReader{r: tr}
		d.decode(m, source{r: er, where: where + " > tar:" + h.Name}, depth+1)
		if er.err != nil && !errors.Is(er.err, io.EOF) {
			if errors.Is(er.err, errBudget) {
				return errBudget
			}
			return fmt.Errorf("tar member %s: %w", h.Name, er.err)
		}
	}
}

func (d *fileDecode) zip(m *matcher, ra io.ReaderAt, size int64, depth int, where string) error {
	zr, err := zip.NewReader(ra, size)
	if err != nil {
		return fmt.Errorf("zip: %w", err)
	}
	zr.RegisterDecompressor(12, func(r io.Reader) io.ReadCloser { return io.NopCloser(bzip2.NewReader(r)) })
	zr.RegisterDecompressor(93, func(r io.Reader) io.ReadCloser {
		z, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(uint64(d.lim.DictCap)))
		if err != nil {
			return io.NopCloser(&errReader{err: err})
		}
		return z.IOReadCloser()
	})
	for _, f := range zr.File {
		if f.FileInfo().IsDir() {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			d.issue("%s > zip:%s: %v", where, f.Name, err)
			continue
		}
		b := &budgeted{r: rc, d: d}
		er := &errReader{r: b}
		d.decode(m, source{r: er, where: where + " > zip:" + f.Name}, depth+1)
		rc.Close()
		if er.err != nil && !errors.Is(er.err, io.EOF) {
			if errors.Is(er.err, errBudget) {
				return errBudget
			}
			d.issue("%s > zip:%s: %v", where, f.Name, er.err)
		}
	}
	return nil
}

// gitPack reads a git pack file: each object's zlib stream in turn (deltas
// included: the text they insert is literal). Objects are scanned as raw
// bytes, or decoded when they hold a format.
func (d *fileDecode) gitPack(m *matcher, br *bufio.Reader, depth int, where string) error {
	hdr := make([]byte, 12)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return fmt.Errorf("git pack header: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[8:])
	for i := uint32(0); i < n; i++ {
		c, err := br.ReadByte()
		if err != nil {
			return fmt.Errorf("git pack object %d: %w", i, err)
		}
		typ := c >> 4 & 7
		for c&0x80 != 0 {
			if c, err = br.ReadByte(); err != nil {
				return fmt.Errorf("git pack object %d: %w", i, err)
			}
		}
		switch typ {
		case 6: // OFS_DELTA: a base offset
			for {
				if c, err = br.ReadByte(); err != nil {
					return fmt.Errorf("git pack object %d: %w", i, err)
				}
				if c&0x80 == 0 {
					break
				}
			}
		case 7: // REF_DELTA: a base object name
			if _, err := br.Discard(20); err != nil {
				return fmt.Errorf("git pack object %d: %w", i, err)
			}
		}
		// zlib reads through br as an io.ByteReader: it stops at its end.
		zr, err := zlib.NewReader(br)
		if err != nil {
			return fmt.Errorf("git pack object %d: %w", i, err)
		}
		b := &budgeted{r: zr, d: d}
		er := &errReader{r: b}
		d.decode(m, source{r: er, where: fmt.Sprintf("%s > git object %d", where, i)}, depth+1)
		if _, err := io.Copy(io.Discard, er); err != nil {
			return err
		}
		if er.err != nil && !errors.Is(er.err, io.EOF) {
			if errors.Is(er.err, errBudget) {
				return errBudget
			}
			return fmt.Errorf("git pack object %d: %w", i, er.err)
		}
	}
	_, err := io.Copy(io.Discard, br) // the trailing checksum
	return err
}

// raw scans a stream's bytes as they are, and decodes the base64 runs in
// them. A git loose object's header ("blob 123\0") is skipped so what
// follows is classified.
func (d *fileDecode) raw(m *matcher, br *bufio.Reader, depth int, where string) error {
	if h, _ := br.Peek(32); isGitObjectHeader(h) {
		i := bytes.IndexByte(h, 0)
		br.Discard(i + 1)
		head, _ := br.Peek(512)
		if f := sniffFormat(head); f != fmtRaw {
			d.decode(m, source{r: br, where: where + " > git object"}, depth)
			return nil
		}
	}
	// UTF-16 and UTF-32 need no decoding: the tokenizer skips NUL bytes.
	rs := d.newRawScanner(m, depth, where)
	bp := rawBufs.Get().(*[]byte)
	defer rawBufs.Put(bp)
	buf := *bp
	for {
		n, err := br.Read(buf)
		rs.feed(buf[:n])
		if errors.Is(err, io.EOF) {
			rs.end()
			return nil
		}
		if err != nil {
			rs.end()
			return err
		}
	}
}

// rawBufs holds read buffers for raw scanning: an archive of many small
// members reuses them instead of allocating one per member.
var rawBufs = sync.Pool{New: func() any { b := make([]byte, 128<<10); return &b }}

func isGitObjectHeader(h []byte) bool {
	for _, p := range []string{"blob ", "tree ", "commit ", "tag "} {
		if bytes.HasPrefix(h, []byte(p)) {
			i := bytes.IndexByte(h, 0)
			if i <= len(p) {
				return false
			}
			for _, c := range h[len(p):i] {
				if c < '0' || c > '9' {
					return false
				}
			}
			return true
		}
	}
	return false
}

// parquet feeds every byte-array value of a parquet file, one value at a
// time, page by page; each value is a document of its own.
func (d *fileDecode) parquet(m *matcher, ra io.ReaderAt, size int64, where string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("parquet: %v", r)
		}
	}()
	pf, err := parquet.OpenFile(ra, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	fd := m.newFeeder()
	defer func() {
		if fd.hits > 0 {
			d.layer(where + " > parquet")
		}
	}()
	vals := make([]parquet.Value, 256)
	for _, rg := range pf.RowGroups() {
		for _, cc := range rg.ColumnChunks() {
			if cc.Type().Kind() != parquet.ByteArray {
				continue
			}
			if err := d.parquetColumn(fd, cc, vals); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *fileDecode) parquetColumn(fd *feeder, cc parquet.ColumnChunk, vals []parquet.Value) error {
	pages := cc.Pages()
	defer pages.Close()
	for {
		if err := d.ctx.Err(); err != nil {
			return err
		}
		p, err := pages.ReadPage()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("parquet: %w", err)
		}
		vr := p.Values()
		for {
			n, err := vr.ReadValues(vals)
			for _, v := range vals[:n] {
				if !v.IsNull() {
					b := v.ByteArray()
					if d.used.Add(int64(len(b))) > d.budget {
						parquet.Release(p)
						return errBudget
					}
					fd.feed(b)
					fd.reset()
				}
			}
			if errors.Is(err, io.EOF) || n == 0 && err == nil {
				break
			}
			if err != nil {
				parquet.Release(p)
				return fmt.Errorf("parquet: %w", err)
			}
		}
		parquet.Release(p)
	}
}
