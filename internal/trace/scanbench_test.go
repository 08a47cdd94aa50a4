package trace

import (
	"bytes"
	"testing"
)

// BenchmarkScan measures the scanner alone on each scanned agent's real
// trace lines (no decoding, no rendering), per byte:
//
//	go test ./internal/trace -run '^$' -bench Scan -benchtime 2000x
func BenchmarkScan(b *testing.B) {
	for _, c := range []struct {
		agent  string
		root   *scanNode
		nslots int
	}{{AgentOpenCode, openCodeScan, oSlots}, {AgentGemini, geminiScan, gSlots}} {
		b.Run(c.agent, func(b *testing.B) {
			lines := bytes.Split(bytes.TrimSpace(realTrace(b, c.agent)), []byte("\n"))
			n := 0
			for _, l := range lines {
				n += len(l) + 1
			}
			b.SetBytes(int64(n))
			var s scanner
			for b.Loop() {
				for _, l := range lines {
					if !s.scan(l, c.root, c.nslots) {
						b.Fatalf("line not scanned: %s", l)
					}
				}
			}
		})
	}
}
