package trace

import "github.com/valyala/fastjson"

// decodeScripted decodes the trace of ptb's scripted agent
// (internal/agent/scripted): session_start, assistant{text},
// tool_call{id, name, input}, tool_result{id, output, exit_code, is_error}
// and result{final_message, usage}.
func decodeScripted(d *Decoder, v *fastjson.Value, base Event) {
	switch base.Type {
	case "session_start":
		d.emit(base, KindSession).Session = &Session{}
	case "assistant":
		t := str(v, "text")
		d.lastText = append(d.lastText[:0], t...)
		d.emit(base, KindText).Text = t
	case "tool_call":
		d.emit(base, KindToolCall).Tool = &ToolCall{ID: str(v, "id"), Name: str(v, "name"), Input: rawJSON(v.Get("input"))}
	case "tool_result":
		d.emit(base, KindToolResult).Result = &ToolResult{ID: str(v, "id"), Output: str(v, "output"),
			ExitCode: intPtr(v, "exit_code"), IsError: v.GetBool("is_error")}
	case "result":
		if u := v.Get("usage"); u != nil {
			d.emit(base, KindUsage).Usage = &Usage{InputTokens: num(u, "input_tokens"), OutputTokens: num(u, "output_tokens")}
		}
		d.emit(base, KindFinal).Text = str(v, "final_message")
	}
}
