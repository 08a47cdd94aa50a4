package trace

import "github.com/valyala/fastjson"

func init() { builtin(AgentScripted, format{decode: decodeScripted}) }

// decodeScripted decodes the trace of ptb's scripted agent
// (internal/agent/scripted): session_start, assistant{text},
// tool_call{id, name, input}, tool_result{id, output, exit_code, is_error}
// and result{final_message, usage}.
func decodeScripted(d *Decoder, v *fastjson.Value, base Event) {
	switch base.Type {
	case "session_start":
		d.emit(base, KindSession).Session = d.session(Session{})
	case "assistant":
		t := d.str(v, "text")
		d.lastText = append(d.lastText[:0], t...)
		d.emit(base, KindText).Text = t
	case "tool_call":
		d.emit(base, KindToolCall).Tool = d.tool(ToolCall{ID: d.str(v, "id"), Name: d.str(v, "name"), Input: d.a.json(v.Get("input"))})
	case "tool_result":
		d.emit(base, KindToolResult).Result = d.result(ToolResult{ID: d.str(v, "id"), Output: d.str(v, "output"),
			ExitCode: d.intPtr(v, "exit_code"), IsError: v.GetBool("is_error")})
	case "result":
		if u := v.Get("usage"); u != nil {
			d.emit(base, KindUsage).Usage = d.usage(Usage{InputTokens: num(u, "input_tokens"), OutputTokens: num(u, "output_tokens")})
		}
		d.emit(base, KindFinal).Text = d.str(v, "final_message")
	}
}
