package trace

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"

	"github.com/valyala/fastjson"

	"github.com/ptb-dev/ptb/internal/agentinfo"
)

// LineReader reads lines of unbounded length (unlike bufio.Scanner, whose
// default 64 KiB limit breaks on agent traces). The returned line excludes
// the trailing "\n" (and "\r\n") and aliases an internal buffer that the next
// call overwrites.
type LineReader struct {
	br   *bufio.Reader
	long []byte
}

// NewLineReader returns a LineReader over r.
func NewLineReader(r io.Reader) *LineReader {
	return &LineReader{br: bufio.NewReaderSize(r, 256<<10)}
}

// Next returns the next line, or io.EOF when there is none. A final line
// without a newline is returned as a line.
func (lr *LineReader) Next() ([]byte, error) {
	line, err := lr.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		lr.long = append(lr.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = lr.br.ReadSlice('\n')
			lr.long = append(lr.long, line...)
		}
		line = lr.long
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if len(line) == 0 && err != nil {
		return nil, io.EOF
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	return line, nil
}

// Decoder turns the lines of one agent's trace into events. It is stateful
// (Codex items start and complete, Gemini text streams in chunks) and not safe
// for concurrent use. Decode never fails.
type Decoder struct {
	agent  string
	p      fastjson.Parser
	line   int
	out    []Event
	decode func(d *Decoder, v *fastjson.Value, base Event)
	// fast, when set, decodes a line with the scanner (scan.go) and
	// returns false, having changed nothing, when decode must do it
	fast  func(d *Decoder, line []byte) bool
	sc    scanner
	unesc []byte // scratch for unescaping

	// the scanner's key tree and slot count (formats with fast)
	scanRoot *scanNode
	nslots   int
	// a scan of the next line made ahead by StreamPipelined's reading
	// stage: when preSet, scanLine takes preOK and preVals instead of
	// scanning
	preSet, preOK bool
	preVals       []jval

	// allocation: decoded values are carved from these, never reused
	a        arena
	sessions slab[Session]
	tools    slab[ToolCall]
	results  slab[ToolResult]
	usages   slab[Usage]
	floats   slab[float64]
	ints     slab[int]

	// per-agent state
	started  map[string]bool // codex: items seen in item.started
	lastText []byte          // assistant text of the current message (finals)
	textOpen bool            // gemini: the last event was an assistant delta
	ts       tsCache         // claude, gemini: timestamps

	// transient: the handler keeps nothing of an event past its call
	// (keepsNothing), so each line's values are carved again from the
	// same arena chunk and slabs instead of fresh ones. Per-agent state
	// that outlives a line must then own its bytes (started's keys).
	transient bool
}

// keepsNothing is implemented by a Handler that keeps no string, slice or
// pointer of an event (other than Raw, which never outlives a call) once
// its Event call returns. Stream then reuses the memory of each line's
// values for the next line: no allocation per line, no fresh pages.
type keepsNothing interface{ keepsNothing() }

// transient reports whether h keeps nothing of an event past its call.
// Only a type declared in this package counts: one declared elsewhere that
// embeds a Renderer inherits keepsNothing but may keep what its own Event
// sees (TestWrapperOfRendererKeepsItsValues).
func transient(h Handler) bool {
	if t, ok := h.(tee); ok {
		for _, x := range t {
			if !transient(x) {
				return false
			}
		}
		return len(t) > 0
	}
	if _, ok := h.(keepsNothing); !ok {
		return false
	}
	t := reflect.TypeOf(h)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.PkgPath() == reflect.TypeFor[Renderer]().PkgPath()
}

// recycle reuses the memory of the values handed out for earlier lines.
func (d *Decoder) recycle() {
	d.a.recycle()
	d.sessions.recycle()
	d.tools.recycle()
	d.results.recycle()
	d.usages.recycle()
	d.floats.recycle()
	d.ints.recycle()
}

// NewDecoder returns the decoder for agent: its trace format (one of
// Agents, a format registered with RegisterFormat, the format an agent's
// agentinfo.Info names, AgentScripted, or AgentUnknown for one that keeps
// every JSON line as KindUnknown).
func NewDecoder(agent string) (*Decoder, error) {
	f, ok := lookupFormat(agent)
	if !ok {
		if i, known := agentinfo.Lookup(agent); known {
			f, ok = lookupFormat(i.TraceFormat())
		}
	}
	if !ok {
		return nil, fmt.Errorf("unknown agent %q (want one of %s)", agent, strings.Join(append(Agents(), AgentScripted), ", "))
	}
	d := &Decoder{agent: agent, decode: f.decode, fast: f.fast, scanRoot: f.scan, nslots: f.slots}
	if f.init != nil {
		f.init(d)
	}
	return d, nil
}

// Agent returns the decoder's agent name.
func (d *Decoder) Agent() string { return d.agent }

// Decode decodes one line. ok is false when the line is not a JSON object;
// otherwise events holds at least one event. The events alias line and an
// internal buffer: they are valid until the next call.
func (d *Decoder) Decode(line []byte) (events []Event, ok bool) {
	d.line++
	d.out = d.out[:0]
	if d.transient {
		d.recycle()
	}
	if d.fast != nil && d.fast(d, line) {
		return d.out, true
	}
	v, err := d.p.ParseBytes(line)
	if err != nil || v.Type() != fastjson.TypeObject {
		return nil, false
	}
	base := Event{Agent: d.agent, Line: d.line, Raw: line, Type: typeOf(v)}
	d.decode(d, v, base)
	if len(d.out) == 0 {
		d.emit(base, KindUnknown)
	}
	return d.out, true
}

// scanLine scans line with root for a fast decoder, or takes the scan the
// reading stage made of it (StreamPipelined).
func (d *Decoder) scanLine(line []byte, root *scanNode, nslots int) bool {
	if d.preSet {
		d.preSet = false
		d.sc.line, d.sc.vals, d.sc.escKeys = line, d.preVals, false
		return d.preOK
	}
	return d.sc.scan(line, root, nslots)
}

// Skip advances the line count for a line not passed to Decode.
func (d *Decoder) Skip() { d.line++ }

func (d *Decoder) emit(ev Event, k Kind) *Event {
	ev.Kind = k
	d.out = append(d.out, ev)
	return &d.out[len(d.out)-1]
}

// Stream reads the trace in r, decodes it as agent's (detected from the first
// lines when agent is "") and calls h for every event and non-JSON line. It
// returns the agent used. It fails only on a read error, a handler error, an
// unknown agent name or ctx ending; never on the content of the trace.
// Blank lines are skipped (and not counted as lines).
func Stream(ctx context.Context, r io.Reader, agent string, h Handler) (string, error) {
	lr := NewLineReader(r)
	agent, pending, err := detectStream(lr, agent)
	if err != nil {
		return "", err
	}
	d, err := startDecoder(agent, h, pending)
	if d == nil {
		return "", err
	}
	if err != nil {
		return agent, err
	}
	for n := 0; ; n++ {
		if n&1023 == 0 && ctx.Err() != nil {
			return agent, ctx.Err()
		}
		line, err := lr.Next()
		if errors.Is(err, io.EOF) {
			return agent, nil
		}
		if err != nil {
			return agent, fmt.Errorf("read trace: %w", err)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := d.feed(h, line); err != nil {
			return agent, err
		}
	}
}

// feed decodes line and hands its events, or the line when it is not
// JSON, to h.
func (d *Decoder) feed(h Handler, line []byte) error {
	evs, ok := d.Decode(line)
	if !ok {
		return h.NonJSON(d.line, line)
	}
	for i := range evs {
		if err := h.Event(&evs[i]); err != nil {
			return err
		}
	}
	return nil
}

// detectStream returns agent, or when it is "" the agent detected from the
// first non-blank lines of lr (AgentUnknown when they do not tell), and
// copies of the lines it read to detect it.
func detectStream(lr *LineReader, agent string) (string, [][]byte, error) {
	var pending [][]byte // lines read before the agent was known (copies)
	if agent == "" {
		var p fastjson.Parser
		for agent == "" && len(pending) < detectLines {
			line, err := lr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return "", nil, fmt.Errorf("read trace: %w", err)
			}
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			pending = append(pending, bytes.Clone(line))
			if v, err := p.ParseBytes(line); err == nil {
				agent = detect(v)
			}
		}
		if agent == "" {
			agent = AgentUnknown
		}
	}
	return agent, pending, nil
}

// detectLines is how many non-blank lines Stream reads to detect the agent.
const detectLines = 64

// Detect returns the agent whose trace line is v, or "" if the line does
// not tell.
func detect(v *fastjson.Value) string {
	typ := str(v, "type")
	if typ == "session_start" && str(v, "agent") == AgentScripted {
		return AgentScripted
	}
	switch typ {
	case "thread.started", "turn.started", "turn.completed", "turn.failed",
		"item.started", "item.updated", "item.completed":
		return AgentCodex
	}
	if v.Get("part") != nil && v.Get("sessionID") != nil {
		return AgentOpenCode
	}
	switch typ {
	case "system", "assistant", "user":
		if v.Get("session_id") != nil || v.Get("message") != nil {
			return AgentClaude
		}
	case "result":
		if v.Get("subtype") != nil || v.Get("total_cost_usd") != nil {
			return AgentClaude
		}
		if v.Get("stats") != nil {
			return AgentGemini
		}
	case "init", "message", "tool_use", "tool_result":
		if v.Get("timestamp") != nil {
			return AgentGemini
		}
	}
	return ""
}

// DetectAgent reads up to 64 non-blank lines of r and returns the agent
// they belong to, or "" if they do not tell.
func DetectAgent(r io.Reader) (string, error) {
	lr := NewLineReader(r)
	var p fastjson.Parser
	for n := 0; n < detectLines; {
		line, err := lr.Next()
		if errors.Is(err, io.EOF) {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("read trace: %w", err)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		n++
		if v, err := p.ParseBytes(line); err == nil {
			if a := detect(v); a != "" {
				return a, nil
			}
		}
	}
	return "", nil
}

// helpers over fastjson values; all tolerate missing or mistyped fields.

// str returns the string field at keys, copied into the decoder's arena.
func (d *Decoder) str(v *fastjson.Value, keys ...string) string {
	x := v.Get(keys...)
	if x == nil || x.Type() != fastjson.TypeString {
		return ""
	}
	b, _ := x.StringBytes()
	return d.a.str(b)
}

// known returns s (a view) as a constant when it is one of the values that
// recur on every line (item types, statuses), else as a copy in the arena.
func (d *Decoder) known(s string) string {
	switch s {
	case "command_execution":
		return "command_execution"
	case "agent_message":
		return "agent_message"
	case "reasoning":
		return "reasoning"
	case "file_change":
		return "file_change"
	case "mcp_tool_call":
		return "mcp_tool_call"
	case "web_search":
		return "web_search"
	case "error":
		return "error"
	case "completed":
		return "completed"
	case "failed":
		return "failed"
	case "in_progress":
		return "in_progress"
	case "declined":
		return "declined"
	}
	return d.a.str([]byte(s))
}

func (d *Decoder) numPtr(v *fastjson.Value, keys ...string) *float64 {
	x := v.Get(keys...)
	if x == nil || x.Type() != fastjson.TypeNumber {
		return nil
	}
	f := d.floats.new()
	*f, _ = x.Float64()
	return f
}

func (d *Decoder) intPtr(v *fastjson.Value, keys ...string) *int {
	x := v.Get(keys...)
	if x == nil || x.Type() != fastjson.TypeNumber {
		return nil
	}
	f, _ := x.Float64()
	n := d.ints.new()
	*n = int(f)
	return n
}

func (d *Decoder) session(s Session) *Session {
	p := d.sessions.new()
	*p = s
	return p
}

func (d *Decoder) tool(t ToolCall) *ToolCall {
	p := d.tools.new()
	*p = t
	return p
}

func (d *Decoder) result(r ToolResult) *ToolResult {
	p := d.results.new()
	*p = r
	return p
}

func (d *Decoder) usage(u Usage) *Usage {
	p := d.usages.new()
	*p = u
	return p
}

func str(v *fastjson.Value, keys ...string) string {
	x := v.Get(keys...)
	if x == nil || x.Type() != fastjson.TypeString {
		return ""
	}
	b, _ := x.StringBytes()
	return string(b)
}

func num(v *fastjson.Value, keys ...string) int64 {
	x := v.Get(keys...)
	if x == nil || x.Type() != fastjson.TypeNumber {
		return 0
	}
	f, _ := x.Float64()
	return int64(f)
}

func boolean(v *fastjson.Value, keys ...string) bool {
	x := v.Get(keys...)
	return x != nil && x.Type() == fastjson.TypeTrue
}

// isoTime parses an RFC 3339 timestamp field.
func (d *Decoder) isoTime(v *fastjson.Value, key string) time.Time {
	return d.ts.parse(view(v, key))
}

// tsCache parses RFC 3339 timestamps, reusing the last one's whole second:
// the lines of a trace come many to a second, and time.Parse is a good part
// of decoding a short line. Only "YYYY-MM-DDTHH:MM:SS[.frac]Z" takes the
// short path, and only when its first 19 bytes are those of the last
// timestamp that time.Parse accepted; the result is what time.Parse gives.
type tsCache struct {
	sec  [19]byte  // "YYYY-MM-DDTHH:MM:SS" of base
	base time.Time // that second, UTC
	ok   bool
}

func (c *tsCache) parse(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	if c.ok && len(s) >= 20 && s[len(s)-1] == 'Z' && s[:19] == string(c.sec[:]) {
		if ns, ok := fraction(s[19 : len(s)-1]); ok {
			return c.base.Add(time.Duration(ns))
		}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	if len(s) >= 20 && s[len(s)-1] == 'Z' {
		copy(c.sec[:], s[:19])
		c.base, c.ok = t.Truncate(time.Second), true
	}
	return t
}

// fraction parses "" or "." and one to nine digits as nanoseconds.
func fraction(f string) (int64, bool) {
	if f == "" {
		return 0, true
	}
	if f[0] != '.' || len(f) < 2 || len(f) > 10 {
		return 0, false
	}
	var ns int64
	for i := 1; i < len(f); i++ {
		c := f[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		ns = ns*10 + int64(c-'0')
	}
	for range 10 - len(f) {
		ns *= 10
	}
	return ns, true
}

// msTime parses a Unix-milliseconds field.
func msTime(v *fastjson.Value, keys ...string) time.Time {
	ms := num(v, keys...)
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// typeOf returns the "type" field, interned for the known event types so the
// common case does not allocate.
func typeOf(v *fastjson.Value) string {
	x := v.Get("type")
	if x == nil || x.Type() != fastjson.TypeString {
		return ""
	}
	b, _ := x.StringBytes()
	return internType(b)
}

// stype is typeOf for the string at slot.
func (d *Decoder) stype(slot int) string {
	if d.sc.vals[slot].kind != jString {
		return ""
	}
	raw := d.sc.raw(slot)
	if bytes.IndexByte(raw, '\\') < 0 {
		return internType(raw)
	}
	d.unesc = unescape(d.unesc[:0], raw)
	return internType(d.unesc)
}

// internType returns b as a string, a constant for the known event types.
func internType(b []byte) string {
	switch string(b) {
	case "system":
		return "system"
	case "assistant":
		return "assistant"
	case "user":
		return "user"
	case "result":
		return "result"
	case "thread.started":
		return "thread.started"
	case "turn.started":
		return "turn.started"
	case "turn.completed":
		return "turn.completed"
	case "turn.failed":
		return "turn.failed"
	case "item.started":
		return "item.started"
	case "item.updated":
		return "item.updated"
	case "item.completed":
		return "item.completed"
	case "error":
		return "error"
	case "init":
		return "init"
	case "message":
		return "message"
	case "tool_use":
		return "tool_use"
	case "tool_result":
		return "tool_result"
	case "step_start":
		return "step_start"
	case "step_finish":
		return "step_finish"
	case "text":
		return "text"
	case "reasoning":
		return "reasoning"
	}
	return string(b)
}

// startDecoder makes the decoder for agent and feeds it the lines read
// while detecting the agent. A nil decoder means agent has none; a
// decoder with an error means a pending line failed.
func startDecoder(agent string, h Handler, pending [][]byte) (*Decoder, error) {
	d, err := NewDecoder(agent)
	if err != nil {
		return nil, err
	}
	d.transient = transient(h)
	for _, line := range pending {
		if err := d.feed(h, line); err != nil {
			return d, err
		}
	}
	return d, nil
}
