package gateway

import (
	"bytes"
	"encoding/json"

	"github.com/ptb-dev/ptb/internal/trace"
)

// maxMeterBody bounds the part of a non-streamed response kept to read its
// usage; maxMeterLine bounds one SSE line. Beyond them the usage is not
// read (the bytes still pass through).
const (
	maxMeterBody = 32 << 20
	maxMeterLine = 8 << 20
)

// meter reads token usage out of a response as it passes: from each SSE
// data line, or from the whole JSON body at the end.
type meter struct {
	provider string
	sse      bool
	body     []byte // non-SSE: the body (bounded); SSE: the first bytes, for errors
	over     bool   // the body passed maxMeterBody
	line     []byte
	skip     bool // the current SSE line passed maxMeterLine
	model    string

	// Anthropic reports input in message_start and output (and, lately,
	// input again) in message_delta; the others report everything at once.
	in, out, cacheRead, cacheWrite, reasoning int64
	seen                                      bool
}

func newMeter(provider string, sse bool) *meter { return &meter{provider: provider, sse: sse} }

func (m *meter) write(p []byte) {
	if !m.sse {
		if !m.over {
			if len(m.body)+len(p) > maxMeterBody {
				m.over, m.body = true, nil
			} else {
				m.body = append(m.body, p...)
			}
		}
		return
	}
	if len(m.body) < 4096 {
		m.body = append(m.body, p[:min(len(p), 4096-len(m.body))]...)
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			m.appendLine(p)
			return
		}
		m.appendLine(p[:i])
		p = p[i+1:]
		if !m.skip {
			m.sseLine(bytes.TrimSuffix(m.line, []byte("\r")))
		}
		m.line, m.skip = m.line[:0], false
	}
}

func (m *meter) appendLine(p []byte) {
	if m.skip {
		return
	}
	if len(m.line)+len(p) > maxMeterLine {
		m.skip, m.line = true, m.line[:0]
		return
	}
	m.line = append(m.line, p...)
}

func (m *meter) sseLine(l []byte) {
	data, ok := bytes.CutPrefix(l, []byte("data:"))
	if !ok {
		return
	}
	data = bytes.TrimSpace(data)
	// Only events that carry usage matter (usage, usageMetadata).
	if !bytes.Contains(data, []byte(`"usage`)) {
		return
	}
	m.event(data)
}

// finish reads a non-streamed body and returns the usage and the model the
// response names.
func (m *meter) finish() (trace.Usage, string) {
	if m.sse {
		if len(m.line) > 0 && !m.skip {
			m.sseLine(m.line)
		}
	} else if !m.over && len(m.body) > 0 {
		b := bytes.TrimSpace(m.body)
		if len(b) > 0 && b[0] == '[' { // Gemini streamGenerateContent without alt=sse
			var arr []json.RawMessage
			if json.Unmarshal(b, &arr) == nil {
				for _, e := range arr {
					m.event(e)
				}
			}
		} else {
			m.event(b)
		}
	}
	if !m.seen {
		return trace.Usage{}, m.model
	}
	u := trace.Usage{InputTokens: m.in, OutputTokens: m.out, CachedInputTokens: m.cacheRead,
		CacheWriteInputTokens: m.cacheWrite, ReasoningTokens: m.reasoning}
	if m.provider == Anthropic {
		// Anthropic's input_tokens excludes cache reads and writes; the
		// trace convention (and the price table) counts them in.
		u.InputTokens += m.cacheRead + m.cacheWrite
	}
	return u, m.model
}

type rawUsage struct {
	InputTokens      *int64 `json:"input_tokens"`
	OutputTokens     *int64 `json:"output_tokens"`
	CacheCreation    *int64 `json:"cache_creation_input_tokens"`
	CacheRead        *int64 `json:"cache_read_input_tokens"`
	PromptTokens     *int64 `json:"prompt_tokens"`
	CompletionTokens *int64 `json:"completion_tokens"`
	InputDetails     *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputDetails *struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	PromptDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionDetails *struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

type geminiUsage struct {
	Prompt     int64 `json:"promptTokenCount"`
	Candidates int64 `json:"candidatesTokenCount"`
	Cached     int64 `json:"cachedContentTokenCount"`
	Thoughts   int64 `json:"thoughtsTokenCount"`
	ToolPrompt int64 `json:"toolUsePromptTokenCount"`
}

type usageEvent struct {
	Model        string    `json:"model"`
	ModelVersion string    `json:"modelVersion"`
	Usage        *rawUsage `json:"usage"`
	Message      *struct {
		Model string    `json:"model"`
		Usage *rawUsage `json:"usage"`
	} `json:"message"` // Anthropic message_start
	Response *struct {
		Model string    `json:"model"`
		Usage *rawUsage `json:"usage"`
	} `json:"response"` // OpenAI Responses response.completed
	UsageMetadata *geminiUsage `json:"usageMetadata"`
}

// event takes the usage out of one JSON object (an SSE payload or a body).
func (m *meter) event(b []byte) {
	var e usageEvent
	if json.Unmarshal(b, &e) != nil {
		return
	}
	model := e.Model
	if e.ModelVersion != "" {
		model = e.ModelVersion
	}
	u := e.Usage
	if e.Message != nil {
		if e.Message.Model != "" {
			model = e.Message.Model
		}
		if e.Message.Usage != nil {
			u = e.Message.Usage
		}
	}
	if e.Response != nil {
		if e.Response.Model != "" {
			model = e.Response.Model
		}
		if e.Response.Usage != nil {
			u = e.Response.Usage
		}
	}
	if model != "" {
		m.model = model
	}
	if g := e.UsageMetadata; g != nil {
		// cumulative per chunk: the last one wins
		m.seen = true
		m.in, m.cacheRead, m.cacheWrite = g.Prompt+g.ToolPrompt, g.Cached, 0
		m.out, m.reasoning = g.Candidates+g.Thoughts, g.Thoughts
		return
	}
	if u == nil {
		return
	}
	m.seen = true
	set := func(dst *int64, v *int64) {
		if v != nil {
			*dst = *v
		}
	}
	switch {
	case u.PromptTokens != nil || u.CompletionTokens != nil: // Chat Completions
		set(&m.in, u.PromptTokens)
		set(&m.out, u.CompletionTokens)
		if u.PromptDetails != nil {
			m.cacheRead = u.PromptDetails.CachedTokens
		}
		if u.CompletionDetails != nil {
			m.reasoning = u.CompletionDetails.ReasoningTokens
		}
	default: // Anthropic Messages, OpenAI Responses
		set(&m.in, u.InputTokens)
		set(&m.out, u.OutputTokens)
		set(&m.cacheRead, u.CacheRead)
		set(&m.cacheWrite, u.CacheCreation)
		if u.InputDetails != nil {
			m.cacheRead = u.InputDetails.CachedTokens
		}
		if u.OutputDetails != nil {
			m.reasoning = u.OutputDetails.ReasoningTokens
		}
	}
}
