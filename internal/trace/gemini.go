package trace

import (
	"time"

	"github.com/valyala/fastjson"
)

func init() {
	builtin(AgentGemini, format{decode: decodeGemini, fast: decodeGeminiFast, cli: true,
		scan: geminiScan, slots: gSlots})
}

// decodeGemini decodes Gemini CLI's --output-format stream-json lines: init,
// message (assistant text in delta chunks), tool_use, tool_result, error and
// result{status, stats}. Usage comes only from result.stats.
func decodeGemini(d *Decoder, v *fastjson.Value, base Event) {
	base.Time = d.isoTime(v, "timestamp")
	wasOpen := d.textOpen
	d.textOpen = false
	switch base.Type {
	case "init":
		d.emit(base, KindSession).Session = d.session(Session{ID: d.str(v, "session_id"), Model: d.str(v, "model")})
	case "message":
		text := d.str(v, "content")
		if view(v, "role") != "assistant" {
			d.emit(base, KindUser).Text = text
			return
		}
		delta := boolean(v, "delta")
		if delta && wasOpen {
			d.lastText = append(d.lastText, text...)
		} else {
			d.lastText = append(d.lastText[:0], text...)
		}
		d.textOpen = delta
		ev := d.emit(base, KindText)
		ev.Text, ev.Delta = text, delta && wasOpen
	case "tool_use":
		ev := d.emit(base, KindToolCall)
		ev.Tool = d.tool(ToolCall{ID: d.str(v, "tool_id"), Name: d.str(v, "tool_name"), Input: d.a.json(v.Get("parameters"))})
	case "tool_result":
		ev := d.emit(base, KindToolResult)
		ev.Result = d.result(ToolResult{ID: d.str(v, "tool_id"), Output: d.str(v, "output"), IsError: view(v, "status") == "error"})
		if e := d.str(v, "error", "message"); e != "" && ev.Result.Output == "" {
			ev.Result.Output = e
		}
	case "error":
		ev := d.emit(base, KindError)
		ev.Text = d.str(v, "message")
		ev.Fatal = view(v, "severity") == "error"
	case "result":
		if st := v.Get("stats"); st != nil {
			ev := d.emit(base, KindUsage)
			ev.Usage = d.usage(Usage{
				InputTokens:       num(st, "input_tokens"),
				OutputTokens:      num(st, "output_tokens"),
				CachedInputTokens: num(st, "cached"),
			})
		}
		if s := view(v, "status"); s != "" && s != "success" {
			ev := d.emit(base, KindError)
			ev.Fatal = true
			ev.Text = d.str(v, "error", "message")
			if ev.Text == "" {
				ev.Text = "status " + s
			}
			return
		}
		d.emit(base, KindFinal).Text = d.a.str(d.lastText)
		d.lastText = d.lastText[:0]
	}
}

// Slots of the values decodeGeminiFast reads.
const (
	gType = iota
	gTimestamp
	gSessionID
	gModel
	gContent
	gRole
	gDelta
	gToolID
	gToolName
	gParameters
	gOutput
	gStatus
	gError
	gErrorMessage
	gMessage
	gSeverity
	gStats
	gStatsInput
	gStatsOutput
	gStatsCached
	gSlots
)

var geminiScan = &scanNode{
	keys:  []string{"type", "timestamp", "session_id", "model", "content", "role", "delta", "tool_id", "tool_name", "parameters", "output", "status", "error", "message", "severity", "stats"},
	slots: []int{gType, gTimestamp, gSessionID, gModel, gContent, gRole, gDelta, gToolID, gToolName, gParameters, gOutput, gStatus, gError, gMessage, gSeverity, gStats},
	subs: []*scanNode{nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil,
		{keys: []string{"message"}, slots: []int{gErrorMessage}, subs: []*scanNode{nil}},
		nil, nil,
		{keys: []string{"input_tokens", "output_tokens", "cached"}, slots: []int{gStatsInput, gStatsOutput, gStatsCached}, subs: []*scanNode{nil, nil, nil}},
	},
}

// decodeGeminiFast is decodeGemini over the scanner's values; it returns
// false, having changed nothing, when the line needs fastjson.
func decodeGeminiFast(d *Decoder, line []byte) bool {
	if !d.scanLine(line, geminiScan, gSlots) {
		return false
	}
	base := Event{Agent: d.agent, Line: d.line, Raw: line, Type: d.stype(gType)}
	base.Time = d.ts.parse(d.sview(gTimestamp))
	wasOpen := d.textOpen
	d.textOpen = false
	switch base.Type {
	case "init":
		d.emit(base, KindSession).Session = d.session(Session{ID: d.sstr(gSessionID), Model: d.sstr(gModel)})
	case "message":
		text := d.sstr(gContent)
		if d.sview(gRole) != "assistant" {
			d.emit(base, KindUser).Text = text
			break
		}
		delta := d.sbool(gDelta)
		if delta && wasOpen {
			d.lastText = append(d.lastText, text...)
		} else {
			d.lastText = append(d.lastText[:0], text...)
		}
		d.textOpen = delta
		ev := d.emit(base, KindText)
		ev.Text, ev.Delta = text, delta && wasOpen
	case "tool_use":
		ev := d.emit(base, KindToolCall)
		ev.Tool = d.tool(ToolCall{ID: d.sstr(gToolID), Name: d.sstr(gToolName), Input: d.sjson(gParameters)})
	case "tool_result":
		ev := d.emit(base, KindToolResult)
		ev.Result = d.result(ToolResult{ID: d.sstr(gToolID), Output: d.sstr(gOutput), IsError: d.sview(gStatus) == "error"})
		if e := d.sstr(gErrorMessage); e != "" && ev.Result.Output == "" {
			ev.Result.Output = e
		}
	case "error":
		ev := d.emit(base, KindError)
		ev.Text = d.sstr(gMessage)
		ev.Fatal = d.sview(gSeverity) == "error"
	case "result":
		if d.shas(gStats) {
			ev := d.emit(base, KindUsage)
			ev.Usage = d.usage(Usage{
				InputTokens:       d.snum(gStatsInput),
				OutputTokens:      d.snum(gStatsOutput),
				CachedInputTokens: d.snum(gStatsCached),
			})
		}
		if s := d.sview(gStatus); s != "" && s != "success" {
			ev := d.emit(base, KindError)
			ev.Fatal = true
			ev.Text = d.sstr(gErrorMessage)
			if ev.Text == "" {
				ev.Text = "status " + s
			}
			break
		}
		d.emit(base, KindFinal).Text = d.a.str(d.lastText)
		d.lastText = d.lastText[:0]
	}
	if len(d.out) == 0 {
		// as Decode does: the line's own fields, not its time
		base.Time = time.Time{}
		d.emit(base, KindUnknown)
	}
	return true
}
