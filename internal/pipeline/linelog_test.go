package pipeline

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand"
	"strings"
	"testing"
	"time"
)

// feed writes data to w in random-sized chunks, as a pipe would.
func feed(t *testing.T, w interface{ Write([]byte) (int, error) }, data []byte, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	for len(data) > 0 {
		n := min(len(data), 1+rng.Intn(70000))
		if _, err := w.Write(data[:n]); err != nil {
			t.Fatal(err)
		}
		data = data[n:]
	}
}

// Under the caps the raw trace is the input byte for byte.
func TestRawTraceUnderCapsIsExact(t *testing.T) {
	inputs := map[string][]byte{
		"empty":           nil,
		"lines":           []byte("a\nbb\n\nccc\n"),
		"no final eol":    []byte("a\nlast"),
		"line at the cap": append(bytes.Repeat([]byte{'x'}, 8192), '\n'),
		"invalid utf8":    []byte("\xff\xfe\xc3(\n\x00\x01\n"),
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			r := newRawTrace(&out, 1, 8192, 1<<20, 0)
			feed(t, r, in, 1)
			r.Close()
			if !bytes.Equal(out.Bytes(), in) || len(r.cuts) != 0 {
				t.Errorf("got %q (cuts %v), want %q", out.Bytes(), r.cuts, in)
			}
		})
	}
}

// A line over the cap keeps its head and tail, and a marker with its
// length and sha256 follows it.
func TestRawTraceLongLine(t *testing.T) {
	long := make([]byte, 100000)
	rand.New(rand.NewSource(2)).Read(long)
	for i := range long {
		if long[i] == '\n' {
			long[i] = 'n'
		}
	}
	in := append(append([]byte("first\n"), long...), []byte("\nafter\n")...)
	var out bytes.Buffer
	r := newRawTrace(&out, 1, 8192, 1<<30, 0)
	feed(t, r, in, 3)
	r.Close()
	lines := bytes.Split(bytes.TrimSuffix(out.Bytes(), []byte("\n")), []byte("\n"))
	if len(lines) != 4 {
		t.Fatalf("got %d lines, want 4 (first, cut line, marker, after)", len(lines))
	}
	want := append(append([]byte{}, long[:4096]...), long[len(long)-4096:]...)
	if string(lines[0]) != "first" || !bytes.Equal(lines[1], want) || string(lines[3]) != "after" {
		t.Errorf("cut line is not head+tail, or neighbours changed")
	}
	sum := sha256.Sum256(long[4096:])
	var m map[string]any
	if err := json.Unmarshal(lines[2], &m); err != nil || m["type"] != "ptb.truncated" || m["sha256"] != hex.EncodeToString(sum[:]) || m["bytes"] != float64(len(long)) || m["line"] != float64(2) {
		t.Errorf("marker %s (%v)", lines[2], err)
	}
	if len(r.cuts) != 1 || r.cuts[0].Kind != "line" || r.cuts[0].Line != 2 {
		t.Errorf("cuts %+v", r.cuts)
	}
}

// Over the total cap the head and the tail are kept, whole lines, with a
// marker carrying the sha256 of everything.
func TestRawTraceTotalCap(t *testing.T) {
	var in bytes.Buffer
	for i := 0; in.Len() < 8<<20; i++ {
		in.WriteString(strings.Repeat("z", i%50))
		in.WriteString(" line ")
		in.WriteString(string(rune('a' + i%26)))
		in.WriteByte('\n')
	}
	in.WriteString("the very last line\n")
	var out bytes.Buffer
	const max = 1 << 20
	r := newRawTrace(&out, 1, 8192, max, 0)
	feed(t, r, in.Bytes(), 4)
	r.Close()
	if out.Len() > max {
		t.Errorf("wrote %d bytes over a cap of %d", out.Len(), max)
	}
	if !bytes.HasSuffix(out.Bytes(), []byte("\nthe very last line\n")) {
		t.Errorf("tail not kept")
	}
	if !bytes.HasPrefix(out.Bytes(), in.Bytes()[:1000]) {
		t.Errorf("head not kept")
	}
	if len(r.cuts) != 1 {
		t.Fatalf("cuts %+v", r.cuts)
	}
	sum := sha256.Sum256(in.Bytes()[r.cuts[0].KeptHead:])
	if r.cuts[0].Kind != "trace" || r.cuts[0].SHA256 != hex.EncodeToString(sum[:]) || r.cuts[0].Bytes != int64(in.Len()) {
		t.Fatalf("cuts %+v", r.cuts)
	}
	// Every line kept is a whole line of the input, or the marker.
	inLines := map[string]bool{}
	for _, l := range strings.Split(in.String(), "\n") {
		inLines[l] = true
	}
	for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		if !inLines[l] && !strings.Contains(l, `"ptb.truncated"`) {
			t.Fatalf("line %q is not a whole input line", l)
		}
	}
	// A later segment of the same file starts over the cap: tail only.
	var out2 bytes.Buffer
	r2 := newRawTrace(&out2, 2, 8192, max, int64(out.Len()))
	feed(t, r2, []byte("x\ny\n"), 5)
	r2.Close()
	if !bytes.HasSuffix(out2.Bytes(), []byte("x\ny\n")) || len(r2.cuts) != 1 {
		t.Errorf("second segment: %q, cuts %+v", out2.Bytes(), r2.cuts)
	}
}

func TestLineLogCaps(t *testing.T) {
	var out bytes.Buffer
	ll := &lineLog{w: &out, now: func() time.Time { return time.Unix(0, 0) }, maxLine: 8192, maxBytes: 1 << 20}
	so := ll.stream("stdout")
	long := bytes.Repeat([]byte("0123456789"), 2000)
	so.Write([]byte("short\n"))
	so.Write(append(long, '\n'))
	for i := 0; i < 100000; i++ {
		so.Write([]byte("flood line\n"))
	}
	so.Close()
	ll.finish()
	recs := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if !strings.HasSuffix(recs[0], " stdout short") {
		t.Errorf("first record %q", recs[0])
	}
	if !strings.Contains(recs[1], " stdout+ ") || !strings.Contains(recs[2], " ptb stdout line truncated: 20000 bytes") || !strings.Contains(recs[3], " stdout ") {
		t.Errorf("long line records: %.80q / %.120q / %.80q", recs[1], recs[2], recs[3])
	}
	if last := recs[len(recs)-1]; !strings.Contains(last, "ptb output.log truncated") {
		t.Errorf("last record %q, want the truncation note", last)
	}
	if out.Len() > 1<<20+1000 {
		t.Errorf("output.log %d bytes over a cap of 1 MiB", out.Len())
	}
	if len(ll.cuts) != 2 {
		t.Errorf("cuts %+v", ll.cuts)
	}
}

// BenchmarkRawTrace compares the capped raw trace writer with a plain
// write of the same chunks (report the ratio of the two).
func BenchmarkRawTrace(b *testing.B) {
	var in bytes.Buffer
	for in.Len() < 8<<20 {
		in.WriteString(`{"type":"item.completed","item":{"type":"agent_message","text":"step"}}` + "\n")
	}
	var chunks [][]byte
	for rest := in.Bytes(); len(rest) > 0; {
		n := min(len(rest), 32<<10) // a pipe's read size
		chunks, rest = append(chunks, rest[:n]), rest[n:]
	}
	for _, mode := range []string{"plain", "capped"} {
		b.Run(mode, func(b *testing.B) {
			b.SetBytes(int64(in.Len()))
			for i := 0; i < b.N; i++ {
				var w interface{ Write([]byte) (int, error) } = discard{}
				var r *rawTrace
				if mode == "capped" {
					r = newRawTrace(discard{}, 1, 64<<20, 4<<30, 0)
					w = r
				}
				for _, c := range chunks {
					w.Write(c)
				}
				if r != nil {
					r.Close()
				}
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
