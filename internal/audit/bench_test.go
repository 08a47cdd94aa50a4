package audit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ptb-dev/ptb/internal/eval/dataset"
)

// benchSetup returns the corpus size in MB (PTB_BENCH_MB, else def), the
// GSM8K test index and the GSM8K train file the corpora are made from.
func benchSetup(b *testing.B, def int) (int, *Index, []byte) {
	b.Helper()
	data := sharedDatasets(b)
	total := def
	if s := os.Getenv("PTB_BENCH_MB"); s != "" {
		total, _ = strconv.Atoi(s)
	}
	ts, err := TaskTestSets{Src: dataset.Dir(data)}.TestSet(context.Background(), "gsm8k")
	if err != nil {
		b.Fatal(err)
	}
	ix, err := NewIndex(ts)
	if err != nil {
		b.Fatal(err)
	}
	train, err := os.ReadFile(filepath.Join(data, "gsm8k", "train.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	return total, ix, train
}

// benchCorpus writes total MB of GSM8K-train-style JSONL in 16 files
// under a temporary directory and returns it with the bytes written.
func benchCorpus(b *testing.B, total int, train []byte) (string, int64) {
	b.Helper()
	dir := b.TempDir()
	var size int64
	const files = 16
	for i := 0; i < files; i++ {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("corpus-%02d.jsonl", i)))
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriterSize(f, 1<<20)
		for n := int64(0); n < int64(total)<<20/files; n += int64(len(train)) {
			w.Write(train)
		}
		w.Flush()
		st, _ := f.Stat()
		size += st.Size()
		f.Close()
	}
	return dir, size
}

// BenchmarkContaminationScan scans a corpus synthesised at bench time:
// PTB_BENCH_MB megabytes (default 1024) of GSM8K-train-style JSONL in 16
// files, against the GSM8K test index. Report: MB/s.
func BenchmarkContaminationScan(b *testing.B) {
	total, ix, train := benchSetup(b, 1024)
	dir, size := benchCorpus(b, total, train)
	b.SetBytes(size)
	b.ResetTimer()
	cpu0 := cpuSeconds()
	defer func() {
		// CPU time is what a loaded machine cannot steal: MB per CPU-second
		// (summed over cores) stays comparable when wall time does not.
		b.ReportMetric(float64(size)*float64(b.N)/1e6/(cpuSeconds()-cpu0), "MB/cpu-s")
	}()
	for i := 0; i < b.N; i++ {
		res, err := Scan(context.Background(), ix, []ScanRoot{{Label: "c", Dir: dir}})
		if err != nil {
			b.Fatal(err)
		}
		if res.ItemsHit >= FlagItems {
			b.Fatalf("GSM8K train corpus flagged: %d items", res.ItemsHit)
		}
	}
}

// eachFile reads every file of dir with GOMAXPROCS workers, as Scan does
// (one file per worker at a time, 128 KiB reads), handing each worker's
// buffers to the consumer made for it.
func eachFile(b *testing.B, dir string, consumer func() func([]byte)) {
	b.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	ch := make(chan string)
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			eat := consumer()
			buf := make([]byte, 128<<10)
			for p := range ch {
				f, err := os.Open(p)
				if err != nil {
					panic(err)
				}
				for {
					n, err := f.Read(buf)
					eat(buf[:n])
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						panic(err)
					}
				}
				f.Close()
			}
		}()
	}
	for _, e := range ents {
		ch <- filepath.Join(dir, e.Name())
	}
	close(ch)
	wg.Wait()
}

type discardGrams struct{ n int }

func (d *discardGrams) grams(hs []uint64) { d.n += len(hs) }

// BenchmarkScanSplit runs, in each iteration and side by side on the same
// warm files (the BenchmarkContaminationScan corpus), four passes with
// GOMAXPROCS workers:
//
//	read:     the files read into a buffer and dropped (the hardware anchor)
//	tokenize: read + the text tokenizer, n-grams dropped
//	lookup:   read + tokenizer + the filter and table lookups (a feeder)
//	scan:     Scan itself (format sniffing, base64 runs, bookkeeping)
//
// It reports each pass's MB/s, the split of the scan's time (I/O,
// tokenizing, lookup, the rest: the differences between passes) and
// scan-x-read, the scan's time over the read's.
func BenchmarkScanSplit(b *testing.B) {
	total, ix, train := benchSetup(b, 1024)
	dir, size := benchCorpus(b, total, train)
	eachFile(b, dir, func() func([]byte) { return func([]byte) {} }) // warm
	b.SetBytes(size)
	b.ResetTimer()
	// Wall time and CPU time (user+system, all cores) of each pass: on a
	// loaded machine the CPU-time figures are the comparable ones.
	var wall, cpu [4]float64
	pass := func(k int, f func()) {
		t0, c0 := time.Now(), cpuSeconds()
		f()
		wall[k] += time.Since(t0).Seconds()
		cpu[k] += cpuSeconds() - c0
	}
	for i := 0; i < b.N; i++ {
		pass(0, func() { eachFile(b, dir, func() func([]byte) { return func([]byte) {} }) })
		pass(1, func() {
			eachFile(b, dir, func() func([]byte) {
				tk := newTokenizer(false, &discardGrams{})
				return tk.Feed
			})
		})
		pass(2, func() {
			eachFile(b, dir, func() func([]byte) {
				fd := ix.newMatcher().newFeeder()
				return fd.feed
			})
		})
		pass(3, func() {
			if _, err := Scan(context.Background(), ix, []ScanRoot{{Label: "c", Dir: dir}}); err != nil {
				b.Fatal(err)
			}
		})
	}
	mb := float64(size) * float64(b.N) / 1e6
	for k, name := range []string{"read", "tokenize", "lookup", "scan"} {
		b.ReportMetric(mb/wall[k], name+"-MB/s")
		b.ReportMetric(mb/cpu[k], name+"-MB/cpu-s")
	}
	// The split of the scan's CPU time: I/O (the read pass), tokenizing
	// and lookup (what each pass adds to the one before), the rest.
	share := func(d float64) float64 { return 100 * d / cpu[3] }
	b.ReportMetric(share(cpu[0]), "%io")
	b.ReportMetric(share(cpu[1]-cpu[0]), "%tokenize")
	b.ReportMetric(share(cpu[2]-cpu[1]), "%lookup")
	b.ReportMetric(share(cpu[3]-cpu[2]), "%rest")
	b.ReportMetric(wall[3]/wall[0], "scan-x-read")
}

// cpuSeconds is the process's user+system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

// BenchmarkContaminationScanEncoded scans PTB_BENCH_MB megabytes (default
// 256) of input in four equal parts: GSM8K train JSONL gzipped, zstd'd and
// base64'd (wrapped), and random bytes as model weights would be. Report:
// MB/s of input (the files' sizes, not what they decode to).
func BenchmarkContaminationScanEncoded(b *testing.B) {
	total, ix, train := benchSetup(b, 256)
	part := int64(total) << 20 / 4
	gz, zs := encGzip(b, train), encZstd(b, train)
	b64 := encBase64(train)
	rnd := randomBytes(1, 1<<20)
	dir := b.TempDir()
	var size int64
	for name, unit := range map[string][]byte{"a.gz": gz, "b.zst": zs, "c.b64": b64, "d.bin": rnd} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriterSize(f, 1<<20)
		for n := int64(0); n < part; n += int64(len(unit)) {
			w.Write(unit)
		}
		w.Flush()
		st, _ := f.Stat()
		size += st.Size()
		f.Close()
	}
	b.SetBytes(size)
	b.ResetTimer()
	cpu0 := cpuSeconds()
	defer func() {
		b.ReportMetric(float64(size)*float64(b.N)/1e6/(cpuSeconds()-cpu0), "MB/cpu-s")
	}()
	for i := 0; i < b.N; i++ {
		res, err := Scan(context.Background(), ix, []ScanRoot{{Label: "c", Dir: dir}})
		if err != nil {
			b.Fatal(err)
		}
		if res.ItemsHit >= FlagItems || len(res.Unreadable) > 0 {
			b.Fatalf("clean encoded corpus: %d items, unreadable %v", res.ItemsHit, res.Unreadable)
		}
	}
}

// BenchmarkOneFile scans one file of PTB_BENCH_MB megabytes (default 256)
// of GSM8K train JSONL side by side, per iteration: read (the anchor, one
// sequential pass into a buffer), one-pass (the scan on one core, as
// before files were split) and split (the scan in GOMAXPROCS parts, what
// Scan does with a file this large). Reports each pass's MB/s and
// MB/cpu-s, split-x-read and one-pass-x-split (the gain of splitting).
func BenchmarkOneFile(b *testing.B) {
	total, ix, train := benchSetup(b, 256)
	p := filepath.Join(b.TempDir(), "one.jsonl")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for n := int64(0); n < int64(total)<<20; n += int64(len(train)) {
		w.Write(train)
	}
	w.Flush()
	st, _ := f.Stat()
	size := st.Size()
	f.Close()
	ctx := context.Background()
	read := func() {
		r, _ := os.Open(p)
		io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, make([]byte, 128<<10))
		r.Close()
	}
	scan := func(parts int) {
		r, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		d := newFileDecode(ctx, ix, DefaultScanLimits, size)
		m := ix.newMatcher()
		if parts == 1 {
			d.decode(m, source{r: r, ra: r, size: size, where: "one"}, 0)
		} else if !d.splitRaw(ctx, m, r, size, "one", parts) {
			b.Fatal("not split")
		}
		if h := m.finish(); len(h) != 1 {
			b.Fatalf("%d items hit, want 1 (gsm8k/test/602)", len(h))
		}
	}
	read()
	b.SetBytes(size)
	b.ResetTimer()
	var wall, cpu [3]float64
	pass := func(k int, f func()) {
		t0, c0 := time.Now(), cpuSeconds()
		f()
		wall[k] += time.Since(t0).Seconds()
		cpu[k] += cpuSeconds() - c0
	}
	for i := 0; i < b.N; i++ {
		pass(0, read)
		pass(1, func() { scan(1) })
		pass(2, func() { scan(runtime.GOMAXPROCS(0)) })
	}
	mb := float64(size) * float64(b.N) / 1e6
	for k, name := range []string{"read", "one-pass", "split"} {
		b.ReportMetric(mb/wall[k], name+"-MB/s")
		b.ReportMetric(mb/cpu[k], name+"-MB/cpu-s")
	}
	b.ReportMetric(wall[2]/wall[0], "split-x-read")
	b.ReportMetric(wall[1]/wall[2], "one-pass-x-split")
}
