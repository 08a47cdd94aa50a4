package audit

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
)

// refGrams runs the reference (byte-at-a-time) tokenizer over the chunks,
// with a document break where docs says, and returns its n-grams in order.
func refGrams(code bool, chunks [][]byte, docs map[int]bool) []uint64 {
	var out []uint64
	t := newRefTokenizer(code, func(h uint64) { out = append(out, h) })
	for i, c := range chunks {
		t.Feed(c)
		if docs[i] {
			t.reset()
		}
	}
	t.reset()
	return out
}

// newGrams is refGrams with the whole-buffer tokenizer.
func newGrams(code bool, chunks [][]byte, docs map[int]bool) []uint64 {
	var out []uint64
	t := newTokenizer(code, emitFunc(func(h uint64) { out = append(out, h) }))
	for i, c := range chunks {
		t.Feed(c)
		if docs[i] {
			t.reset()
		}
	}
	t.reset()
	return out
}

// diffTokenizers fails when the two tokenizers emit different n-grams for
// p cut into chunks at random points (escape sequences and tokens then
// straddle Feed calls), in text and in code mode.
func diffTokenizers(t *testing.T, name string, p []byte, r *rand.Rand) {
	t.Helper()
	chunks := [][]byte{p}
	if r != nil && len(p) > 1 {
		chunks = nil
		for rest := p; len(rest) > 0; {
			n := 1 + r.Intn(min(len(rest), 1+r.Intn(64)))
			chunks, rest = append(chunks, rest[:n]), rest[n:]
		}
	}
	docs := map[int]bool{}
	if r != nil {
		for i := range chunks {
			if r.Intn(50) == 0 {
				docs[i] = true
			}
		}
	}
	for _, code := range []bool{false, true} {
		want, got := refGrams(code, chunks, docs), newGrams(code, chunks, docs)
		if !equalU64(got, want) {
			i := 0
			for i < len(got) && i < len(want) && got[i] == want[i] {
				i++
			}
			t.Errorf("%s (code %v, %d bytes, %d chunks): %d n-grams, want %d; first difference at n-gram %d", name, code, len(p), len(chunks), len(got), len(want), i)
		}
	}
}

// randomTokenText draws bytes from an alphabet rich in what the tokenizer
// treats specially: letters of both cases, digits, '_', punctuation,
// backslashes followed by escape letters and hex digits, NUL, quotes and
// non-ASCII bytes.
func randomTokenText(r *rand.Rand, n int) []byte {
	const alpha = "aAbBzZuUfFnrt059_ \n\t.,=()[]{}:\"'\\/\x00\x00\xc3\xa9\x80\xff"
	words := []string{`\u0041`, `\u00e9`, `\u005c`, `\u005cn`, `\u0000`, `\u00`, `\uZZ`, `\\u0041`, `\n`, `\"`, `\x41`, "def ", "return ", "print(", "natalia", "CLIPS"}
	var b []byte
	for len(b) < n {
		if r.Intn(4) == 0 {
			b = append(b, words[r.Intn(len(words))]...)
		} else {
			b = append(b, alpha[r.Intn(len(alpha))])
		}
	}
	return b
}

// TestTokenizerMatchesReference: the whole-buffer tokenizer emits exactly
// the n-grams of the byte-at-a-time one, on random text cut at random
// points, on real test sets, and on the encodings of the red-team cases
// that the tokenizer reads itself (JSON and Python escapes, UTF-16/32).
func TestTokenizerMatchesReference(t *testing.T) {
	r := rand.New(rand.NewSource(15))
	for i := 0; i < 3000; i++ {
		p := randomTokenText(r, r.Intn(400))
		diffTokenizers(t, "random", p, r)
		diffTokenizers(t, "random (one chunk)", p, nil)
	}
	diffTokenizers(t, "random bytes", randomBytes(3, 1<<16), r)
	diffTokenizers(t, "random text", randomText(4, 1<<16), r)

	data := sharedDatasets(t)
	var real [][]byte
	for _, f := range []string{"gsm8k/test.jsonl", "gsm8k/train.jsonl", "bfcl/BFCL_v3_exec_simple.json", "arenahard/question.jsonl", "healthbench/healthbench_easy.jsonl"} {
		b, err := os.ReadFile(filepath.Join(data, f))
		if err != nil {
			t.Fatal(err)
		}
		real = append(real, b[:min(len(b), 2<<20)])
	}
	gz, err := os.Open(filepath.Join(data, "humaneval", "HumanEval.jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer gz.Close()
	zr, err := gzip.NewReader(gz)
	if err != nil {
		t.Fatal(err)
	}
	he, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	real = append(real, he)
	for i, b := range real {
		var plain []byte // the JSONL's strings decoded: raw code and text
		for _, line := range bytes.Split(b, []byte("\n")) {
			var row map[string]any
			if json.Unmarshal(line, &row) == nil {
				for _, v := range row {
					if s, ok := v.(string); ok {
						plain = append(plain, s...)
						plain = append(plain, '\n')
					}
				}
			}
		}
		asciiEsc, _ := json.Marshal(string(plain)) // JSON of JSON: double escapes
		for name, p := range map[string][]byte{
			"as stored": b, "decoded": plain, "json string": asciiEsc,
			"utf-16le": encUTF16(b, false), "utf-16be": encUTF16(b, true), "utf-32le": encUTF32LE(b),
			"u-escaped": uEscape(plain), "base64": encBase64(b[:min(len(b), 1<<16)]),
		} {
			diffTokenizers(t, real2name(i)+" "+name, p, nil)
			diffTokenizers(t, real2name(i)+" "+name+" (chunked)", p[:min(len(p), 1<<18)], r)
		}
	}
}

func real2name(i int) string {
	return []string{"gsm8k test", "gsm8k train", "bfcl", "arenahard", "healthbench", "humaneval"}[i]
}

// uEscape writes every ASCII letter of p as \u00XX (as json.Marshal with
// an ASCII-only encoder or a Python json.dumps(ensure_ascii) would write a
// non-ASCII one).
func uEscape(p []byte) []byte {
	var b []byte
	const hex = "0123456789abcdef"
	for i, c := range p {
		if (c|0x20) >= 'a' && (c|0x20) <= 'z' && i%3 == 0 {
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			continue
		}
		b = append(b, c)
	}
	return b
}

// FuzzTokenizerMatchesReference: any bytes, cut anywhere, give the same
// n-grams in both tokenizers.
func FuzzTokenizerMatchesReference(f *testing.F) {
	f.Add([]byte(`{"q": "Natalia sold clips\u0041 to 48 \\n of_her friends"}`), uint8(7))
	f.Add([]byte("def f(x):\n    return x\\\x00u0041+1"), uint8(3))
	f.Fuzz(func(t *testing.T, p []byte, cut uint8) {
		c := min(int(cut), len(p))
		for _, code := range []bool{false, true} {
			want := refGrams(code, [][]byte{p[:c], p[c:]}, nil)
			got := newGrams(code, [][]byte{p[:c], p[c:]}, nil)
			if !equalU64(got, want) {
				t.Fatalf("code %v: %d n-grams, want %d", code, len(got), len(want))
			}
		}
	})
}

// TestGramTableExact: the filter and table find every indexed n-gram with
// its id and nothing else, whatever the table's size.
func TestGramTableExact(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for _, n := range []int{0, 1, 7, 1000, 200000} {
		keys := make([]uint64, n)
		want := map[uint64]int32{}
		for i := range keys {
			for {
				h := r.Uint64() | 1
				if _, dup := want[h]; !dup {
					keys[i], want[h] = h, int32(i)
					break
				}
			}
		}
		g := newGramTable(keys)
		for h, id := range want {
			if got := g.lookup(h); got != id {
				t.Fatalf("%d keys: lookup(%#x) = %d, want %d", n, h, got, id)
			}
		}
		fp := 0
		const probes = 200000
		for i := 0; i < probes; i++ {
			h := r.Uint64() | 1
			_, in := want[h]
			if got := g.lookup(h); (got >= 0) != in {
				t.Fatalf("%d keys: lookup(%#x) = %d, in set %v", n, h, got, in)
			}
			if g.mayHave(h) && !in {
				fp++
			}
		}
		if n > 0 && n <= 200000 && float64(fp)/probes > 0.02 {
			t.Errorf("%d keys: filter passes %.2f%% of absent n-grams, want under 2%%", n, 100*float64(fp)/probes)
		}
	}
}

// BenchmarkTokenizer feeds 8 MiB of GSM8K train JSONL, in memory, through
// the reference and the whole-buffer tokenizer (text mode, n-grams
// dropped), and through a feeder (tokenizer and lookups). One core.
func BenchmarkTokenizer(b *testing.B) {
	_, ix, train := benchSetup(b, 0)
	var p []byte
	for len(p) < 8<<20 {
		p = append(p, train...)
	}
	run := func(name string, feed func([]byte), end func()) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			c0 := cpuSeconds()
			for i := 0; i < b.N; i++ {
				for q := p; len(q) > 0; q = q[min(len(q), 128<<10):] {
					feed(q[:min(len(q), 128<<10)])
				}
				end()
			}
			b.ReportMetric(float64(len(p))*float64(b.N)/1e6/(cpuSeconds()-c0), "MB/cpu-s")
		})
	}
	n := 0
	ref := newRefTokenizer(false, func(uint64) { n++ })
	run("reference", ref.Feed, ref.reset)
	tk := newTokenizer(false, &discardGrams{})
	run("whole-buffer", tk.Feed, tk.reset)
	fd := ix.newMatcher().newFeeder()
	run("feeder", fd.feed, fd.reset)
}

// threadCPU returns the calling thread's CPU time (user+system) in seconds.
func threadCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

// BenchmarkTokenizerBlock feeds 8 MiB of GSM8K train JSONL, in memory, in
// 128 KiB buffers, through the text tokenizer with and without its 64-byte
// block path (n-grams dropped), and through a feeder (tokenizer and
// lookups) with and without it, alternating in each iteration on one
// locked thread. Reports MB per CPU-second of the thread for each and
// block-x, the word-at-a-time loop's CPU time over the block path's.
func BenchmarkTokenizerBlock(b *testing.B) {
	_, ix, train := benchSetup(b, 0)
	var p []byte
	for len(p) < 8<<20 {
		p = append(p, train...)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	word, blk := newTokenizer(false, &discardGrams{}), newTokenizer(false, &discardGrams{})
	word.noBlock = true
	fw, fb := ix.newMatcher().newFeeder(), ix.newMatcher().newFeeder()
	fw.text.noBlock = true
	var cpu [4]float64
	pass := func(k int, feed func([]byte), end func()) {
		c0 := threadCPU()
		for q := p; len(q) > 0; q = q[min(len(q), 128<<10):] {
			feed(q[:min(len(q), 128<<10)])
		}
		end()
		cpu[k] += threadCPU() - c0
	}
	b.SetBytes(int64(len(p)) * 4)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pass(0, word.Feed, word.reset)
		pass(1, blk.Feed, blk.reset)
		pass(2, fw.feed, fw.reset)
		pass(3, fb.feed, fb.reset)
	}
	mb := float64(len(p)) * float64(b.N) / 1e6
	for k, name := range []string{"word", "block", "feeder-word", "feeder-block"} {
		b.ReportMetric(mb/cpu[k], name+"-MB/cpu-s")
	}
	b.ReportMetric(cpu[0]/cpu[1], "block-x")
	b.ReportMetric(cpu[2]/cpu[3], "feeder-block-x")
}

// TestTokenizerBlockMatchesReference: on long inputs fed in buffers of 72
// bytes or more, where the 64-byte block path runs, the tokenizer emits
// the reference's n-grams: plain words (tokens of 1 to 20 bytes, both
// cases, digits) with sparse escapes, NUL bytes (inside tokens too),
// punctuation and non-ASCII bytes, at every density.
func TestTokenizerBlockMatchesReference(t *testing.T) {
	r := rand.New(rand.NewSource(64))
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	seps := []string{" ", " ", " ", "\n", ", ", ". ", "\t", "=", "<<", ">>", "/", "\xc3\xa9", "_", "\xff"}
	odd := []string{`\n`, `\u0041`, `\u00e9`, `\\`, `\"`, "\x00", `\u00`, `\`, "\x00\x00",
		`\t`, `\r`, `\b`, `\f`, `\/`, `\'`, `\x`, `\N`, `\9`, "\\\x00n", `\\n`, `\\\n`, `\\\\`, "\\\xc3\xa9", `\ `}
	blocks := 0
	for round := 0; round < 300; round++ {
		density := []int{0, 2, 20, 200}[round%4] // one odd piece in so many words
		var p []byte
		for len(p) < 2000+r.Intn(30000) {
			n := 1 + r.Intn(8)
			if r.Intn(10) == 0 {
				n = 9 + r.Intn(12)
			}
			for range n {
				p = append(p, letters[r.Intn(len(letters))])
				if density > 0 && r.Intn(density*8) == 0 {
					p = append(p, odd[r.Intn(len(odd))]...) // inside or at the end of a token
				}
			}
			p = append(p, seps[r.Intn(len(seps))]...)
		}
		size := 72 + r.Intn(8192)
		var chunks [][]byte
		for q := p; len(q) > 0; q = q[min(len(q), size):] {
			chunks = append(chunks, q[:min(len(q), size)])
		}
		want := refGrams(false, chunks, nil)
		for _, noBlock := range []bool{false, true} {
			var got []uint64
			tk := newTokenizer(false, emitFunc(func(h uint64) { got = append(got, h) }))
			tk.noBlock = noBlock
			for _, c := range chunks {
				tk.Feed(c)
			}
			tk.reset()
			if !equalU64(got, want) {
				t.Fatalf("round %d (density %d, %d bytes in %d-byte buffers, noBlock %v): %d n-grams, want %d", round, density, len(p), size, noBlock, len(got), len(want))
			}
		}
		if tk := newTokenizer(false, &discardGrams{}); tk.block(p, 0) > 0 {
			blocks++
		}
	}
	if blocks < 100 {
		t.Errorf("the block path emitted tokens at the start of only %d of 300 inputs", blocks)
	}
}
