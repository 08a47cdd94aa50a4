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
	// Self is the ptb executable: the sandbox's init, the scripted agent,
	// the judge's gateway link. "": os.Executable().
	Self string
	// LookupEnv is the harness's environment, as os.LookupEnv: the API keys
	// the gateways hold (ANTHROPIC_API_KEY, OPENAI_API_KEY, GEMINI_API_KEY,
	// HF_TOKEN), the PATH the judge CLI is found on, and what the sandbox
	// is passed (pipeline.DefaultPassEnv, --env NAME). nil: an empty
	// environment.
	LookupEnv func(string) (string, bool)
	// DataDir is the benchmark data directory used when the job names
	// none (cli: $PTB_DATA_DIR); the sandboxes never see it.
	DataDir string
	// Grader is the host-side grader of the LLM-graded benchmarks
	// (arenahardwriting, healthbench); its key never enters a sandbox.
	Grader Grader
}

// Grader is an OpenAI-compatible grading endpoint (cli: $PTB_JUDGE_URL
// and $OPENAI_API_KEY). Zero: no grader, and those benchmarks' graded
// metrics are not computed.
type Grader struct {
	URL string // "": the OpenAI API
	Key string
}

// getenv is LookupEnv's value, "" when unset.
func (c Config) getenv(k string) string {
	if c.LookupEnv == nil {
		return ""
	}
	v, _ := c.LookupEnv(k)
	return v
}

// self is the ptb executable.
func (c Config) self() string {
	if c.Self != "" {
		return c.Self
	}
	return selfPath()
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
