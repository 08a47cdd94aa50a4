package report

import (
	"fmt"
	"strconv"

	"github.com/ptb-dev/ptb/internal/agentinfo"
	"github.com/ptb-dev/ptb/internal/result"
)

// ScaffoldName is the display name of an agent scaffold ("claude" ->
// "Claude Code"), as its adapter registered it (agentinfo); unknown names
// are returned as they are.
func ScaffoldName(agent string) string {
	if agent == "" {
		return "unknown agent"
	}
	if i, ok := agentinfo.Lookup(agent); ok {
		return i.Label()
	}
	return agent
}

// Label is the method a run belongs to: Spec.Label when set, else
// "<agent model> (<scaffold>)", with the time budget added when it is not the
// paper's 10 hours, e.g. "claude-opus-4-6 (Claude Code)" or
// "gpt-5.3-codex (Codex CLI, 5h)". Runs with the same label are seeds of
// one method, told apart by Spec.Seed.
func Label(s result.Spec) string {
	if s.Label != "" {
		return s.Label
	}
	model := s.AgentModel
	if model == "" {
		model = "default model"
	}
	if s.Hours != 0 && s.Hours != 10 {
		return fmt.Sprintf("%s (%s, %sh)", model, ScaffoldName(s.Agent), strconv.FormatFloat(s.Hours, 'g', -1, 64))
	}
	return fmt.Sprintf("%s (%s)", model, ScaffoldName(s.Agent))
}
