package trace

import "github.com/valyala/fastjson"

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
