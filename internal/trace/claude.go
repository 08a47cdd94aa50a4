package trace

import (
	"strings"

	"github.com/valyala/fastjson"
)

func init() { builtin(AgentClaude, format{decode: decodeClaude, cli: true}) }

// decodeClaude decodes Claude Code's --output-format stream-json lines:
// system (init, api_retry, ...), assistant (content blocks text, thinking,
// tool_use), user (tool_result blocks), result. Usage comes only from result:
// per-assistant usage repeats across events of one message and is never summed.
func decodeClaude(d *Decoder, v *fastjson.Value, base Event) {
	base.Time = d.isoTime(v, "timestamp")
	switch base.Type {
	case "system":
		sub := view(v, "subtype")
		d.unesc = append(append(d.unesc[:0], "system/"...), sub...)
		base.Type = d.a.str(d.unesc)
		switch sub {
		case "init":
			ev := d.emit(base, KindSession)
			ev.Session = d.session(Session{ID: d.str(v, "session_id"), Model: d.str(v, "model"),
				CWD: d.str(v, "cwd"), Version: d.str(v, "claude_code_version")})
		case "api_retry":
			ev := d.emit(base, KindError)
			msg := d.str(v, "error")
			if msg == "" {
				msg = string(d.a.json(v.Get("error")))
			}
			ev.Text = "api retry: " + msg
		}
	case "assistant", "user":
		content := v.Get("message", "content")
		if content == nil {
			return
		}
		if content.Type() == fastjson.TypeString {
			b, _ := content.StringBytes()
			k := KindUser
			if base.Type == "assistant" {
				k = KindText
			}
			d.emit(base, k).Text = string(b)
			return
		}
		blocks, _ := content.Array()
		for _, b := range blocks {
			d.claudeBlock(base, b)
		}
	case "result":
		if v.Get("usage") != nil || v.Get("total_cost_usd") != nil {
			ev := d.emit(base, KindUsage)
			read := num(v, "usage", "cache_read_input_tokens")
			write := num(v, "usage", "cache_creation_input_tokens")
			ev.Usage = d.usage(Usage{
				InputTokens:           num(v, "usage", "input_tokens") + read + write,
				OutputTokens:          num(v, "usage", "output_tokens"),
				CachedInputTokens:     read,
				CacheWriteInputTokens: write,
			})
			ev.CLICostUSD = d.numPtr(v, "total_cost_usd")
		}
		text := d.str(v, "result")
		if sub := view(v, "subtype"); boolean(v, "is_error") || (sub != "" && sub != "success") {
			ev := d.emit(base, KindError)
			ev.Fatal = true
			ev.Text = text
			if ev.Text == "" {
				ev.Text = d.str(v, "subtype")
			}
			if errs := v.GetArray("errors"); len(errs) > 0 && text == "" {
				ev.Text = string(d.a.json(v.Get("errors")))
			}
			return
		}
		d.emit(base, KindFinal).Text = text
	}
}

func (d *Decoder) claudeBlock(base Event, b *fastjson.Value) {
	switch view(b, "type") {
	case "text":
		d.emit(base, KindText).Text = d.str(b, "text")
	case "thinking":
		d.emit(base, KindReasoning).Text = d.str(b, "thinking")
	case "redacted_thinking":
		d.emit(base, KindReasoning).Text = "(redacted)"
	case "tool_use", "server_tool_use":
		ev := d.emit(base, KindToolCall)
		ev.Tool = d.tool(ToolCall{ID: d.str(b, "id"), Name: d.str(b, "name"), Input: d.a.json(b.Get("input"))})
	case "tool_result":
		ev := d.emit(base, KindToolResult)
		ev.Result = d.result(ToolResult{ID: d.str(b, "tool_use_id"), IsError: boolean(b, "is_error")})
		c := b.Get("content")
		if c == nil {
			return
		}
		switch c.Type() {
		case fastjson.TypeString:
			s, _ := c.StringBytes()
			ev.Result.Output = d.a.str(s)
		case fastjson.TypeArray:
			var sb strings.Builder
			arr, _ := c.Array()
			for i, p := range arr {
				if i > 0 {
					sb.WriteByte('\n')
				}
				if t := view(p, "text"); t != "" {
					sb.WriteString(t)
				} else {
					sb.WriteString("[")
					sb.WriteString(view(p, "type"))
					sb.WriteString("]")
				}
			}
			ev.Result.Output = sb.String()
		}
	default:
		if base.Type == "user" {
			d.emit(base, KindUser).Text = d.str(b, "text")
		}
	}
}
