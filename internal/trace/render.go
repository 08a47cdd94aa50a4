package trace

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// RenderOptions tunes the transcript.
type RenderOptions struct {
	MaxOutputLines int  // tool output lines shown per result (default 20)
	MaxOutputBytes int  // tool output bytes shown per result (default 2000)
	MaxInputBytes  int  // tool input bytes shown per call (default 1000)
	ShowUnknown    bool // print unknown events' raw JSON (truncated)
}

// Renderer is a Handler that writes a human-readable transcript: one block
// per event, with the time where the trace gives one, tool calls with their
// input, and tool outputs truncated. Call Flush at the end.
type Renderer struct {
	w        *bufio.Writer
	o        RenderOptions
	day      [3]int
	textOpen bool
	buf      []byte
	// the last time's second and its "hh:mm:ss." (events come many to a
	// second): hasSec when set
	sec    int64
	clock  [9]byte
	hasSec bool
}

// NewRenderer returns a Renderer writing to w.
func NewRenderer(w io.Writer, o RenderOptions) *Renderer {
	if o.MaxOutputLines <= 0 {
		o.MaxOutputLines = 20
	}
	if o.MaxOutputBytes <= 0 {
		o.MaxOutputBytes = 2000
	}
	if o.MaxInputBytes <= 0 {
		o.MaxInputBytes = 1000
	}
	return &Renderer{w: bufio.NewWriterSize(w, 64<<10), o: o}
}

// Flush ends an open text block and writes out what is buffered.
func (r *Renderer) Flush() error {
	r.endText()
	return r.w.Flush()
}

// endText ends a streamed assistant text block with its newline.
func (r *Renderer) endText() {
	if r.textOpen {
		r.w.WriteByte('\n')
		r.textOpen = false
	}
}

func (r *Renderer) head(ev *Event, label string) {
	b := r.buf[:0]
	if !ev.Time.IsZero() {
		t := ev.Time.UTC()
		if sec := t.Unix(); !r.hasSec || sec != r.sec {
			// a new second: maybe a new day (the same second is the same day)
			y, m, d := t.Date()
			if day := [3]int{y, int(m), d}; day != r.day {
				r.day = day
				b = append(b, "--- "...)
				b = t.AppendFormat(b, "2006-01-02")
				b = append(b, " (UTC) ---\n"...)
			}
			hh, mm, ss := t.Clock()
			append2(append2(append2(r.clock[:0], hh, ':'), mm, ':'), ss, '.')
			r.sec, r.hasSec = sec, true
		}
		b = append(b, r.clock[:]...)
		ms := t.Nanosecond() / 1e6
		b = append(b, byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
	} else {
		b = append(b, "            "...)
	}
	b = append(b, ' ')
	b = append(b, label...)
	r.buf = b
	r.w.Write(b)
}

// Event implements Handler.
func (r *Renderer) Event(ev *Event) error {
	if ev.Kind == KindText && ev.Delta && r.textOpen {
		// a streamed chunk continues the open block
		r.w.WriteString(ev.Text)
		return nil
	}
	r.endText()
	switch ev.Kind {
	case KindSession:
		r.head(ev, "session")
		if s := ev.Session; s != nil {
			r.kv("id", s.ID)
			r.kv("model", s.Model)
			r.kv("cwd", s.CWD)
			r.kv("version", s.Version)
		}
		r.w.WriteByte('\n')
	case KindUser:
		r.head(ev, "user: ")
		r.text(ev.Text, r.o.MaxOutputBytes)
	case KindText:
		r.head(ev, "assistant: ")
		r.w.WriteString(ev.Text)
		r.textOpen = true
		return nil
	case KindReasoning:
		r.head(ev, "reasoning: ")
		r.text(ev.Text, r.o.MaxOutputBytes)
	case KindToolCall:
		r.head(ev, "tool ")
		if t := ev.Tool; t != nil {
			r.w.WriteString(t.Name)
			if t.ID != "" {
				r.w.WriteString(" [")
				r.w.WriteString(t.ID)
				r.w.WriteByte(']')
			}
			r.w.WriteByte(' ')
			r.text(bytesView(t.Input), r.o.MaxInputBytes)
		} else {
			r.w.WriteByte('\n')
		}
	case KindToolResult:
		res := ev.Result
		if res == nil {
			res = &ToolResult{}
		}
		label := "result"
		if res.IsError {
			label = "result (error)"
		}
		r.head(ev, label)
		if res.ID != "" {
			r.w.WriteString(" [")
			r.w.WriteString(res.ID)
			r.w.WriteByte(']')
		}
		if res.ExitCode != nil {
			r.w.WriteString(" exit ")
			r.buf = strconv.AppendInt(r.buf[:0], int64(*res.ExitCode), 10)
			r.w.Write(r.buf)
		}
		r.w.WriteByte(':')
		r.block(res.Output)
	case KindUsage:
		r.head(ev, "usage:")
		if u := ev.Usage; u != nil {
			r.num(" in", u.InputTokens)
			r.num(" cached", u.CachedInputTokens)
			r.num(" out", u.OutputTokens)
			r.num(" reasoning", u.ReasoningTokens)
		}
		if ev.CLICostUSD != nil {
			r.w.WriteString(" cli_cost_usd ")
			r.buf = strconv.AppendFloat(r.buf[:0], *ev.CLICostUSD, 'f', -1, 64)
			r.w.Write(r.buf)
		}
		r.w.WriteByte('\n')
	case KindFinal:
		r.head(ev, "final: ")
		r.text(ev.Text, r.o.MaxOutputBytes)
	case KindError:
		label := "error: "
		if ev.Fatal {
			label = "ERROR: "
		}
		r.head(ev, label)
		r.text(ev.Text, r.o.MaxOutputBytes)
	case KindMarker:
		r.head(ev, "-- ")
		r.w.WriteString(ev.Type)
		r.w.WriteString(" --\n")
	default:
		if seg, ok := segmentMarker(ev.Raw); ok {
			r.head(ev, seg+"\n")
			break
		}
		r.head(ev, "? ")
		r.w.WriteString(ev.Type)
		r.w.WriteString(" (")
		r.buf = strconv.AppendInt(r.buf[:0], int64(len(ev.Raw)), 10)
		r.w.Write(r.buf)
		r.w.WriteString(" bytes)")
		if r.o.ShowUnknown {
			r.w.WriteByte(' ')
			r.text(bytesView(ev.Raw), r.o.MaxInputBytes)
		} else {
			r.w.WriteByte('\n')
		}
	}
	return nil
}

// NonJSON implements Handler.
func (r *Renderer) NonJSON(line int, raw []byte) error {
	r.endText()
	r.w.WriteString("             | ")
	s := bytesView(raw)
	if len(s) > r.o.MaxOutputBytes {
		r.w.WriteString(truncate(s, r.o.MaxOutputBytes))
		r.w.WriteString(" ... (")
		r.buf = strconv.AppendInt(r.buf[:0], int64(len(raw)), 10)
		r.w.Write(r.buf)
		r.w.WriteString(" bytes)")
	} else {
		r.w.WriteString(s)
	}
	r.w.WriteByte('\n')
	return nil
}

func (r *Renderer) kv(k, v string) {
	if v == "" {
		return
	}
	r.w.WriteByte(' ')
	r.w.WriteString(k)
	r.w.WriteByte('=')
	r.w.WriteString(v)
}

func (r *Renderer) num(k string, n int64) {
	r.w.WriteString(k)
	r.w.WriteByte(' ')
	r.buf = strconv.AppendInt(r.buf[:0], n, 10)
	r.w.Write(r.buf)
}

// text writes s on one line (newlines shown as ⏎), cut at max bytes.
func (r *Renderer) text(s string, max int) {
	n := len(s)
	if n > max {
		s = truncate(s, max)
	}
	for {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			break
		}
		r.w.WriteString(s[:i])
		r.w.WriteString(" ⏎ ")
		s = s[i+1:]
	}
	r.w.WriteString(s)
	if n > max {
		r.w.WriteString(" ... (")
		r.buf = strconv.AppendInt(r.buf[:0], int64(n), 10)
		r.w.Write(r.buf)
		r.w.WriteString(" bytes)")
	}
	r.w.WriteByte('\n')
}

// block writes s indented on its own lines, at most MaxOutputLines lines and
// MaxOutputBytes bytes.
func (r *Renderer) block(s string) {
	if s == "" {
		r.w.WriteString(" (no output)\n")
		return
	}
	r.w.WriteByte('\n')
	total := len(s)
	shown := s
	if len(shown) > r.o.MaxOutputBytes {
		shown = truncate(shown, r.o.MaxOutputBytes)
	}
	lines := 0
	for len(shown) > 0 && lines < r.o.MaxOutputLines {
		line := shown
		if i := strings.IndexByte(shown, '\n'); i >= 0 {
			line, shown = shown[:i], shown[i+1:]
		} else {
			shown = ""
		}
		r.w.WriteString("    | ")
		r.w.WriteString(line)
		r.w.WriteByte('\n')
		lines++
	}
	if len(shown) > 0 || total > r.o.MaxOutputBytes {
		r.w.WriteString("    ... (")
		r.buf = strconv.AppendInt(r.buf[:0], int64(total), 10)
		r.w.Write(r.buf)
		r.w.WriteString(" bytes in all, truncated)\n")
	}
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for i := n; i > n-utf8.UTFMax && i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i]
		}
	}
	return s[:n]
}

var _ Handler = (*Renderer)(nil)
var _ Handler = (*Summarizer)(nil)

// keepsNothing: the Renderer writes an event out during its call and keeps
// none of it (Stream may then reuse the memory of event values).
func (*Renderer) keepsNothing() {}

// append2 appends n as two digits and then sep.
func append2(b []byte, n int, sep byte) []byte {
	return append(b, byte('0'+n/10), byte('0'+n%10), sep)
}

// segmentMarker renders the line ptb writes into the raw trace between two
// launches of the agent ({"type":"ptb.segment",...}), which no CLI decoder
// knows: "== ptb: segment 2 (resume), 5h59m left ==".
func segmentMarker(raw []byte) (string, bool) {
	var m struct {
		Type       string   `json:"type"`
		Segment    int      `json:"segment"`
		Reason     string   `json:"reason"`
		RemainingS *float64 `json:"remaining_s"`
	}
	// A line whose "type" decodes to ptb.segment holds those bytes, or
	// spells them with an escape: any other line is skipped unparsed.
	if !bytes.Contains(raw, []byte("ptb.segment")) && bytes.IndexByte(raw, '\\') < 0 {
		return "", false
	}
	if json.Unmarshal(raw, &m) != nil || m.Type != "ptb.segment" {
		return "", false
	}
	s := "== ptb: segment " + strconv.Itoa(m.Segment)
	if m.Reason != "" {
		s += " (" + m.Reason + ")"
	}
	if m.RemainingS != nil {
		s += ", " + time.Duration(*m.RemainingS*float64(time.Second)).Round(time.Second).String() + " left"
	}
	return s + " ==", true
}
