package trace

import (
	"strings"

	"github.com/valyala/fastjson"
)

func init() {
	builtin(AgentCodex, format{decode: decodeCodex, cli: true,
		init: func(d *Decoder) { d.started = map[string]bool{} }})
}

// decodeCodex decodes `codex exec --json` lines: thread.started, turn.started,
// item.started/updated/completed, turn.completed{usage} (summed per turn),
// turn.failed and top-level error (a retry notice such as "Reconnecting...").
// The trace carries no timestamps.
func decodeCodex(d *Decoder, v *fastjson.Value, base Event) {
	switch base.Type {
	case "thread.started":
		d.emit(base, KindSession).Session = d.session(Session{ID: d.str(v, "thread_id")})
	case "turn.started":
		d.lastText = d.lastText[:0]
		d.emit(base, KindMarker)
	case "turn.completed":
		ev := d.emit(base, KindUsage)
		ev.Usage = d.usage(Usage{
			InputTokens:           num(v, "usage", "input_tokens"),
			OutputTokens:          num(v, "usage", "output_tokens"),
			CachedInputTokens:     num(v, "usage", "cached_input_tokens"),
			CacheWriteInputTokens: num(v, "usage", "cache_write_input_tokens"),
			ReasoningTokens:       num(v, "usage", "reasoning_output_tokens"),
		})
		d.emit(base, KindFinal).Text = d.a.str(d.lastText)
	case "turn.failed":
		ev := d.emit(base, KindError)
		ev.Fatal = true
		ev.Text = d.str(v, "error", "message")
		if ev.Text == "" {
			ev.Text = string(d.a.json(v.Get("error")))
		}
	case "error":
		d.emit(base, KindError).Text = d.str(v, "message")
	case "item.started", "item.updated", "item.completed":
		item := v.Get("item")
		if item == nil {
			return
		}
		d.codexItem(base, item)
	}
}

func (d *Decoder) codexItem(base Event, item *fastjson.Value) {
	phase := base.Type
	typ := d.known(view(item, "type"))
	id := d.str(item, "id")
	base.Type = codexItemType(phase, typ)
	completed := phase == "item.completed"
	switch typ {
	case "agent_message":
		if completed {
			t := d.str(item, "text")
			d.lastText = append(d.lastText[:0], t...)
			d.emit(base, KindText).Text = t
			return
		}
	case "reasoning":
		if completed {
			d.emit(base, KindReasoning).Text = d.str(item, "text")
			return
		}
	case "error":
		d.emit(base, KindError).Text = d.str(item, "message")
		return
	case "command_execution", "file_change", "mcp_tool_call", "web_search":
		if phase == "item.updated" {
			break
		}
		if !completed || !d.started[id] {
			ev := d.emit(base, KindToolCall)
			ev.Tool = d.codexCall(typ, id, item)
			if !completed {
				d.started[strings.Clone(id)] = true // id may be recycled (transient)
				return
			}
		}
		delete(d.started, id)
		ev := d.emit(base, KindToolResult)
		ev.Result = d.codexResult(typ, id, item)
		return
	}
	d.emit(base, KindMarker)
}

func (d *Decoder) codexCall(typ, id string, item *fastjson.Value) *ToolCall {
	tc := d.tool(ToolCall{ID: id, Name: typ})
	switch typ {
	case "command_execution":
		tc.Input = d.objectWith("command", item)
	case "file_change":
		tc.Input = d.a.json(item.Get("changes"))
	case "mcp_tool_call":
		tc.Name = d.str(item, "server") + "." + d.str(item, "tool")
		tc.Input = d.a.json(item.Get("arguments"))
	case "web_search":
		tc.Input = d.objectWith("query", item)
	}
	return tc
}

func (d *Decoder) codexResult(typ, id string, item *fastjson.Value) *ToolResult {
	status := d.known(view(item, "status"))
	r := d.result(ToolResult{ID: id, IsError: status == "failed" || status == "declined"})
	switch typ {
	case "command_execution":
		r.Output = d.str(item, "aggregated_output")
		r.ExitCode = d.intPtr(item, "exit_code")
		if r.ExitCode != nil && *r.ExitCode != 0 {
			r.IsError = true
		}
	case "file_change":
		var sb strings.Builder
		for i, c := range item.GetArray("changes") {
			if i > 0 {
				sb.WriteByte('\n')
			}
			sb.WriteString(d.str(c, "kind") + " " + d.str(c, "path"))
		}
		r.Output = sb.String()
	case "mcp_tool_call":
		if e := d.str(item, "error", "message"); e != "" {
			r.Output, r.IsError = e, true
		} else {
			r.Output = string(d.a.json(item.Get("result")))
		}
	default:
		r.Output = status
	}
	return r
}

// codexItemType names an item event "phase/type", without allocating for the
// common ones.
func codexItemType(phase, typ string) string {
	if phase == "item.completed" {
		switch typ {
		case "command_execution":
			return "item.completed/command_execution"
		case "agent_message":
			return "item.completed/agent_message"
		case "reasoning":
			return "item.completed/reasoning"
		case "error":
			return "item.completed/error"
		}
	} else if phase == "item.started" && typ == "command_execution" {
		return "item.started/command_execution"
	}
	return phase + "/" + typ
}

// objectWith returns {"key": value} for a field of item, compactly.
func (d *Decoder) objectWith(key string, item *fastjson.Value) []byte {
	b, n := d.a.begin()
	b = append(b, '{', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	if x := item.Get(key); x != nil {
		b = x.MarshalTo(b)
	} else {
		b = append(b, "null"...)
	}
	return d.a.end(append(b, '}'), n)
}
