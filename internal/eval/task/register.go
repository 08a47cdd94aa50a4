package task

import (
	"fmt"
	"slices"
	"sync"

	"github.com/ptb-dev/ptb/internal/eval/dataset"
)

// Registration is what a task registers under its name: how to make it
// and the data files it reads.
type Registration struct {
	Name string // the registry's benchmark name
	// New makes the task at the faithful (strict false) or strict version.
	New   func(strict bool, cfg Config) Task
	Files []dataset.File
}

var (
	regMu sync.RWMutex
	tasks = map[string]Registration{}
)

// Register makes a task known by name. Each task's file calls it from
// init; a test may add one. It panics when the name is empty or taken.
func Register(r Registration) {
	if r.Name == "" || r.New == nil {
		panic("task: Register with an empty name or no constructor")
	}
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := tasks[r.Name]; dup {
		panic(fmt.Sprintf("task: %q registered twice", r.Name))
	}
	tasks[r.Name] = r
}

func lookup(name string) (Registration, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	r, ok := tasks[name]
	return r, ok
}

// Names lists the task names in the leaderboard's order (by name).
func Names() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	out := make([]string, 0, len(tasks))
	for n := range tasks {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// New returns the task name at version ("" = faithful).
func New(name, version string, cfg Config) (Task, error) {
	if version == "" {
		version = Faithful
	}
	if version != Faithful && version != Strict {
		return nil, fmt.Errorf("unknown version %q of task %s (want %s or %s)", version, name, Faithful, Strict)
	}
	r, ok := lookup(name)
	if !ok {
		return nil, fmt.Errorf("unknown task %q (known: %v)", name, Names())
	}
	return r.New(version == Strict, cfg), nil
}

// Files lists the data files a task reads.
func Files(name string) ([]dataset.File, bool) {
	r, ok := lookup(name)
	if !ok {
		return nil, false
	}
	return slices.Clone(r.Files), true
}
