package report

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ptb-dev/ptb/internal/result"
)

func BenchmarkZZDecodeDir(b *testing.B) {
	files, _ := filepath.Glob("/tmp/qr/imported/*/*/result.json")
	var docs [][]byte
	n := 0
	for _, f := range files[:2000] {
		d, _ := os.ReadFile(f)
		docs = append(docs, d)
		n += len(d)
	}
	b.SetBytes(int64(n))
	cpu := startCPUTime(b)
	in := &interner{}
	b.ResetTimer()
	for b.Loop() {
		for _, d := range docs {
			var r result.Result
			if !decodeResultInterned(d, &r, in) {
				b.Fatal("refused")
			}
		}
	}
	cpu.report()
}
