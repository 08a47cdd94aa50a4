package trace

import (
	"fmt"
	"slices"
	"sync"

	"github.com/valyala/fastjson"
)

// format is how a Decoder decodes one trace format: decode for a parsed
// line, fast (optional) for the skipping scanner, init (optional) for
// per-stream state.
type format struct {
	decode func(d *Decoder, v *fastjson.Value, base Event)
	fast   func(d *Decoder, line []byte) bool
	init   func(d *Decoder)
	cli    bool // an agent CLI's format (listed by Agents)
	// scan and slots, with fast: the scanner's key tree and slot count,
	// which StreamPipelined's reading stage runs ahead of the decoder
	scan  *scanNode
	slots int
}

// AgentUnknown's format keeps every JSON line as KindUnknown.
func init() {
	builtin(AgentUnknown, format{decode: func(d *Decoder, _ *fastjson.Value, base Event) { d.emit(base, KindUnknown) }})
}

var (
	formatsMu sync.RWMutex
	formats   = map[string]format{}
)

// builtin registers one of the formats this package decodes; each format's
// file calls it from init.
func builtin(name string, f format) {
	formatsMu.Lock()
	defer formatsMu.Unlock()
	if _, dup := formats[name]; dup {
		panic(fmt.Sprintf("trace: format %q registered twice", name))
	}
	formats[name] = f
}

func lookupFormat(name string) (format, bool) {
	formatsMu.RLock()
	defer formatsMu.RUnlock()
	f, ok := formats[name]
	return f, ok
}

// Agents lists the agent CLI trace formats with a decoder, sorted: the
// built-in ones (claude, codex, gemini, opencode) and those registered
// with RegisterFormat. ptb's own scripted agent has one too (AgentScripted),
// not listed.
func Agents() []string {
	formatsMu.RLock()
	defer formatsMu.RUnlock()
	var out []string
	for name, f := range formats {
		if f.cli {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Format decodes the lines of one agent CLI's trace that ptb has no
// built-in decoder for. A Decoder makes one per stream (RegisterFormat's
// function), so a Format may keep state between lines.
//
// Decode gets a line that is a JSON object and base, with Agent, Line,
// Raw and Type set, and returns the events it makes of the line, each
// built from base; an event without a Kind is KindUnknown, and no events
// make the line one KindUnknown event. The events may alias line until
// the next call, as the built-in decoders' do.
type Format interface {
	Decode(line []byte, base Event) []Event
}

// RegisterFormat makes a trace format known by name, for the adapter of an
// agent CLI whose stdout none of the built-in decoders reads (the adapter
// package calls it from init, beside agent.Register). It panics when name
// is empty or taken.
func RegisterFormat(name string, newFormat func() Format) {
	if name == "" || newFormat == nil {
		panic("trace: RegisterFormat with an empty name or no constructor")
	}
	builtin(name, format{cli: true, init: func(d *Decoder) {
		f := newFormat()
		d.decode = func(d *Decoder, _ *fastjson.Value, base Event) {
			for _, ev := range f.Decode(base.Raw, base) {
				if ev.Kind == "" {
					ev.Kind = KindUnknown
				}
				d.out = append(d.out, ev)
			}
		}
	}})
}
