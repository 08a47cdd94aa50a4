// Package agentinfo is what ptb knows about each agent CLI by name, for the
// packages that must not import the adapters (job, trace, report, campaign)
// as much as for the CLI: the display name, the pinned npm package, the
// models to suggest, where the CLI takes its credentials from and which LLM
// provider it talks to.
//
// Nothing here is written by hand for a particular agent: each adapter
// package carries its own Info and registers it from its init function
// (through agent.Register, which also registers the constructor), as
// litestream's backends call RegisterReplicaClientFactory. A binary knows
// the agents whose packages it links: cmd/ptb gets the built-in ones by
// importing internal/agent/agents; a test registers a throwaway one. The
// registry (registry.yaml) still decides which agents a job may name; this
// package says how to talk about them.
//
// It imports nothing from ptb.
package agentinfo

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Providers of the gateway's LLM route (gateway.Anthropic, gateway.OpenAI,
// gateway.Gemini: the same strings).
const (
	ProviderAnthropic = "anthropic"
	ProviderOpenAI    = "openai"
	ProviderGemini    = "gemini"
)

// Info describes one agent CLI.
type Info struct {
	// Name is the registry name, as in the job spec and registry.yaml.
	Name string
	// Display is the scaffold's name in reports ("Claude Code"); "" means
	// Name.
	Display string
	// NPM is the pinned npm package the CLI was verified with
	// ("@openai/codex@0.171.0"); "" for a CLI not installed from npm.
	NPM string
	// ExampleModel is an --agent-model value to suggest in errors.
	ExampleModel string
	// CheckModel is the model `ptb doctor --agents` passes: an id the CLI
	// accepts without a catalogue lookup (the scripted server ignores it).
	CheckModel string
	// KeyEnv returns the variables the CLI takes its API key from for
	// model, the first being the one to suggest; nil means none.
	KeyEnv func(model string) []string
	// LoginFile is the CLI's subscription login file ("~/.codex/auth.json"),
	// named in hints; "" when it has none.
	LoginFile string
	// Provider returns the gateway LLM route (Provider*) the CLI talks to
	// for model, or an error naming what model must look like; nil means
	// the agent calls no model (ptb's scripted stand-in).
	Provider func(model string) (string, error)
	// Trace names the trace format of the CLI's stdout (trace.NewDecoder);
	// "" means Name.
	Trace string
}

// Label is the display name, or Name when none is set.
func (i Info) Label() string {
	if i.Display != "" {
		return i.Display
	}
	return i.Name
}

// TraceFormat is the trace format name (Trace, else Name).
func (i Info) TraceFormat() string {
	if i.Trace != "" {
		return i.Trace
	}
	return i.Name
}

// Keys returns KeyEnv(model), nil when KeyEnv is unset.
func (i Info) Keys(model string) []string {
	if i.KeyEnv == nil {
		return nil
	}
	return i.KeyEnv(model)
}

var (
	mu    sync.RWMutex
	infos = map[string]Info{}
)

// Register adds i. It panics when the name is empty or already registered,
// as a duplicate init would be a programming error.
func Register(i Info) {
	if i.Name == "" {
		panic("agentinfo: Register with an empty name")
	}
	mu.Lock()
	defer mu.Unlock()
	if _, dup := infos[i.Name]; dup {
		panic(fmt.Sprintf("agentinfo: agent %q registered twice", i.Name))
	}
	infos[i.Name] = i
}

// Lookup returns the Info registered under name.
func Lookup(name string) (Info, bool) {
	mu.RLock()
	defer mu.RUnlock()
	i, ok := infos[name]
	return i, ok
}

// Names returns the registered names, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(infos))
	for n := range infos {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// All returns every registered Info, sorted by name.
func All() []Info {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]Info, 0, len(infos))
	for _, i := range infos {
		out = append(out, i)
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	return out
}
