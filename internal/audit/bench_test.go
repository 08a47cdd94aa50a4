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

// BenchmarkContaminationScan scans a corpus synthesised at bench time:
// PTB_BENCH_MB megabytes (default 1024) of GSM8K-train-style JSONL in 16
// files, against the GSM8K test index. Report: MB/s.
func BenchmarkContaminationScan(b *testing.B) {
	data := sharedDatasets(b)
	total := 1024
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
