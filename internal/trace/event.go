// Package trace decodes the stdout of the agent CLIs (Claude Code, Codex CLI,
// Gemini CLI, OpenCode) into one normalized event schema, and summarizes and
// renders it.
//
// Parsing is kept apart from rendering: Stream reads lines of any length,
// decodes each with the agent's Decoder and hands the events to a Handler
// (Summarizer, Renderer, or both through Tee). Decoding never fails on
// unknown events, non-JSON lines, huge lines or invalid UTF-8: every event
// keeps the raw bytes of the line it came from.
package trace

import (
	"encoding/json"
	"time"
)

// Agent names, as in the job spec.
const (
	AgentClaude   = "claude"
	AgentCodex    = "codex"
	AgentGemini   = "gemini"
	AgentOpenCode = "opencode"
	AgentScripted = "scripted" // ptb's built-in stand-in agent
	AgentUnknown  = "unknown"
)

// Kind is a normalized event kind.
type Kind string

// Event kinds.
const (
	KindSession    Kind = "session"     // a session started (id, model, cwd)
	KindUser       Kind = "user"        // a user (prompt) message echoed by the CLI
	KindText       Kind = "text"        // assistant text (Delta: a chunk to concatenate)
	KindReasoning  Kind = "reasoning"   // reasoning / thinking text
	KindToolCall   Kind = "tool_call"   // the agent called a tool
	KindToolResult Kind = "tool_result" // a tool call's outcome
	KindUsage      Kind = "usage"       // token usage to add to the total (each CLI's own rules)
	KindFinal      Kind = "final"       // a turn ended successfully; Text is the final message
	KindError      Kind = "error"       // an error; Fatal says whether it ended the turn
	KindMarker     Kind = "marker"      // a known structural event with no content (turn/step start)
	KindUnknown    Kind = "unknown"     // JSON the decoder does not normalize; see Raw
)

// Event is one normalized event. One trace line yields one or more events;
// all of them share Raw.
type Event struct {
	Agent string
	Kind  Kind
	Line  int       // 1-based line number in the trace
	Type  string    // the CLI's own event type, e.g. "item.completed/command_execution"
	Time  time.Time // zero when the line carries no timestamp
	// Raw is the line exactly as read, without its newline. It aliases the
	// reader's buffer: it is valid only until the handler returns; copy it to keep it.
	Raw []byte

	Text       string   // KindText, KindReasoning, KindUser, KindFinal, KindError
	Delta      bool     // KindText: a streamed chunk of the message before it
	Fatal      bool     // KindError: the turn or session failed
	Session    *Session // KindSession
	Tool       *ToolCall
	Result     *ToolResult
	Usage      *Usage   // KindUsage
	CLICostUSD *float64 // KindUsage: the CLI's own cost figure, when it reports one
}

// Session describes a started agent session.
type Session struct {
	ID      string `json:"id,omitempty"`
	Model   string `json:"model,omitempty"`
	CWD     string `json:"cwd,omitempty"`
	Version string `json:"version,omitempty"` // the CLI's version, when it says
}

// ToolCall is a tool invocation.
type ToolCall struct {
	ID    string          `json:"id,omitempty"`
	Name  string          `json:"name"`
	Input json.RawMessage `json:"input,omitempty"` // JSON
}

// ToolResult is a tool call's outcome.
type ToolResult struct {
	ID       string `json:"id,omitempty"`
	Output   string `json:"output"`
	ExitCode *int   `json:"exit_code"` // nil when the CLI does not say
	IsError  bool   `json:"is_error"`
}

// Usage is token usage, normalized: InputTokens counts every prompt token,
// cached ones included (CachedInputTokens and CacheWriteInputTokens are parts
// of it); OutputTokens counts every generated token, reasoning included
// (ReasoningTokens is part of it).
type Usage struct {
	InputTokens           int64 `json:"input_tokens"`
	OutputTokens          int64 `json:"output_tokens"`
	CachedInputTokens     int64 `json:"cached_input_tokens"`
	ReasoningTokens       int64 `json:"reasoning_tokens"`
	CacheWriteInputTokens int64 `json:"cache_write_input_tokens"`
}

// Add adds o to u.
func (u *Usage) Add(o Usage) {
	u.InputTokens += o.InputTokens
	u.OutputTokens += o.OutputTokens
	u.CachedInputTokens += o.CachedInputTokens
	u.ReasoningTokens += o.ReasoningTokens
	u.CacheWriteInputTokens += o.CacheWriteInputTokens
}

// Handler receives what Stream decodes. Events and raw lines alias the
// reader's buffer and are valid only until the call returns. A non-nil error
// stops Stream and is returned by it.
type Handler interface {
	// Event is called for every decoded event, in order.
	Event(ev *Event) error
	// NonJSON is called for a line that is not a JSON object (a CLI's
	// plain-text output, a truncated line); it is passed aside, never fatal.
	NonJSON(line int, raw []byte) error
}
