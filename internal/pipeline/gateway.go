package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/ptb-dev/ptb/internal/job"
	"github.com/ptb-dev/ptb/internal/rundir"
	"github.com/ptb-dev/ptb/internal/sandbox"
)

// Gateway starts the run's gateway, the sandbox's only way out under
// sandbox.NetworkGateway. The solve stage starts one before the agent's
// first launch and closes it when the solve ends; a resumed solve starts
// a new one over the same logs.
type Gateway interface {
	// Start serves the gateway for the run in dir on the unix socket at
	// socket, logging under dir's gateway/ directory.
	Start(ctx context.Context, dir rundir.Dir, spec job.Spec, socket string) (GatewaySession, error)
}

// GatewaySession is a started gateway.
type GatewaySession interface {
	// Env is what the sandbox's environment gets for the gateway reached at
	// base (e.g. http://127.0.0.1:18080): proxy variables, HF_ENDPOINT and
	// placeholder keys, never a real credential.
	Env(base string) map[string]string
	// Endpoint is the model endpoint the agent CLI is pointed at (the LLM
	// route of the agent's provider) for the gateway reached at base.
	Endpoint(base string) string
	// Close stops serving and flushes the logs.
	Close() error
}

// startGateway starts the run's gateway when the job asks for one.
func (x *run) startGateway(ctx context.Context) (GatewaySession, *sandbox.Gateway, error) {
	if x.spec.Network != sandbox.NetworkGateway {
		return nil, nil, nil
	}
	if x.r.Gateway == nil {
		return nil, nil, errors.New("network gateway: this ptb has no gateway configured")
	}
	sockDir := x.dir.Path(rundir.GatewaySocketDir)
	if err := os.MkdirAll(sockDir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("start gateway: %w", err)
	}
	// The sandbox's unprivileged user must reach the socket inside.
	if err := os.Chmod(sockDir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("start gateway: %w", err)
	}
	s, err := x.r.Gateway.Start(ctx, x.dir, x.spec, x.dir.Path(rundir.GatewaySocketDir, sandbox.GatewaySocket))
	if err != nil {
		return nil, nil, fmt.Errorf("start gateway: %w", err)
	}
	return s, &sandbox.Gateway{Init: x.self(), SocketDir: sockDir}, nil
}
