package modelserver

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// --- request analysis -------------------------------------------------------

func list(v any) []any { l, _ := v.([]any); return l }

func obj(v any) map[string]any { m, _ := v.(map[string]any); return m }

func anthropicTools(body map[string]any) map[string]any {
	out := map[string]any{}
	for _, t := range list(body["tools"]) {
		if m := obj(t); m != nil {
			if n, _ := m["name"].(string); n != "" {
				out[n] = m["input_schema"]
			}
		}
	}
	return out
}

func anthropicResults(body map[string]any) int {
	n := 0
	for _, m := range list(body["messages"]) {
		for _, b := range list(obj(m)["content"]) {
			if obj(b)["type"] == "tool_result" {
				n++
			}
		}
	}
	return n
}

func anthropicWantsJSON(body map[string]any) bool {
	return obj(obj(body["output_config"])["format"])["type"] == "json_schema"
}

func responsesTools(body map[string]any) map[string]any {
	out := map[string]any{}
	for _, t := range list(body["tools"]) {
		m := obj(t)
		if m["type"] == "function" {
			if n, _ := m["name"].(string); n != "" {
				out[n] = m["parameters"]
			}
		} else if typ, _ := m["type"].(string); typ != "" {
			out["__"+typ] = nil // web_search, namespace...: tools all the same
		}
	}
	return out
}

func responsesResults(body map[string]any) int {
	n := 0
	for _, it := range list(body["input"]) {
		if typ, _ := obj(it)["type"].(string); strings.HasSuffix(typ, "_output") {
			n++
		}
	}
	return n
}

func chatTools(body map[string]any) map[string]any {
	out := map[string]any{}
	for _, t := range list(body["tools"]) {
		f := obj(obj(t)["function"])
		if n, _ := f["name"].(string); n != "" {
			out[n] = f["parameters"]
		}
	}
	return out
}

func chatResults(body map[string]any) int {
	n := 0
	for _, m := range list(body["messages"]) {
		if obj(m)["role"] == "tool" {
			n++
		}
	}
	return n
}

func geminiTools(body map[string]any) map[string]any {
	out := map[string]any{}
	for _, t := range list(body["tools"]) {
		for _, fd := range list(obj(t)["functionDeclarations"]) {
			m := obj(fd)
			if n, _ := m["name"].(string); n != "" {
				p := m["parameters"]
				if p == nil {
					p = m["parametersJsonSchema"]
				}
				out[n] = p
			}
		}
	}
	return out
}

func geminiResults(body map[string]any) int {
	n := 0
	for _, c := range list(body["contents"]) {
		for _, p := range list(obj(c)["parts"]) {
			if _, ok := obj(p)["functionResponse"]; ok {
				n++
			}
		}
	}
	return n
}

func geminiWantsJSON(body map[string]any) bool {
	gc := obj(body["generationConfig"])
	return gc["responseMimeType"] == "application/json" || gc["responseJsonSchema"] != nil || gc["responseSchema"] != nil
}

// argsJSON encodes tool arguments as clients see them from real models
// (no HTML escaping of <, >, &).
func argsJSON(a map[string]any) string {
	var sb strings.Builder
	enc := json.NewEncoder(&sb)
	enc.SetEscapeHTML(false)
	enc.Encode(a)
	return strings.TrimSuffix(sb.String(), "\n")
}

// --- Anthropic Messages --------------------------------------------------------

func (s *Server) anthropic(w http.ResponseWriter, body map[string]any, rep reply) {
	model, _ := body["model"].(string)
	id := s.newID("msg_")
	var blocks []map[string]any
	if rep.Turn.Reasoning != "" && !rep.Side {
		blocks = append(blocks, map[string]any{"type": "thinking", "thinking": rep.Turn.Reasoning, "signature": "scripted"})
	}
	if rep.Text != "" {
		blocks = append(blocks, map[string]any{"type": "text", "text": rep.Text})
	}
	stop := "end_turn"
	if rep.Tool != "" {
		blocks = append(blocks, map[string]any{"type": "tool_use", "id": s.newID("toolu_"), "name": rep.Tool, "input": rep.Args})
		stop = "tool_use"
	}
	u := s.script.Usage
	usage := map[string]any{"input_tokens": u.InputTokens, "output_tokens": u.OutputTokens,
		"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
	if stream, _ := body["stream"].(bool); !stream {
		writeJSON(w, 200, map[string]any{"id": id, "type": "message", "role": "assistant", "model": model,
			"content": blocks, "stop_reason": stop, "stop_sequence": nil, "usage": usage})
		return
	}
	e := startSSE(w)
	e.send("message_start", map[string]any{"type": "message_start", "message": map[string]any{
		"id": id, "type": "message", "role": "assistant", "model": model, "content": []any{},
		"stop_reason": nil, "stop_sequence": nil,
		"usage": map[string]any{"input_tokens": u.InputTokens, "output_tokens": 1,
			"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}})
	for i, b := range blocks {
		switch b["type"] {
		case "thinking":
			e.send("content_block_start", map[string]any{"type": "content_block_start", "index": i,
				"content_block": map[string]any{"type": "thinking", "thinking": "", "signature": ""}})
			e.send("content_block_delta", map[string]any{"type": "content_block_delta", "index": i,
				"delta": map[string]any{"type": "thinking_delta", "thinking": b["thinking"]}})
			e.send("content_block_delta", map[string]any{"type": "content_block_delta", "index": i,
				"delta": map[string]any{"type": "signature_delta", "signature": "scripted"}})
		case "text":
			e.send("content_block_start", map[string]any{"type": "content_block_start", "index": i,
				"content_block": map[string]any{"type": "text", "text": ""}})
			for _, piece := range split2(b["text"].(string)) {
				e.send("content_block_delta", map[string]any{"type": "content_block_delta", "index": i,
					"delta": map[string]any{"type": "text_delta", "text": piece}})
			}
		case "tool_use":
			e.send("content_block_start", map[string]any{"type": "content_block_start", "index": i,
				"content_block": map[string]any{"type": "tool_use", "id": b["id"], "name": b["name"], "input": map[string]any{}}})
			e.send("content_block_delta", map[string]any{"type": "content_block_delta", "index": i,
				"delta": map[string]any{"type": "input_json_delta", "partial_json": argsJSON(rep.Args)}})
		}
		e.send("content_block_stop", map[string]any{"type": "content_block_stop", "index": i})
	}
	e.send("message_delta", map[string]any{"type": "message_delta",
		"delta": map[string]any{"stop_reason": stop, "stop_sequence": nil},
		"usage": map[string]any{"output_tokens": u.OutputTokens}})
	e.send("message_stop", map[string]any{"type": "message_stop"})
}

// --- OpenAI Responses -------------------------------------------------------

func (s *Server) responses(w http.ResponseWriter, body map[string]any, rep reply) {
	model, _ := body["model"].(string)
	u := s.script.Usage
	var items []map[string]any
	if rep.Turn.Reasoning != "" && !rep.Side {
		items = append(items, map[string]any{"type": "reasoning", "id": s.newID("rs_"),
			"summary": []any{map[string]any{"type": "summary_text", "text": rep.Turn.Reasoning}}})
	}
	if rep.Text != "" {
		items = append(items, map[string]any{"type": "message", "id": s.newID("msg_"), "role": "assistant",
			"status": "completed", "content": []any{map[string]any{"type": "output_text", "text": rep.Text, "annotations": []any{}}}})
	}
	if rep.Tool != "" {
		items = append(items, map[string]any{"type": "function_call", "id": s.newID("fc_"), "call_id": s.newID("call_"),
			"name": rep.Tool, "arguments": argsJSON(rep.Args), "status": "completed"})
	}
	resp := map[string]any{"id": s.newID("resp_"), "object": "response", "created_at": time.Now().Unix(),
		"model": model, "status": "completed", "output": items,
		"usage": map[string]any{"input_tokens": u.InputTokens, "input_tokens_details": map[string]any{"cached_tokens": 0},
			"output_tokens": u.OutputTokens, "output_tokens_details": map[string]any{"reasoning_tokens": 0},
			"total_tokens": u.InputTokens + u.OutputTokens}}
	if stream, _ := body["stream"].(bool); !stream {
		writeJSON(w, 200, resp)
		return
	}
	e := startSSE(w)
	seq := 0
	send := func(typ string, m map[string]any) {
		m["type"] = typ
		m["sequence_number"] = seq
		seq++
		e.send(typ, m)
	}
	created := map[string]any{}
	for k, v := range resp {
		created[k] = v
	}
	created["status"], created["output"], created["usage"] = "in_progress", []any{}, nil
	send("response.created", map[string]any{"response": created})
	for i, it := range items {
		send("response.output_item.added", map[string]any{"output_index": i, "item": it})
		switch it["type"] {
		case "message":
			for _, piece := range split2(rep.Text) {
				send("response.output_text.delta", map[string]any{"item_id": it["id"], "output_index": i,
					"content_index": 0, "delta": piece})
			}
			send("response.output_text.done", map[string]any{"item_id": it["id"], "output_index": i,
				"content_index": 0, "text": rep.Text})
		case "reasoning":
			send("response.reasoning_summary_text.delta", map[string]any{"item_id": it["id"], "output_index": i,
				"summary_index": 0, "delta": rep.Turn.Reasoning})
			send("response.reasoning_summary_text.done", map[string]any{"item_id": it["id"], "output_index": i,
				"summary_index": 0, "text": rep.Turn.Reasoning})
		}
		send("response.output_item.done", map[string]any{"output_index": i, "item": it})
	}
	send("response.completed", map[string]any{"response": resp})
}

// --- OpenAI Chat Completions ------------------------------------------------

func (s *Server) chat(w http.ResponseWriter, body map[string]any, rep reply) {
	model, _ := body["model"].(string)
	u := s.script.Usage
	usage := map[string]any{"prompt_tokens": u.InputTokens, "completion_tokens": u.OutputTokens,
		"total_tokens": u.InputTokens + u.OutputTokens}
	id := s.newID("chatcmpl-")
	finish := "stop"
	var tc map[string]any
	if rep.Tool != "" {
		finish = "tool_calls"
		tc = map[string]any{"id": s.newID("call_"), "type": "function",
			"function": map[string]any{"name": rep.Tool, "arguments": argsJSON(rep.Args)}}
	}
	if stream, _ := body["stream"].(bool); !stream {
		msg := map[string]any{"role": "assistant", "content": nil}
		if rep.Text != "" {
			msg["content"] = rep.Text
		}
		if rep.Turn.Reasoning != "" && !rep.Side {
			msg["reasoning_content"] = rep.Turn.Reasoning
		}
		if tc != nil {
			msg["tool_calls"] = []any{tc}
		}
		writeJSON(w, 200, map[string]any{"id": id, "object": "chat.completion", "created": time.Now().Unix(),
			"model": model, "choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": finish}},
			"usage": usage})
		return
	}
	e := startSSE(w)
	chunk := func(delta map[string]any, fin any) map[string]any {
		return map[string]any{"id": id, "object": "chat.completion.chunk", "created": time.Now().Unix(), "model": model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": fin}}}
	}
	if rep.Turn.Reasoning != "" && !rep.Side {
		e.send("", chunk(map[string]any{"role": "assistant", "reasoning_content": rep.Turn.Reasoning}, nil))
	}
	if rep.Text != "" {
		for _, piece := range split2(rep.Text) {
			e.send("", chunk(map[string]any{"role": "assistant", "content": piece}, nil))
		}
	}
	if tc != nil {
		tc["index"] = 0
		e.send("", chunk(map[string]any{"role": "assistant", "tool_calls": []any{tc}}, nil))
	}
	e.send("", chunk(map[string]any{}, finish))
	if inc, _ := obj(body["stream_options"])["include_usage"].(bool); inc {
		e.send("", map[string]any{"id": id, "object": "chat.completion.chunk", "created": time.Now().Unix(),
			"model": model, "choices": []any{}, "usage": usage})
	}
	e.send("", "[DONE]")
}

// --- Gemini generateContent / streamGenerateContent -------------------------

func (s *Server) gemini(w http.ResponseWriter, model string, stream bool, rep reply) {
	u := s.script.Usage
	var parts []map[string]any
	if rep.Turn.Reasoning != "" && !rep.Side {
		parts = append(parts, map[string]any{"text": rep.Turn.Reasoning, "thought": true})
	}
	var textParts []string
	if rep.Text != "" {
		textParts = []string{rep.Text}
		if stream {
			textParts = split2(rep.Text)
		}
	}
	if rep.Tool != "" {
		parts = append(parts, map[string]any{"functionCall": map[string]any{"name": rep.Tool, "args": rep.Args}})
	}
	respID := s.newID("")
	final := func(ps []map[string]any) map[string]any {
		return map[string]any{
			"candidates": []any{map[string]any{"content": map[string]any{"role": "model", "parts": ps},
				"finishReason": "STOP", "index": 0}},
			"usageMetadata": map[string]any{"promptTokenCount": u.InputTokens, "candidatesTokenCount": u.OutputTokens,
				"totalTokenCount": u.InputTokens + u.OutputTokens},
			"modelVersion": model, "responseId": respID}
	}
	if !stream {
		all := parts
		for _, t := range textParts {
			all = append(all, map[string]any{"text": t})
		}
		writeJSON(w, 200, final(all))
		return
	}
	e := startSSE(w)
	// text chunks first, then the rest with usage in the last chunk
	last := parts
	if len(textParts) > 0 {
		for _, t := range textParts[:len(textParts)-1] {
			e.send("", map[string]any{"candidates": []any{map[string]any{"content": map[string]any{"role": "model",
				"parts": []any{map[string]any{"text": t}}}, "index": 0}}, "modelVersion": model, "responseId": respID})
		}
		last = append([]map[string]any{{"text": textParts[len(textParts)-1]}}, parts...)
		if rep.Turn.Reasoning != "" && !rep.Side {
			// thought parts lead the reply
			last = append(append([]map[string]any{parts[0]}, map[string]any{"text": textParts[len(textParts)-1]}), parts[1:]...)
		}
	}
	e.send("", final(last))
}
