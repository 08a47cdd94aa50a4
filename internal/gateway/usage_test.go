package gateway

import (
	"testing"

	"github.com/ptb-dev/ptb/internal/trace"
)

func TestMeter(t *testing.T) {
	cases := []struct {
		name, provider string
		sse            bool
		body           string
		want           trace.Usage
		model          string
	}{
		{"anthropic stream, cache, delta carries final input", Anthropic, true,
			"event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-opus-4-5-20251101\",\"usage\":{\"input_tokens\":3,\"cache_read_input_tokens\":1000,\"cache_creation_input_tokens\":200,\"output_tokens\":1}}}\r\n\r\n" +
				"event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"usage is fine\"}}\r\n\r\n" +
				"event: message_delta\r\ndata: {\"type\":\"message_delta\",\"usage\":{\"input_tokens\":4,\"cache_read_input_tokens\":1000,\"cache_creation_input_tokens\":200,\"output_tokens\":77}}\r\n\r\n",
			trace.Usage{InputTokens: 1204, OutputTokens: 77, CachedInputTokens: 1000, CacheWriteInputTokens: 200}, "claude-opus-4-5-20251101"},
		{"openai responses stream", OpenAI, true,
			"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"model\":\"gpt-5\",\"usage\":null}}\n\n" +
				"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"model\":\"gpt-5-2025-08-07\",\"usage\":{\"input_tokens\":500,\"input_tokens_details\":{\"cached_tokens\":300},\"output_tokens\":90,\"output_tokens_details\":{\"reasoning_tokens\":60}}}}\n\n",
			trace.Usage{InputTokens: 500, OutputTokens: 90, CachedInputTokens: 300, ReasoningTokens: 60}, "gpt-5-2025-08-07"},
		{"chat stream with usage chunk", OpenAI, true,
			"data: {\"model\":\"gpt-5-mini\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n" +
				"data: {\"model\":\"gpt-5-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":9,\"prompt_tokens_details\":{\"cached_tokens\":32},\"completion_tokens_details\":{\"reasoning_tokens\":4}}}\n\n" +
				"data: [DONE]\n\n",
			trace.Usage{InputTokens: 40, OutputTokens: 9, CachedInputTokens: 32, ReasoningTokens: 4}, "gpt-5-mini"},
		{"gemini sse, last chunk wins, thoughts are output", Gemini, true,
			"data: {\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":10,\"candidatesTokenCount\":1},\"modelVersion\":\"gemini-2.5-pro\"}\n\n" +
				"data: {\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":10,\"candidatesTokenCount\":5,\"thoughtsTokenCount\":20,\"cachedContentTokenCount\":4},\"modelVersion\":\"gemini-2.5-pro\"}\n\n",
			trace.Usage{InputTokens: 10, OutputTokens: 25, CachedInputTokens: 4, ReasoningTokens: 20}, "gemini-2.5-pro"},
		{"gemini JSON array stream", Gemini, false,
			`[{"candidates":[]},{"usageMetadata":{"promptTokenCount":7,"candidatesTokenCount":3},"modelVersion":"gemini-2.5-flash"}]`,
			trace.Usage{InputTokens: 7, OutputTokens: 3}, "gemini-2.5-flash"},
		{"anthropic json", Anthropic, false,
			`{"model":"claude-haiku-4-5","usage":{"input_tokens":5,"cache_read_input_tokens":10,"output_tokens":2}}`,
			trace.Usage{InputTokens: 15, OutputTokens: 2, CachedInputTokens: 10}, "claude-haiku-4-5"},
		{"error body: no usage", OpenAI, false, `{"error":{"message":"bad"}}`, trace.Usage{}, ""},
		{"sse without usage", OpenAI, true, "data: {\"x\":1}\n\n", trace.Usage{}, ""},
	}
	for _, c := range cases {
		// Every split of the stream into two writes gives the same usage.
		for cut := 0; cut <= len(c.body); cut += max(1, len(c.body)/37) {
			m := newMeter(c.provider, c.sse)
			m.write([]byte(c.body[:cut]))
			m.write([]byte(c.body[cut:]))
			got, model := m.finish()
			if got != c.want || model != c.model {
				t.Errorf("%s (cut %d): got %+v %q, want %+v %q", c.name, cut, got, model, c.want, c.model)
				break
			}
		}
	}
}
