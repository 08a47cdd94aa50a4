// Package agent defines a scaffold: how one agent CLI is launched headless
// inside a sandbox. Scaffolds live in subpackages (scripted, and the CLI
// adapters); trace decoding lives in package trace.
//
// Adapters register themselves: each adapter package calls Register from
// init with its agentinfo.Info (name, display name, npm pin, models,
// credentials, provider, trace format) and a constructor, and the harness
// builds a scaffold by name with New. internal/agent/agents links the
// built-in ones. The info goes to package agentinfo, which job, trace,
// report and campaign read without importing an adapter.
package agent

import "context"

// Launch is what the harness gives a scaffold to build a command.
type Launch struct {
	Prompt    string // the rendered agent prompt
	Model     string // the agent model / config string from the job spec
	Workspace string // the agent's working directory (path inside the sandbox)
	Home      string // the agent's HOME (path inside the sandbox)
	Endpoint  string // base URL of the model endpoint to inject, "" for the CLI default
	// Continue is set when the agent is relaunched after an interruption
	// (harness crash or reprompt); Note is the short continuation message.
	Continue bool
	Note     string
}

// Command is a scaffold's plan for one launch.
type Command struct {
	Argv []string
	Env  []string // added to the sandbox's allowlisted base environment
	// Files to write before launch, keyed by path relative to Home ("~/")
	// or to Workspace (other relative paths).
	HomeFiles      map[string][]byte
	WorkspaceFiles map[string][]byte
	// Secrets lists files in HomeFiles that hold credentials; the run
	// record warns when any is present.
	Secrets []string
}

// Scaffold builds the command for an agent CLI.
type Scaffold interface {
	// Name is the registry name (claude, codex, gemini, opencode, scripted).
	Name() string
	// Command returns how to launch the agent for l.
	Command(ctx context.Context, l Launch) (Command, error)
	// Version reports the CLI's version, or "" if unknown.
	Version(ctx context.Context) string
}
