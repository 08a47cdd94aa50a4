package trace

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user and system CPU time so far: on a shared,
// loaded machine it says more about the code than wall time does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// bigTrace writes about 100 MB of agent's trace, made by repeating the real
// captured trace's lines, to a file and returns its path and size. A file,
// not a slice: a live 100 MB slice would make the GC run far less often
// than it does in `ptb trace render`.
func bigTrace(b *testing.B, agent string) (string, int64) {
	one := realTrace(b, agent)
	if !bytes.HasSuffix(one, []byte("\n")) {
		one = append(one, '\n')
	}
	const size = 100 << 20
	p := filepath.Join(b.TempDir(), agent+".jsonl")
	if err := os.WriteFile(p, bytes.Repeat(one, size/len(one)+1), 0o644); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	return p, int64(size/len(one)+1) * int64(len(one))
}

// BenchmarkDecodeRender measures throughput on a 100 MB trace per agent of
// decoding alone (decode: a handler that does nothing), of `ptb trace
// render` (render: decode and the transcript) and of what the run pipeline
// does (render+summary), in wall and CPU time (cpu_s/op). scripts/bench/trace_render.sh compares the CLI
// with the original's parsers.
//
//	go test ./internal/trace -run '^$' -bench DecodeRender -benchtime 5x
func BenchmarkDecodeRender(b *testing.B) {
	nop := handlerFuncs{event: func(*Event) error { return nil }, nonJSON: func(int, []byte) error { return nil }}
	for _, agent := range Agents() {
		for _, mode := range []string{"decode", "render", "render+summary"} {
			b.Run(agent+"/"+mode, func(b *testing.B) {
				path, size := bigTrace(b, agent)
				b.SetBytes(size)
				b.ReportAllocs()
				cpu0 := cpuTime()
				n := 0
				b.ResetTimer()
				for b.Loop() {
					n++
					ren := NewRenderer(io.Discard, RenderOptions{})
					var h Handler = nop
					switch mode {
					case "render":
						h = ren
					case "render+summary":
						h = Tee(ren, NewSummarizer())
					}
					f, err := os.Open(path)
					if err != nil {
						b.Fatal(err)
					}
					_, err = Stream(context.Background(), f, agent, h)
					f.Close()
					if err != nil {
						b.Fatal(err)
					}
					if err := ren.Flush(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(n), "cpu_s/op")
			})
		}
	}
}
