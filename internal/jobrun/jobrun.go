// Package jobrun wires a job's pipeline to its implementations: the
// sandbox backend, the agent scaffold, the per-run gateway, the evaluate
// and audit stages and the LLM judge. It receives its configuration
// explicitly (Config); the command line and the environment are read by
// package cli only.
package jobrun

import (
	"fmt"
	"io"
	"os"

	"github.com/ptb-dev/ptb/internal/pinned"
	"github.com/ptb-dev/ptb/internal/registry"
)

// Config is what the wiring of a run is given by its caller.
type Config struct {
	Registry *registry.Registry
	Stderr   io.Writer // progress lines and the log
	Verbose  bool      // log harness events (info level) instead of warnings only
	Version  string    // ptb version for the record
	// Pins replaces pinned.Default() for the pinned stores (tests point it
	// at a local mirror's table); nil in ptb itself.
	Pins *pinned.Table
}

// UsageError is a mistake in how ptb was called (exit code 2).
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// selfPath is the ptb executable.
func selfPath() string {
	exe, err := os.Executable()
	if err != nil {
		return "ptb"
	}
	return exe
}
