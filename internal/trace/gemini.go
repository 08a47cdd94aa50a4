package trace

import "github.com/valyala/fastjson"

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
