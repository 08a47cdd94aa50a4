// Package none is the development sandbox backend: the agent runs bare on
// the host, in its own process group. It enforces nothing but the deadline;
// every run made with it is recorded as unsandboxed.
package none

import (
	"context"
	"fmt"

	"github.com/ptb-dev/ptb/internal/sandbox"
	"github.com/ptb-dev/ptb/internal/sandbox/execproc"
)

// Backend runs processes without isolation.
type Backend struct{}

var (
	_ sandbox.Backend = (*Backend)(nil)
	_ sandbox.Reaper  = (*Backend)(nil)
)

// Reap implements sandbox.Reaper.
func (*Backend) Reap(h sandbox.Handle) error { return execproc.Reap(h) }

// New returns the none backend.
func New() *Backend { return &Backend{} }

// Capabilities implements sandbox.Backend.
func (*Backend) Capabilities() sandbox.Capabilities {
	return sandbox.Capabilities{
		Name:      "none",
		Isolated:  false,
		Networks:  []sandbox.Network{sandbox.NetworkHost},
		SamePaths: true,
	}
}

// Check implements sandbox.Backend; none always runs.
func (*Backend) Check(context.Context) error { return nil }

// Start implements sandbox.Backend. Hidden paths and the network policy
// cannot be enforced and are ignored; the caller records the run as
// unsandboxed.
func (*Backend) Start(ctx context.Context, spec sandbox.Spec) (sandbox.Process, error) {
	if spec.Dir == "" {
		spec.Dir = spec.Workspace
	}
	if err := (&Backend{}).Capabilities().Supports(spec); err != nil {
		return nil, err
	}
	p, err := execproc.Start(ctx, spec.Argv, spec, execproc.Options{Backend: "none"})
	if err != nil {
		return nil, fmt.Errorf("sandbox none: %w", err)
	}
	return p, nil
}
