package audit

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
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
	ts, err := DirTestSets{Dir: data}.TestSet(context.Background(), "gsm8k")
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

// BenchmarkContaminationScan scans a corpus synthesised at bench time:
// PTB_BENCH_MB megabytes (default 1024) of GSM8K-train-style JSONL in 16
// files, against the GSM8K test index. Report: MB/s.
func BenchmarkContaminationScan(b *testing.B) {
	total, ix, train := benchSetup(b, 1024)
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
