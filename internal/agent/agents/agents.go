// Package agents links the built-in agent adapters into a binary: each
// registers itself (agent.Register) from its init function. cmd/ptb gets
// them through internal/cli; a test that needs the built-in agents by name
// (job, report, campaign) imports this package for its side effect.
//
// Adding an agent CLI: a package of its own under internal/agent that
// registers an agent.Adapter (its agentinfo.Info and constructor, and its
// trace format with trace.RegisterFormat when it speaks a new one), one
// line below, and its entry in internal/registry/registry.yaml.
package agents

import (
	_ "github.com/ptb-dev/ptb/internal/agent/claude"   // Claude Code
	_ "github.com/ptb-dev/ptb/internal/agent/codex"    // Codex CLI
	_ "github.com/ptb-dev/ptb/internal/agent/gemini"   // Gemini CLI
	_ "github.com/ptb-dev/ptb/internal/agent/opencode" // OpenCode
	_ "github.com/ptb-dev/ptb/internal/agent/scripted" // ptb's stand-in agent
)
