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
		t := str(part, "text")
		d.lastText = append(d.lastText[:0], t...)
		d.emit(base, KindText).Text = t
	case "reasoning":
		d.emit(base, KindReasoning).Text = str(part, "text")
	case "tool_use":
		if part == nil {
			return
		}
		st := part.Get("state")
		id := str(part, "callID")
		ev := d.emit(base, KindToolCall)
		ev.Tool = &ToolCall{ID: id, Name: str(part, "tool")}
		if st == nil {
			return
		}
		ev.Tool.Input = rawJSON(st.Get("input"))
		if t := msTime(st, "time", "start"); !t.IsZero() {
			ev.Time = t
		}
		status := str(st, "status")
		if status != "completed" && status != "error" {
			return
		}
		res := d.emit(base, KindToolResult)
		res.Result = &ToolResult{ID: id, Output: str(st, "output"), ExitCode: intPtr(st, "metadata", "exit"),
			IsError: status == "error"}
		if status == "error" && res.Result.Output == "" {
			res.Result.Output = str(st, "error")
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
			ev.Usage = &Usage{
				InputTokens:           num(tok, "input") + read + write,
				OutputTokens:          num(tok, "output") + reasoning,
				CachedInputTokens:     read,
				CacheWriteInputTokens: write,
				ReasoningTokens:       reasoning,
			}
			ev.CLICostUSD = numPtr(part, "cost")
		}
		if str(part, "reason") == "stop" {
			d.emit(base, KindFinal).Text = string(d.lastText)
		}
	case "error":
		ev := d.emit(base, KindError)
		ev.Fatal = true
		ev.Text = str(v, "error", "data", "message")
		if ev.Text == "" {
			ev.Text = str(v, "error", "name")
		}
		if ev.Text == "" {
			ev.Text = string(rawJSON(v.Get("error")))
		}
	}
}
