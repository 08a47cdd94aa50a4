package report

// The scaffold names come from the adapters' registrations, as in ptb.
import _ "github.com/ptb-dev/ptb/internal/agent/agents"
