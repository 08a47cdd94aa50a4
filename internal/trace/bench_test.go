package trace

import (
	"bytes"
	"context"
	"io"
	"testing"
)

// BenchmarkDecodeRender measures decode + render (+ summary) throughput on a
// 100 MB trace per agent, synthesised by repeating the real trace's lines.
func BenchmarkDecodeRender(b *testing.B) {
	for _, agent := range Agents() {
		b.Run(agent, func(b *testing.B) {
			one := realTrace(b, agent)
			if !bytes.HasSuffix(one, []byte("\n")) {
				one = append(one, '\n')
			}
			const size = 100 << 20
			big := bytes.Repeat(one, size/len(one)+1)
			b.SetBytes(int64(len(big)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				ren := NewRenderer(io.Discard, RenderOptions{})
				if _, err := Stream(context.Background(), bytes.NewReader(big), agent, Tee(ren, NewSummarizer())); err != nil {
					b.Fatal(err)
				}
				if err := ren.Flush(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
