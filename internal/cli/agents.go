package cli

// The built-in agent adapters register themselves (agent.Register): ptb
// knows them by name from here on.
import _ "github.com/ptb-dev/ptb/internal/agent/agents"
