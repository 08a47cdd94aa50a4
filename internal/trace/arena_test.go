package trace

import (
	"bytes"
	"context"
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
