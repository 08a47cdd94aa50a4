package scripted

import (
	"github.com/ptb-dev/ptb/internal/agent"
	"github.com/ptb-dev/ptb/internal/agentinfo"
)

// Info is what ptb knows about the scripted stand-in (registered in init):
// it calls no model, so it has no provider, key or npm package. The
// harness builds its Scaffold itself (the script and ptb's own binary), so
// it registers no constructor.
var Info = agentinfo.Info{Name: "scripted"}

func init() { agent.Register(agent.Adapter{Info: Info}) }
