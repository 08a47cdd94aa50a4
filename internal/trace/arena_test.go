package trace

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// kept is what a handler may keep of an event past its call: the strings
// and JSON the decoder hands out (everything but Raw).
type kept struct {
	text, session, tool, input, result string
}

func keep(ev *Event, clone bool) kept {
	c := func(s string) string {
		if clone {
			return strings.Clone(s)
		}
		return s
	}
	var k kept
	k.text = c(ev.Text)
	if s := ev.Session; s != nil {
		k.session = c(s.ID) + "|" + c(s.Model) + "|" + c(s.CWD) + "|" + c(s.Version)
	}
	if t := ev.Tool; t != nil {
		k.tool = c(t.ID) + "|" + c(t.Name)
		k.input = string(t.Input) // the slice is kept below
	}
	if r := ev.Result; r != nil {
		k.result = c(r.ID) + "|" + c(r.Output)
	}
	return k
}

// TestEventValuesOutliveTheCall checks that the strings, tool inputs and
// structs in events are never overwritten by the decoding of later lines
// (the decoder carves them from append-only chunks): a handler may keep them.
func TestEventValuesOutliveTheCall(t *testing.T) {
	for _, agent := range append(Agents(), AgentScripted) {
		t.Run(agent, func(t *testing.T) {
			var one []byte
			if agent == AgentScripted {
				b, err := os.ReadFile(filepath.Join("testdata", "scripted.jsonl"))
				if err != nil {
					t.Fatal(err)
				}
				one = b
			} else {
				one = realTrace(t, agent)
			}
			// enough lines to fill many arena chunks and slabs, with
			// values of every size
			var in bytes.Buffer
			for i := 0; i < 400; i++ {
				in.Write(bytes.ReplaceAll(one, []byte("hello"), []byte(strings.Repeat("h", i*37))))
				in.WriteByte('\n')
			}
			type entry struct {
				ev    Event // as handed out: the strings and pointers kept
				input []byte
				want  kept
			}
			var all []entry
			h := handlerFuncs{
				event: func(ev *Event) error {
					e := entry{ev: *ev, want: keep(ev, true)}
					if ev.Tool != nil {
						e.input = ev.Tool.Input
					}
					e.ev.Raw = nil
					all = append(all, e)
					return nil
				},
				nonJSON: func(int, []byte) error { return nil },
			}
			if _, err := Stream(context.Background(), &in, agent, h); err != nil {
				t.Fatal(err)
			}
			if len(all) < 400 {
				t.Fatalf("got %d events, want at least 400", len(all))
			}
			for i, e := range all {
				got := keep(&e.ev, false)
				if e.ev.Tool != nil {
					got.input = string(e.input)
				}
				if got != e.want {
					t.Fatalf("event %d (line %d) changed after its call:\ngot  %+v\nwant %+v", i, e.ev.Line, got, e.want)
				}
			}
		})
	}
}

// manyLines is agent's real trace (testdata's for AgentScripted) repeated
// 400 times with "hello" grown to values of every size (many arena chunks
// and slabs, values over a chunk).
func manyLines(t *testing.T, agent string) []byte {
	t.Helper()
	var one []byte
	if agent == AgentScripted {
		b, err := os.ReadFile(filepath.Join("testdata", "scripted.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		one = b
	} else {
		one = realTrace(t, agent)
	}
	var in bytes.Buffer
	for i := 0; i < 400; i++ {
		in.Write(bytes.ReplaceAll(one, []byte("hello"), []byte(strings.Repeat("h", i*37))))
		in.WriteByte('\n')
	}
	return in.Bytes()
}

// transientRecorder is a recorder that says it keeps nothing (it writes
// each event out during the call), so Stream recycles event memory for it.
type transientRecorder struct{ recorder }

func (*transientRecorder) keepsNothing() {}

// TestTransientHandlersSeeTheSameEvents checks that recycling the memory of
// event values for handlers that keep nothing (the Renderer, the
// Summarizer) changes nothing they see: the same events, transcript and
// summary as when every value is kept, line after line.
func TestTransientHandlersSeeTheSameEvents(t *testing.T) {
	for _, agent := range append(Agents(), AgentScripted) {
		t.Run(agent, func(t *testing.T) {
			in := manyLines(t, agent)
			type outcome struct{ events, render, summary string }
			run := func(wrap bool) outcome {
				rec := &transientRecorder{}
				var out bytes.Buffer
				ren := NewRenderer(&out, RenderOptions{})
				sum := NewSummarizer()
				var h Handler = Tee(rec, ren, sum)
				if wrap { // hides keepsNothing: every value is kept
					h = handlerFuncs{event: h.Event, nonJSON: h.NonJSON}
				}
				if got := transient(h); got == wrap {
					t.Fatalf("transient(wrap=%v) = %v", wrap, got)
				}
				if _, err := Stream(context.Background(), bytes.NewReader(in), agent, h); err != nil {
					t.Fatal(err)
				}
				if err := ren.Flush(); err != nil {
					t.Fatal(err)
				}
				sj, err := json.Marshal(sum.Summary("", DefaultPrices()))
				if err != nil {
					t.Fatal(err)
				}
				return outcome{rec.out.String(), out.String(), string(sj)}
			}
			got, want := run(false), run(true)
			if got.events != want.events {
				t.Errorf("events differ when recycled")
			}
			if got.render != want.render {
				t.Errorf("transcript differs when recycled")
			}
			if got.summary != want.summary {
				t.Errorf("summary differs when recycled:\ngot  %s\nwant %s", got.summary, want.summary)
			}
		})
	}
}

// TestRenderAllocatesPerTraceNotPerLine checks that rendering allocates a
// fixed amount, not an amount per line: 4 times the lines, the same
// allocations (within a few for buffers that grow once). Codex is allowed
// one per copy: the id of each started item is kept (Decoder.started).
func TestRenderAllocatesPerTraceNotPerLine(t *testing.T) {
	for _, agent := range Agents() {
		t.Run(agent, func(t *testing.T) {
			one := realTrace(t, agent)
			allocs := func(reps int) float64 {
				in := bytes.Repeat(append(bytes.TrimSuffix(one, []byte("\n")), '\n'), reps)
				return testing.AllocsPerRun(3, func() {
					ren := NewRenderer(io.Discard, RenderOptions{})
					if _, err := Stream(context.Background(), bytes.NewReader(in), agent, Tee(ren, NewSummarizer())); err != nil {
						t.Fatal(err)
					}
				})
			}
			small, big := allocs(500), allocs(2000)
			slack := 4.0
			if agent == AgentCodex {
				slack += 1500
			}
			if big > small+slack {
				t.Errorf("allocations: %v for 500 copies of the trace, %v for 2000: want the same (no allocation per line)", small, big)
			}
		})
	}
}
