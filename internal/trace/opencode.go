package trace

import (
	"time"

	"github.com/valyala/fastjson"
)

func init() {
	builtin(AgentOpenCode, format{decode: decodeOpenCode, fast: decodeOpenCodeFast, cli: true,
		scan: openCodeScan, slots: oSlots})
}

// decodeOpenCode decodes `opencode run --format json` lines: step_start,
// text, reasoning, tool_use (complete calls only), step_finish{tokens, cost}
// (summed over steps) and error. Timestamps are Unix milliseconds.
func decodeOpenCode(d *Decoder, v *fastjson.Value, base Event) {
	base.Time = msTime(v, "timestamp")
	part := v.Get("part")
	switch base.Type {
	case "step_start":
		d.emit(base, KindMarker)
	case "text":
		t := d.str(part, "text")
		d.lastText = append(d.lastText[:0], t...)
		d.emit(base, KindText).Text = t
	case "reasoning":
		d.emit(base, KindReasoning).Text = d.str(part, "text")
	case "tool_use":
		if part == nil {
			return
		}
		st := part.Get("state")
		id := d.str(part, "callID")
		ev := d.emit(base, KindToolCall)
		ev.Tool = d.tool(ToolCall{ID: id, Name: d.str(part, "tool")})
		if st == nil {
			return
		}
		ev.Tool.Input = d.a.json(st.Get("input"))
		if t := msTime(st, "time", "start"); !t.IsZero() {
			ev.Time = t
		}
		status := view(st, "status")
		if status != "completed" && status != "error" {
			return
		}
		res := d.emit(base, KindToolResult)
		res.Result = d.result(ToolResult{ID: id, Output: d.str(st, "output"), ExitCode: d.intPtr(st, "metadata", "exit"),
			IsError: status == "error"})
		if status == "error" && res.Result.Output == "" {
			res.Result.Output = d.str(st, "error")
		}
		if res.Result.ExitCode != nil && *res.Result.ExitCode != 0 {
			res.Result.IsError = true
		}
		if t := msTime(st, "time", "end"); !t.IsZero() {
			res.Time = t
		}
	case "step_finish":
		if part == nil {
			return
		}
		tok := part.Get("tokens")
		if tok != nil {
			ev := d.emit(base, KindUsage)
			read, write := num(tok, "cache", "read"), num(tok, "cache", "write")
			reasoning := num(tok, "reasoning")
			ev.Usage = d.usage(Usage{
				InputTokens:           num(tok, "input") + read + write,
				OutputTokens:          num(tok, "output") + reasoning,
				CachedInputTokens:     read,
				CacheWriteInputTokens: write,
				ReasoningTokens:       reasoning,
			})
			ev.CLICostUSD = d.numPtr(part, "cost")
		}
		if view(part, "reason") == "stop" {
			d.emit(base, KindFinal).Text = d.a.str(d.lastText)
		}
	case "error":
		ev := d.emit(base, KindError)
		ev.Fatal = true
		ev.Text = d.str(v, "error", "data", "message")
		if ev.Text == "" {
			ev.Text = d.str(v, "error", "name")
		}
		if ev.Text == "" {
			ev.Text = string(d.a.json(v.Get("error")))
		}
	}
}

// Slots of the values decodeOpenCodeFast reads.
const (
	oType = iota
	oTimestamp
	oPart
	oText
	oCallID
	oTool
	oState
	oInput
	oStart
	oEnd
	oStatus
	oOutput
	oExit
	oStateError
	oTokens
	oCacheRead
	oCacheWrite
	oReasoning
	oTokIn
	oTokOut
	oCost
	oReason
	oTime
	oMeta
	oCache
	oSlots
)

func leaf(keys []string, slots ...int) *scanNode {
	return &scanNode{keys: keys, slots: slots, subs: make([]*scanNode, len(keys))}
}

var openCodeScan = &scanNode{
	keys:  []string{"type", "timestamp", "part"},
	slots: []int{oType, oTimestamp, oPart},
	subs: []*scanNode{nil, nil, {
		keys:  []string{"text", "callID", "tool", "state", "tokens", "cost", "reason"},
		slots: []int{oText, oCallID, oTool, oState, oTokens, oCost, oReason},
		subs: []*scanNode{nil, nil, nil,
			{
				keys:  []string{"input", "time", "status", "output", "metadata", "error"},
				slots: []int{oInput, oTime, oStatus, oOutput, oMeta, oStateError},
				subs:  []*scanNode{nil, leaf([]string{"start", "end"}, oStart, oEnd), nil, nil, leaf([]string{"exit"}, oExit), nil},
			},
			{
				keys:  []string{"cache", "reasoning", "input", "output"},
				slots: []int{oCache, oReasoning, oTokIn, oTokOut},
				subs:  []*scanNode{leaf([]string{"read", "write"}, oCacheRead, oCacheWrite), nil, nil, nil},
			},
			nil, nil,
		},
	}},
}

// decodeOpenCodeFast is decodeOpenCode over the scanner's values; it returns
// false, having changed nothing, when the line needs fastjson (error events
// among them: their text may be the error object re-marshalled after
// lookups, which only fastjson reproduces).
func decodeOpenCodeFast(d *Decoder, line []byte) bool {
	if !d.scanLine(line, openCodeScan, oSlots) {
		return false
	}
	typ := d.stype(oType)
	if typ == "error" {
		return false
	}
	base := Event{Agent: d.agent, Line: d.line, Raw: line, Type: typ}
	base.Time = d.smsTime(oTimestamp)
	switch base.Type {
	case "step_start":
		d.emit(base, KindMarker)
	case "text":
		t := d.sstr(oText)
		d.lastText = append(d.lastText[:0], t...)
		d.emit(base, KindText).Text = t
	case "reasoning":
		d.emit(base, KindReasoning).Text = d.sstr(oText)
	case "tool_use":
		if !d.shas(oPart) {
			break
		}
		id := d.sstr(oCallID)
		ev := d.emit(base, KindToolCall)
		ev.Tool = d.tool(ToolCall{ID: id, Name: d.sstr(oTool)})
		if !d.shas(oState) {
			break
		}
		ev.Tool.Input = d.sjson(oInput)
		if t := d.smsTime(oStart); !t.IsZero() {
			ev.Time = t
		}
		status := d.sview(oStatus)
		if status != "completed" && status != "error" {
			break
		}
		res := d.emit(base, KindToolResult)
		res.Result = d.result(ToolResult{ID: id, Output: d.sstr(oOutput), ExitCode: d.sintPtr(oExit),
			IsError: status == "error"})
		if status == "error" && res.Result.Output == "" {
			res.Result.Output = d.sstr(oStateError)
		}
		if res.Result.ExitCode != nil && *res.Result.ExitCode != 0 {
			res.Result.IsError = true
		}
		if t := d.smsTime(oEnd); !t.IsZero() {
			res.Time = t
		}
	case "step_finish":
		if !d.shas(oPart) {
			break
		}
		if d.shas(oTokens) {
			ev := d.emit(base, KindUsage)
			read, write := d.snum(oCacheRead), d.snum(oCacheWrite)
			reasoning := d.snum(oReasoning)
			ev.Usage = d.usage(Usage{
				InputTokens:           d.snum(oTokIn) + read + write,
				OutputTokens:          d.snum(oTokOut) + reasoning,
				CachedInputTokens:     read,
				CacheWriteInputTokens: write,
				ReasoningTokens:       reasoning,
			})
			ev.CLICostUSD = d.snumPtr(oCost)
		}
		if d.sview(oReason) == "stop" {
			d.emit(base, KindFinal).Text = d.a.str(d.lastText)
		}
	}
	if len(d.out) == 0 {
		// as Decode does: the line's own fields, not its time
		base.Time = time.Time{}
		d.emit(base, KindUnknown)
	}
	return true
}
