package jobrun

// The built-in agent adapters and sandbox backends register themselves
// (agent.Register, sandbox.Register): ptb knows them by name from here on;
// the CLI links them through this package.
import (
	_ "github.com/ptb-dev/ptb/internal/agent/agents"
	_ "github.com/ptb-dev/ptb/internal/sandbox/bwrap"
	_ "github.com/ptb-dev/ptb/internal/sandbox/none"
)
