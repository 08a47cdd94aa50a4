package audit

import (
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/fsutil"
)

func gsm8kIndex(t *testing.T) (*fixture, *Index) {
	t.Helper()
	f := getFixture(t)
	_, ix, err := loadIndex(context.Background(), f.sets, "gsm8k")
	if err != nil {
		t.Fatal(err)
	}
	return f, ix
}

func scanDir(t *testing.T, ix *Index, dir string, lim ScanLimits) *ScanResult {
	t.Helper()
	res, err := ScanWith(context.Background(), ix, []ScanRoot{{Label: "w", Dir: dir}}, ScanOptions{Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func nest(t *testing.T, p []byte, n int) []byte {
	for i := 0; i < n; i++ {
		p = encGzip(t, p)
	}
	return p
}

// TestScanBounds: what exceeds a bound ends as unverified with the reason
// (never clean, never unbounded), and what stays within is found.
func TestScanBounds(t *testing.T) {
	f, ix := gsm8kIndex(t)
	test := fullJSONL(f.gsm8kTest)
	small := ScanLimits{Depth: 4, Ratio: 20, MinBudget: 4 << 20, MaxBudget: 8 << 20, Buffer: 1 << 20, DictCap: 1 << 20}
	zeros := make([]byte, 64<<20)
	cases := []struct {
		name      string
		data      []byte
		lim       ScanLimits
		wantItems bool   // >= FlagItems found
		wantIssue string // "" for none
	}{
		{"gzip bomb", encGzip(t, zeros), small, false, "decoding stopped"},
		{"zip bomb", encZip(t, map[string][]byte{"a": zeros, "b": zeros}), small, false, "decoding stopped"},
		{"zstd bomb (window larger than the bound)", encZstd(t, zeros), small, false, "zstd header, but not decodable"},
		{"test set before the bomb", encTar(t, map[string][]byte{"a.txt": test, "b.gz": encGzip(t, zeros)}), small, true, "decoding stopped"},
		{"nested within the depth", nest(t, test, 3), small, true, ""},
		{"nested past the depth", nest(t, test, 5), small, false, "nested deeper than 4"},
		{"base64 nested past the depth", encBase64(encBase64(encBase64(encBase64(test)))), small, false, "nested deeper than 4"},
		{"zip in a tar larger than the buffer", encTar(t, map[string][]byte{"x.zip": encZip(t, map[string][]byte{"t": test, "r": randomBytes(3, 2<<20)})}), small, false, "larger than"},
		{"truncated gzip", encGzip(t, test)[:200000], DefaultScanLimits, true, "corrupt after"},
		{"7z archive", append([]byte("7z\xbc\xaf\x27\x1c\x00\x04"), randomBytes(4, 1000)...), DefaultScanLimits, false, "7z or rar"},
		{"text that starts like zlib", append([]byte("x^2 + y^2\n"), test...), DefaultScanLimits, true, ""},
		{"text that starts like gzip", append([]byte("\x1f\x8b\x08 not gzip\n"), test...), DefaultScanLimits, true, "gzip header, but not decodable"},
		{"gzip members back to back, then text", append(append(encGzip(t, []byte("first\n")), encGzip(t, test[:len(test)/2])...), test[len(test)/2:]...), DefaultScanLimits, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "f"), string(c.data))
			res := scanDir(t, ix, dir, c.lim)
			if got := res.ItemsHit >= FlagItems; got != c.wantItems {
				t.Errorf("items found: %d, want >= %d: %v", res.ItemsHit, FlagItems, c.wantItems)
			}
			issues := strings.Join(res.Unreadable, "\n")
			switch {
			case c.wantIssue == "" && len(res.Unreadable) > 0:
				t.Errorf("unexpected issues: %s", issues)
			case c.wantIssue != "" && !strings.Contains(issues, c.wantIssue):
				t.Errorf("issues %q, want one containing %q", issues, c.wantIssue)
			case c.wantIssue != "" && !strings.Contains(issues, "w/f"):
				t.Errorf("issues %q do not name the file", issues)
			}
		})
	}
}

// TestScanFiles: links are not followed, hard links are read once, special
// files are not opened, ptb's own unchanged files are exempt.
func TestScanFiles(t *testing.T) {
	f, ix := gsm8kIndex(t)
	test := fullJSONL(f.gsm8kTest)
	outside := filepath.Join(t.TempDir(), "outside.jsonl")
	writeFile(t, outside, string(test))
	dir := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "link.jsonl")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "model.safetensors"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "a", "data.txt"), "plain data\n")
	for i := 0; i < 40; i++ {
		if err := os.Link(filepath.Join(dir, "a", "data.txt"), filepath.Join(dir, "a", "hl"+string(rune('a'+i%26))+string(rune('a'+i/26)))); err != nil {
			t.Fatal(err)
		}
	}
	res := scanDir(t, ix, dir, DefaultScanLimits)
	if res.ItemsHit != 0 || res.Files != 1 || len(res.Unreadable) != 0 {
		t.Errorf("got %d items, %d files, unreadable %v; want 0 items (link not followed), 1 file (hard links once, FIFO not opened), none unreadable", res.ItemsHit, res.Files, res.Unreadable)
	}

	// A sparse file of 4 GiB with the test set after a 3 GiB hole: only its
	// data extents are read.
	sp := filepath.Join(t.TempDir(), "sparse")
	fh, err := os.Create(sp)
	if err != nil {
		t.Fatal(err)
	}
	fh.Truncate(4 << 30)
	fh.WriteAt(test, 3<<30)
	fh.Close()
	res = scanDir(t, ix, filepath.Dir(sp), DefaultScanLimits)
	if res.ItemsHit < FlagItems || len(res.Unreadable) != 0 {
		t.Errorf("sparse file: %d items, unreadable %v; want flagged, nothing unreadable", res.ItemsHit, res.Unreadable)
	}

	// Exempt: a file ptb wrote is skipped while its hash matches.
	ev := filepath.Join(dir, "evaluate.py")
	writeFile(t, ev, "print('evaluate')\n")
	sum, err := fsutil.HashFile(ev)
	if err != nil {
		t.Fatal(err)
	}
	root := []ScanRoot{{Label: "w", Dir: dir, Exempt: map[string]string{"evaluate.py": sum}}}
	res, err = ScanWith(context.Background(), ix, root, ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Exempt) != 1 || res.Files != 1 {
		t.Errorf("exempt %v, files %d; want evaluate.py exempt and 1 file scanned", res.Exempt, res.Files)
	}
	writeFile(t, ev, string(test)) // changed: scanned, and the test set in it found
	res, err = ScanWith(context.Background(), ix, root, ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Exempt) != 0 || res.ItemsHit < FlagItems {
		t.Errorf("changed evaluate.py: exempt %v, items %d; want scanned and flagged", res.Exempt, res.ItemsHit)
	}
}

// TestTokenizerSkipsNUL: UTF-16 and UTF-32 text produce the n-grams of
// its UTF-8, escapes included.
func TestTokenizerSkipsNUL(t *testing.T) {
	text := []byte(`{"q": "Natalia sold clips to 48 of her friends in April,\nand then she sold half as many clips in May."}`)
	grams := func(p []byte) []uint64 {
		var out []uint64
		tk := newTokenizer(false, emitFunc(func(h uint64) { out = append(out, h) }))
		tk.Feed(p)
		tk.reset()
		return out
	}
	want := grams(text)
	for name, p := range map[string][]byte{"utf-16le": encUTF16(text, false), "utf-16be": encUTF16(text, true), "utf-32le": encUTF32LE(text)} {
		if got := grams(p); !equalU64(got, want) {
			t.Errorf("%s: %d n-grams differ from UTF-8's %d", name, len(got), len(want))
		}
	}
}

func equalU64(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestBase64Alignments: a run glued to a word, or split across reads, is
// decoded all the same.
func TestBase64Alignments(t *testing.T) {
	f, ix := gsm8kIndex(t)
	test := fullJSONL(f.gsm8kTest[:200])
	for _, prefix := range []string{"", "x", "xy", "xyz"} {
		m := ix.newMatcher()
		d := newFileDecode(context.Background(), ix, DefaultScanLimits, 1<<20)
		rs := d.newRawScanner(m, 0, "t")
		p := append([]byte(prefix), encBase64(test)...)
		for len(p) > 0 { // 7-byte reads
			n := min(7, len(p))
			rs.feed(p[:n])
			p = p[n:]
		}
		rs.end()
		if hits := m.finish(); len(hits) < 150 {
			t.Errorf("prefix %q: %d items found, want >= 150 of 200", prefix, len(hits))
		}
	}
}

// TestScanStopsWithContext: decoding a large stream ends when the audit's
// deadline does, with the context's error.
func TestScanStopsWithContext(t *testing.T) {
	_, ix := gsm8kIndex(t)
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "zeros.gz"))
	if err != nil {
		t.Fatal(err)
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	zero := make([]byte, 1<<20)
	for i := 0; i < 1024; i++ {
		zw.Write(zero)
	}
	zw.Close()
	f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	lim := DefaultScanLimits
	lim.MinBudget = 64 << 30
	_, err = ScanWith(ctx, ix, []ScanRoot{{Label: "w", Dir: dir}}, ScanOptions{Limits: lim})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want the context's deadline", err)
	}
}
