package agent

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/ptb-dev/ptb/internal/agentinfo"
)

// Options are what the harness may give an adapter's constructor; an
// adapter ignores what does not apply to its CLI.
type Options struct {
	// Bin is the CLI executable, a bare name looked up on the sandbox's
	// PATH or a path; "" means the CLI's own name.
	Bin string
	// Credentials is the CLI's subscription login file (agentinfo
	// LoginFile), written into HOME as a secret; used when the launch has
	// no injected endpoint.
	Credentials []byte
	// Gateway says the injected endpoint is the run gateway's route for
	// the model's own provider (OpenCode then keeps its built-in provider).
	Gateway bool
}

// Adapter is what an adapter package registers: what ptb knows about the
// CLI and how to build its scaffold.
type Adapter struct {
	agentinfo.Info
	// New builds the scaffold; nil for an agent the harness builds itself
	// (the scripted stand-in needs its script and ptb's own binary).
	New func(Options) Scaffold
}

// ErrNoAdapter is returned by New for a name nothing registered a
// constructor for.
var ErrNoAdapter = errors.New("no adapter")

var (
	mu       sync.RWMutex
	adapters = map[string]Adapter{}
)

// Register makes an adapter known by its name, here and in agentinfo. Each
// adapter package calls it from init; cmd/ptb imports internal/agent/agents
// for the built-in ones. It panics on an empty or duplicate name.
func Register(a Adapter) {
	agentinfo.Register(a.Info) // panics first on a bad name
	mu.Lock()
	defer mu.Unlock()
	adapters[a.Name] = a
}

// Lookup returns the adapter registered under name.
func Lookup(name string) (Adapter, bool) {
	mu.RLock()
	defer mu.RUnlock()
	a, ok := adapters[name]
	return a, ok
}

// New builds the scaffold of the agent registered under name. It fails
// with ErrNoAdapter (naming the agents that have one) when there is no
// constructor for name.
func New(name string, o Options) (Scaffold, error) {
	a, ok := Lookup(name)
	if !ok || a.New == nil {
		return nil, fmt.Errorf("%w for agent %q (adapters: %s)", ErrNoAdapter, name, strings.Join(Constructible(), ", "))
	}
	return a.New(o), nil
}

// Constructible returns the sorted names of the agents New can build.
func Constructible() []string {
	var out []string
	for _, n := range agentinfo.Names() {
		if a, ok := Lookup(n); ok && a.New != nil {
			out = append(out, n)
		}
	}
	return out
}
