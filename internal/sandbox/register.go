package sandbox

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Factory makes a backend. It does not check that the backend can run
// here: callers call Check.
type Factory func() Backend

var (
	factoriesMu sync.RWMutex
	factories   = map[string]Factory{}
)

// Register makes a backend known by name (the job spec's sandbox, as in
// Capabilities.Name). Each backend package calls it from init, as
// litestream's backends call RegisterReplicaClientFactory; a binary knows
// the backends it links (cmd/ptb: bwrap and none). It panics when name is
// empty or taken.
func Register(name string, f Factory) {
	if name == "" || f == nil {
		panic("sandbox: Register with an empty name or no factory")
	}
	factoriesMu.Lock()
	defer factoriesMu.Unlock()
	if _, dup := factories[name]; dup {
		panic(fmt.Sprintf("sandbox: backend %q registered twice", name))
	}
	factories[name] = f
}

// Lookup returns a new backend of the kind registered under name.
func Lookup(name string) (Backend, error) {
	factoriesMu.RLock()
	f, ok := factories[name]
	factoriesMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("unknown sandbox %q (registered: %s)", name, strings.Join(Backends(), ", "))
	}
	return f(), nil
}

// Backends returns the registered backend names, sorted.
func Backends() []string {
	factoriesMu.RLock()
	defer factoriesMu.RUnlock()
	out := make([]string, 0, len(factories))
	for n := range factories {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
