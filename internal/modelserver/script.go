// Package modelserver is a scripted model server: it speaks the wire APIs the
// agent CLIs use (Anthropic Messages, OpenAI Responses, OpenAI Chat
// Completions, Gemini streamGenerateContent) and plays a script of turns, so
// the real CLIs can be driven end to end without keys or network.
//
// Replies are decided from the request body alone: the turn to play is the
// number of tool results already in the conversation, so retries, resumed
// sessions and side requests (title generation, next-speaker checks: requests
// without tools) never derail the script.
package modelserver

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// Script is what the server plays.
type Script struct {
	// Turns are played in order: turn i answers a conversation holding i tool
	// results. A turn with a Shell command is a tool call; the last turn
	// is repeated once the script runs out ("done" if it is a tool call).
	Turns []Turn `json:"turns"`
	// SideText answers requests that offer no tools (default "scripted-title").
	SideText string `json:"side_text,omitempty"`
	// Usage is reported for every reply (default 123 in, 45 out).
	Usage Usage `json:"usage"`
}

// Turn is one scripted model reply.
type Turn struct {
	Reasoning string `json:"reasoning,omitempty"` // thinking / reasoning summary shown first
	Text      string `json:"text,omitempty"`      // assistant text
	// Shell, when set, makes the turn a call of the client's shell tool
	// (Bash, bash, run_shell_command, exec_command, shell...) with this command.
	Shell       string `json:"shell,omitempty"`
	Description string `json:"description,omitempty"` // shell call description where the tool takes one
}

// Usage is the token count each reply reports.
type Usage struct {
	InputTokens  int64 `json:"input_tokens"`
	OutputTokens int64 `json:"output_tokens"`
}

// DefaultScript is the fixtures' script: one shell call writing out.txt,
// then "done".
func DefaultScript() *Script {
	return &Script{Turns: []Turn{
		{Shell: "echo hello > out.txt", Description: "write hello to out.txt"},
		{Text: "done"},
	}}
}

// LoadScript reads a script file (JSON).
func LoadScript(path string) (*Script, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open script: %w", err)
	}
	defer f.Close()
	return ReadScript(f)
}

// ReadScript decodes a JSON script.
func ReadScript(r io.Reader) (*Script, error) {
	var s Script
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("decode script: %w", err)
	}
	if len(s.Turns) == 0 {
		return nil, fmt.Errorf("decode script: no turns (want {\"turns\": [{\"shell\": \"...\"}, {\"text\": \"done\"}]})")
	}
	return &s, nil
}

func (s *Script) defaults() {
	if s.SideText == "" {
		s.SideText = "scripted-title"
	}
	if s.Usage.InputTokens == 0 && s.Usage.OutputTokens == 0 {
		s.Usage = Usage{InputTokens: 123, OutputTokens: 45}
	}
	if len(s.Turns) == 0 {
		s.Turns = []Turn{{Text: "done"}}
	}
}

// turn returns the turn for a conversation holding results tool results.
func (s *Script) turn(results int) (Turn, int) {
	if results >= len(s.Turns) {
		last := s.Turns[len(s.Turns)-1]
		if last.Shell != "" || last.Text == "" {
			// never loop on a tool call once the script is spent
			return Turn{Text: "done"}, len(s.Turns)
		}
		return last, len(s.Turns) - 1
	}
	return s.Turns[results], results
}
