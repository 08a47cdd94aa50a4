package job

// The agents by name, as in ptb.
import _ "github.com/ptb-dev/ptb/internal/agent/agents"
