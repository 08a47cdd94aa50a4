package safetensors

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// benchModels writes three bf16 checkpoints (final, base, instruct) of
// PTB_BENCH_MB megabytes each (default 256) in 8 tensors.
func benchModels(b *testing.B) []*Model {
	mb := 256
	if s := os.Getenv("PTB_BENCH_MB"); s != "" {
		mb, _ = strconv.Atoi(s)
	}
	dir := b.TempDir()
	const tensors = 8
	elems := mb << 20 / 2 / tensors
	r := rand.New(rand.NewSource(1))
	vals := make([]float32, elems)
	for i := range vals {
		vals[i] = float32(r.NormFloat64() * 0.02)
	}
	var ms []*Model
	for k, name := range []string{"final", "base", "instruct"} {
		d := filepath.Join(dir, name)
		os.MkdirAll(d, 0o755)
		var ts []WriteTensor
		for i := 0; i < tensors; i++ {
			v := vals
			if k > 0 {
				v = append([]float32(nil), vals...)
				v[i] += 0.001 * float32(k)
			}
			ts = append(ts, WriteTensor{Name: fmt.Sprintf("model.layers.%d.w", i), DType: "BF16", Shape: []int64{int64(elems / 1024), 1024}, Values: v})
		}
		if err := Write(filepath.Join(d, "model.safetensors"), ts, nil); err != nil {
			b.Fatal(err)
		}
		m, err := OpenModel(d)
		if err != nil {
			b.Fatal(err)
		}
		ms = append(ms, m)
	}
	return ms
}

// BenchmarkLineage compares final with base and instruct; bytes are those
// read (final twice, base, instruct). Compare with BenchmarkSequentialRead.
func BenchmarkLineage(b *testing.B) {
	ms := benchModels(b)
	b.SetBytes(2*ms[0].Bytes() + ms[1].Bytes() + ms[2].Bytes())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Compare(context.Background(), ms[0], ms[1:], 0.5); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSequentialRead reads the same files once each, in order, as
// plain io.Copy to io.Discard: the baseline the lineage check is held to.
func BenchmarkSequentialRead(b *testing.B) {
	ms := benchModels(b)
	var total int64
	for _, m := range ms {
		total += m.Bytes()
	}
	b.SetBytes(total)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, m := range ms {
			for _, p := range m.Files {
				f, err := os.Open(p)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, f)
				f.Close()
			}
		}
	}
}

// seqRead reads every file of ms once, in order, as BenchmarkSequentialRead
// does.
func seqRead(b *testing.B, ms []*Model) {
	for _, m := range ms {
		for _, p := range m.Files {
			f, err := os.Open(p)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, f)
			f.Close()
		}
	}
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

// BenchmarkLineageVsRead runs, in each iteration and side by side on the
// same warm files (benchModels), a plain sequential read of the three
// checkpoints (the anchor), the comparison as it was before reads and
// computing overlapped (refCompareGroup), and Compare. It reports
// lineage-x-read (Compare's wall time over the read's: the goal is 1.5 or
// less), old-x-read, and each pass's MB/s and MB/cpu-s.
func BenchmarkLineageVsRead(b *testing.B) {
	ms := benchModels(b)
	var size int64
	for _, m := range ms {
		size += m.Bytes()
	}
	seqRead(b, ms) // warm
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
		pass(0, func() { seqRead(b, ms) })
		pass(1, func() {
			if _, err := compare(context.Background(), ms[0], ms[1:], 0.5, refCompareGroup, newRefChunkBufs); err != nil {
				b.Fatal(err)
			}
		})
		pass(2, func() {
			if _, err := Compare(context.Background(), ms[0], ms[1:], 0.5); err != nil {
				b.Fatal(err)
			}
		})
	}
	mb := float64(size) * float64(b.N) / 1e6
	for k, name := range []string{"read", "old", "lineage"} {
		b.ReportMetric(mb/wall[k], name+"-MB/s")
		b.ReportMetric(mb/cpu[k], name+"-MB/cpu-s")
	}
	b.ReportMetric(wall[1]/wall[0], "old-x-read")
	b.ReportMetric(wall[2]/wall[0], "lineage-x-read")
}
