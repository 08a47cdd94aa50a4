package trace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"testing"
	"testing/iotest"
)

// logHandler writes down every call it gets, raw bytes included, as it
// gets it (it keeps nothing, so Stream recycles event memory for it).
type logHandler struct {
	ptrs *regexp.Regexp
	out  bytes.Buffer
	n    int
	stop int // fail the stop-th call (0: never)
}

var errStop = errors.New("handler stops")

func (l *logHandler) call() error {
	l.n++
	if l.n == l.stop {
		return errStop
	}
	return nil
}

func (l *logHandler) Event(ev *Event) error {
	// dump shows what pointers point to; the pointers themselves differ
	fmt.Fprintf(&l.out, "%s raw=%q\n", l.ptrs.ReplaceAllString(dump([]Event{*ev}), "0x…"), ev.Raw)
	return l.call()
}

func (l *logHandler) NonJSON(line int, raw []byte) error {
	fmt.Fprintf(&l.out, "nonjson %d %q\n", line, raw)
	return l.call()
}

func (*logHandler) keepsNothing() {}

// streamOutcome is all a handler saw of a stream, the transcript, and how
// the stream ended.
type streamOutcome struct {
	agent, log, render, err string
}

type streamFunc func(ctx context.Context, r io.Reader, agent string, h Handler) (string, error)

func runStream(ctx context.Context, f streamFunc, r io.Reader, agent string, stop int) streamOutcome {
	log := &logHandler{stop: stop, ptrs: regexp.MustCompile(`0x[0-9a-f]+`)}
	var out bytes.Buffer
	ren := NewRenderer(&out, RenderOptions{ShowUnknown: true})
	a, err := f(ctx, r, agent, Tee(log, ren))
	ren.Flush()
	o := streamOutcome{agent: a, log: log.out.String(), render: out.String()}
	if err != nil {
		o.err = err.Error()
	}
	return o
}

func pipelinedWith(policy, block, lines int) streamFunc {
	return func(ctx context.Context, r io.Reader, agent string, h Handler) (string, error) {
		return streamPipelined(ctx, r, agent, h, policy, block, lines)
	}
}

// samePipelined runs Stream and the pipelined stream (at its real block
// size and at small ones, so that lines cross blocks and blocks fill with
// lines) on in and fails on any difference.
func samePipelined(t *testing.T, name string, in []byte, agent string, stop int) {
	t.Helper()
	want := runStream(context.Background(), Stream, bytes.NewReader(in), agent, stop)
	for _, v := range []struct {
		policy, block, lines int
		reader               func(io.Reader) io.Reader
	}{
		{scanAdaptive, pipeBlock, pipeLines, nil},
		{scanAlways, pipeBlock, pipeLines, nil},
		{scanNever, pipeBlock, pipeLines, nil},
		{scanAlways, 64, 3, nil},
		{scanAdaptive, 1000, 1, nil},
		{scanAlways, 4096, pipeLines, iotest.HalfReader},
		{scanAlways, 100, 7, iotest.OneByteReader},
	} {
		if v.block < 4096 && len(in) > 256<<10 || v.reader != nil && len(in) > 64<<10 {
			continue // slow
		}
		var r io.Reader = bytes.NewReader(in)
		if v.reader != nil {
			r = v.reader(r)
		}
		got := runStream(context.Background(), pipelinedWith(v.policy, v.block, v.lines), r, agent, stop)
		if got != want {
			t.Fatalf("%s (agent %q, block %d, lines %d): pipelined differs from Stream:\n%s", name, agent, v.block, v.lines, firstDiff(got, want))
		}
	}
}

func firstDiff(got, want streamOutcome) string {
	for _, f := range []struct{ name, got, want string }{
		{"agent", got.agent, want.agent}, {"error", got.err, want.err},
		{"events", got.log, want.log}, {"transcript", got.render, want.render},
	} {
		if f.got == f.want {
			continue
		}
		i := 0
		for i < len(f.got) && i < len(f.want) && f.got[i] == f.want[i] {
			i++
		}
		lo := max(0, i-200)
		return fmt.Sprintf("%s differs at byte %d:\ngot  …%q\nwant …%q", f.name, i,
			f.got[lo:min(len(f.got), i+200)], f.want[lo:min(len(f.want), i+200)])
	}
	return "no difference"
}

// TestPipelinedMatchesStream checks that StreamPipelined hands a handler
// exactly what Stream does (the same events with their raw bytes, the same
// non-JSON lines and line numbers, the same transcript, agent and error)
// on the real traces, on traces with values of every size, on lines
// longer than a block, on random mutations of the real lines joined in
// random ways (blank lines, "\r\n", no final newline), with readers that
// return a byte at a time or fail, and with handlers that fail.
func TestPipelinedMatchesStream(t *testing.T) {
	for _, agent := range append(Agents(), AgentScripted) {
		t.Run(agent, func(t *testing.T) {
			one := manyLines(t, agent)
			agents := []string{agent, ""}
			if testing.Short() || raceEnabled {
				agents = agents[:1]
			}
			for _, a := range agents {
				samePipelined(t, "many lines", one, a, 0)
			}
			if agent == AgentScripted {
				return
			}
			real := realTrace(t, agent)
			lines := bytes.Split(bytes.TrimSpace(real), []byte("\n"))

			// lines longer than a block, between and after short ones
			long := bytes.ReplaceAll(lines[len(lines)/2], []byte("hello"), []byte(strings.Repeat("x\\n", pipeBlock)))
			if bytes.Equal(long, lines[len(lines)/2]) {
				long = append(append([]byte(`{"type":"text","pad":"`), strings.Repeat("y", 3*pipeBlock)...), `"}`...)
			}
			var in bytes.Buffer
			in.Write(real)
			in.WriteString("\n")
			in.Write(long)
			in.WriteString("\r\n\n")
			in.Write(real)
			in.WriteString("\n")
			in.Write(long)
			for _, a := range []string{agent, ""} {
				samePipelined(t, "long lines", in.Bytes(), a, 0)
			}

			// random mutations, joined in random ways
			rng := rand.New(rand.NewPCG(3, 4))
			rounds := 200
			if testing.Short() || raceEnabled {
				rounds = 30
			}
			seps := []string{"\n", "\n", "\n", "\r\n", "\n\n", "\n \t\n", "\n\r\n", "\r", "\n\xc2\xa0\n", " "}
			for round := range rounds {
				var b bytes.Buffer
				for range 1 + rng.IntN(40) {
					l := lines[rng.IntN(len(lines))]
					if rng.IntN(3) > 0 {
						l = mutate(rng, l)
					}
					b.Write(l)
					b.WriteString(seps[rng.IntN(len(seps))])
				}
				in := b.Bytes()
				if rng.IntN(2) == 0 {
					in = bytes.TrimRight(in, "\n")
				}
				a := agent
				if round%4 == 0 {
					a = ""
				}
				samePipelined(t, fmt.Sprintf("mutation round %d", round), in, a, 0)
			}

			// a handler that fails at some call
			few := bytes.Repeat(append(bytes.TrimSpace(real), '\n'), 30)
			for _, stop := range []int{1, 2, 7, 100, 1000} {
				samePipelined(t, fmt.Sprintf("handler stops at call %d", stop), few, agent, stop)
			}
		})
	}
}

// TestPipelinedReadError checks that a read error ends the pipelined
// stream as it ends Stream: every whole line before it handed over, the
// partial one dropped, the error wrapped as "read trace: ...".
func TestPipelinedReadError(t *testing.T) {
	for _, agent := range Agents() {
		in := bytes.Repeat(append(bytes.TrimSpace(realTrace(t, agent)), '\n'), 30)
		for _, at := range []int{0, 1, 100, 5000, len(in) / 2, len(in) - 1, len(in)} {
			for _, a := range []string{agent, ""} {
				name := fmt.Sprintf("%s: fails after %d bytes", agent, at)
				errRead := errors.New("disk on fire")
				mk := func() io.Reader { return io.MultiReader(bytes.NewReader(in[:at]), iotest.ErrReader(errRead)) }
				want := runStream(context.Background(), Stream, mk(), a, 0)
				if want.err != "read trace: disk on fire" {
					t.Fatalf("%s: Stream's error %q, want the read error", name, want.err)
				}
				for _, v := range []struct{ policy, block, lines int }{{scanAdaptive, pipeBlock, pipeLines}, {scanAlways, 64, 3}, {scanNever, 1000, 1}} {
					got := runStream(context.Background(), pipelinedWith(v.policy, v.block, v.lines), mk(), a, 0)
					if got != want {
						t.Fatalf("%s (block %d): pipelined differs from Stream:\n%s", name, v.block, firstDiff(got, want))
					}
				}
			}
		}
	}
}

// TestPipelinedContext checks that the pipelined stream stops when its
// context ends, before any line past the ones read to detect the agent,
// as Stream does.
func TestPipelinedContext(t *testing.T) {
	in := manyLines(t, AgentOpenCode)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, a := range []string{AgentOpenCode, ""} {
		want := runStream(ctx, Stream, bytes.NewReader(in), a, 0)
		got := runStream(ctx, StreamPipelined, bytes.NewReader(in), a, 0)
		if got != want || want.err != context.Canceled.Error() {
			t.Fatalf("agent %q: cancelled: pipelined %q, Stream %q: %s", a, got.err, want.err, firstDiff(got, want))
		}
	}
	// cancelled part way: it stops with the context's error
	h := handlerFuncs{event: func(*Event) error { return nil }, nonJSON: func(int, []byte) error { return nil }}
	ctx, cancel = context.WithCancel(context.Background())
	n := 0
	h.event = func(*Event) error {
		if n++; n == 10 {
			cancel()
		}
		return nil
	}
	if _, err := StreamPipelined(ctx, bytes.NewReader(bytes.Repeat(in, 4)), AgentOpenCode, h); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled part way: %v, want %v", err, context.Canceled)
	}
}

// BenchmarkPipelineStages measures on 100 MB traces the reading stage of
// StreamPipelined alone (read, split, scan: "read"), the whole pipelined
// render ("render-2") and Stream's render ("render-1"), in wall and CPU
// time (cpu_s/op). On two idle cores render-2's wall time is about the
// larger of its two stages'.
//
//	go test ./internal/trace -run '^$' -bench PipelineStages -benchtime 5x
func BenchmarkPipelineStages(b *testing.B) {
	for _, agent := range Agents() {
		for _, mode := range []string{"read", "render-1", "render-2"} {
			b.Run(agent+"/"+mode, func(b *testing.B) {
				path, size := bigTrace(b, agent)
				b.SetBytes(size)
				cpu0 := cpuTime()
				n := 0
				for b.Loop() {
					n++
					f, err := os.Open(path)
					if err != nil {
						b.Fatal(err)
					}
					ren := NewRenderer(io.Discard, RenderOptions{})
					switch mode {
					case "read":
						d, _ := NewDecoder(agent)
						p := &pipe{src: f, root: d.scanRoot, slots: d.nslots, policy: scanAlways, block: pipeBlock, lines: pipeLines,
							free: make(chan *block, pipeBlocks), full: make(chan *block, pipeBlocks), done: make(chan struct{})}
						for range pipeBlocks {
							p.free <- new(block)
						}
						go p.read()
						for blk := range p.full {
							p.free <- blk
						}
					case "render-1":
						_, err = Stream(context.Background(), f, agent, ren)
					case "render-2":
						_, err = StreamPipelined(context.Background(), f, agent, ren)
					}
					f.Close()
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(n), "cpu_s/op")
			})
		}
	}
}
