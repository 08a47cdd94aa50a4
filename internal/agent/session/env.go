package session

import (
	"os"
	"strings"
)

// Env is a sandbox environment being built: nothing of the host's unless
// named. A variable keeps the place where it was first set and takes the
// last value set. The zero Env is empty and ready.
type Env struct {
	// Lookup reads the host's variables for Pass; nil: os.LookupEnv.
	Lookup func(string) (string, bool)

	order []string
	vars  map[string]string
}

// Set sets k to v.
func (e *Env) Set(k, v string) {
	if e.vars == nil {
		e.vars = map[string]string{}
	}
	if _, ok := e.vars[k]; !ok {
		e.order = append(e.order, k)
	}
	e.vars[k] = v
}

// Get returns k's value and whether it is set.
func (e *Env) Get(k string) (string, bool) {
	v, ok := e.vars[k]
	return v, ok
}

// Add sets each KEY=VALUE of kvs (a bare KEY is set empty).
func (e *Env) Add(kvs ...string) {
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		e.Set(k, v)
	}
}

// Pass sets each KEY=VALUE of kvs as given, and each bare KEY to the host's
// value, leaving out a KEY the host has not set.
func (e *Env) Pass(kvs ...string) {
	for _, kv := range kvs {
		k, v, hasValue := strings.Cut(kv, "=")
		if !hasValue {
			var ok bool
			lookup := e.Lookup
			if lookup == nil {
				lookup = os.LookupEnv
			}
			if v, ok = lookup(k); !ok {
				continue
			}
		}
		e.Set(k, v)
	}
}

// List returns the environment as KEY=VALUE, in order.
func (e *Env) List() []string {
	out := make([]string, 0, len(e.order))
	for _, k := range e.order {
		out = append(out, k+"="+e.vars[k])
	}
	return out
}
